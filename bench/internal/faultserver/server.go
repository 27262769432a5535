package faultserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// Transport is how clients reach the server.
type Transport string

const (
	// Bufconn is an in-memory connection (google.golang.org/grpc/test/bufconn).
	Bufconn Transport = "bufconn"
	// TCP is loopback TCP on 127.0.0.1.
	TCP Transport = "tcp"
)

// Faults is what the interceptor injects. The zero value injects nothing.
type Faults struct {
	// FailFraction is the probability in [0,1] that an attempt fails with
	// Unavailable.
	FailFraction float64
	// Outage fails every attempt with Unavailable.
	Outage bool
	// SlowFraction is the probability in [0,1] that an attempt is delayed
	// by SlowDelay before the service handles it.
	SlowFraction float64
	SlowDelay    time.Duration
}

// InjectedMessage is the status message of injected failures.
const InjectedMessage = "faultserver: injected failure"

// Forward is what a server in a chain does instead of answering itself:
// it calls the next hop with the request's context (deadline and
// cancellation pass on) and returns that hop's answer.
type Forward func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error)

// Server is a running (or stopped) TestService with fault injection.
type Server struct {
	transport Transport
	faults    atomic.Pointer[Faults]
	forward   atomic.Pointer[Forward]
	hits      atomic.Int64
	capacity  gate

	mu   sync.Mutex
	gs   *grpc.Server
	buf  *bufconn.Listener // Bufconn only
	addr string            // TCP only: "127.0.0.1:port", kept across restarts
	up   bool
	wg   sync.WaitGroup // Serve goroutines
}

// Start starts a server on the given transport.
func Start(t Transport) (*Server, error) {
	s := &Server{transport: t}
	s.faults.Store(&Faults{})
	switch t {
	case Bufconn:
	case TCP:
	default:
		return nil, fmt.Errorf("faultserver: unknown transport %q", t)
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return errors.New("faultserver: already running")
	}
	var lis net.Listener
	switch s.transport {
	case Bufconn:
		s.buf = bufconn.Listen(1 << 20)
		lis = s.buf
	case TCP:
		var (
			l   net.Listener
			err error
		)
		if s.addr == "" {
			l, err = listenFresh()
		} else {
			l, err = listenTCP(s.addr)
		}
		if err != nil {
			return err
		}
		s.addr = l.Addr().String()
		lis = l
	}
	// WaitForHandlers: Stop returns only when every handler has returned,
	// queued ones included, so that no work outlives the server.
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(s.intercept), grpc.WaitForHandlers(true))
	testgrpc.RegisterTestServiceServer(gs, interop.NewTestServer())
	s.gs, s.up = gs, true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = gs.Serve(lis) // returns when stopped
	}()
	return nil
}

// listenFresh listens on a free loopback port below Linux's ephemeral
// range (32768 and up), so that no outgoing connection can take the port
// while the server is stopped; it falls back to any free port.
func listenFresh() (net.Listener, error) {
	for range 50 {
		port := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return l, nil
		}
	}
	return listenTCP("127.0.0.1:0")
}

// listenTCP listens on addr, retrying for a short while when the port is
// still held by the previous incarnation.
func listenTCP(addr string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("faultserver: listen %s: %w", addr, err)
			}
			return l, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops the server hard: the listener and every connection are
// closed, as when a process is killed. Stop on a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	gs := s.gs
	up := s.up
	s.up = false
	s.mu.Unlock()
	if up {
		gs.Stop()
		s.wg.Wait()
	}
}

// Restart starts a stopped server again on the same address (TCP: the same
// port). It returns when the new listener accepts connections.
func (s *Server) Restart() error { return s.start() }

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// SetFaults replaces the faults injected from now on.
func (s *Server) SetFaults(f Faults) { s.faults.Store(&f) }

// SetForward makes every attempt that no fault fails call f instead of
// the TestService (nil: answer again). Faults, the capacity limit and Hits
// apply before forwarding, as to any attempt.
func (s *Server) SetForward(f Forward) {
	if f == nil {
		s.forward.Store(nil)
		return
	}
	s.forward.Store(&f)
}

// Hits returns how many attempts have reached the server so far.
func (s *Server) Hits() int64 { return s.hits.Load() }

// Target is the target to give grpc.NewClient.
func (s *Server) Target() string {
	if s.transport == Bufconn {
		return "passthrough:///bufconn"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Transport returns the server's transport.
func (s *Server) Transport() Transport { return s.transport }

// DialOptions returns what a client needs to reach the server, besides
// its own options: insecure credentials and, for bufconn, the dialer.
func (s *Server) DialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if s.transport == Bufconn {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			s.mu.Lock()
			l := s.buf
			s.mu.Unlock()
			return l.DialContext(ctx)
		}))
	}
	return opts
}

// intercept injects the configured faults into UnaryCall attempts, then
// serves them within the capacity limit, then answers or forwards them.
func (s *Server) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.hits.Add(1)
	f := s.faults.Load()
	// Only UnaryCall's request can carry a status: other methods get the
	// slow tail and the capacity limit alone.
	r, _ := req.(*testpb.SimpleRequest)
	injected := false
	fail := func(msg string) {
		r.ResponseStatus = &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: msg}
		injected = true
	}
	if r != nil && r.GetResponseStatus().GetCode() == 0 {
		if f.Outage || (f.FailFraction > 0 && rand.Float64() < f.FailFraction) {
			fail(InjectedMessage)
		}
	}
	if f.SlowFraction > 0 && f.SlowDelay > 0 && rand.Float64() < f.SlowFraction {
		t := time.NewTimer(f.SlowDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if !injected && !s.capacity.serve(ctx) {
		if r == nil {
			return nil, status.Error(codes.Unavailable, QueueFullMessage)
		}
		fail(QueueFullMessage)
	}
	if fwd := s.forward.Load(); fwd != nil && r != nil && !injected {
		return (*fwd)(ctx, r)
	}
	return handler(ctx, req)
}
