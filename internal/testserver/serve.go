package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpc-resilience/resilience/internal/listen"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// ErrClosed is returned by the serving methods of a Server after Close.
var ErrClosed = errors.New("testserver: server closed")

// errNotListening is returned when a method needs a transport that was never
// chosen.
var errNotListening = errors.New("testserver: not listening: call ListenBufconn or ListenTCP first")

const (
	// bufSize is the buffer of the in-memory listener's connections.
	bufSize = 1 << 20
	// bufTarget is the client target for the in-memory listener.
	bufTarget = "passthrough:///bufnet"
)

type transport int

const (
	noTransport transport = iota
	bufTransport
	tcpTransport
)

// serving is the transport state of a Server.
type serving struct {
	mu     sync.Mutex // guards the fields below; never held by handlers
	kind   transport
	addr   string            // TCP address, kept across Stop for Restart
	buf    *bufconn.Listener // current in-memory listener while serving
	gs     *grpc.Server      // current server while serving
	done   chan struct{}     // closed when gs.Serve has returned
	closed bool
}

// ListenBufconn starts serving over an in-memory bufconn listener. Use
// NewClient or Dialer to reach it. It fails if the Server is already
// listening or closed.
func (s *Server) ListenBufconn() error {
	return s.listen(bufTransport)
}

// ListenTCP starts serving on 127.0.0.1 with a port chosen by the kernel; Addr
// tells which. It fails if the Server is already listening or closed.
func (s *Server) ListenTCP() error {
	return s.listen(tcpTransport)
}

func (s *Server) listen(kind transport) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.closed {
		return ErrClosed
	}
	if s.srv.kind != noTransport {
		return errors.New("testserver: already listening")
	}
	s.srv.kind = kind
	if err := s.startLocked(); err != nil {
		s.srv.kind = noTransport
		return err
	}
	return nil
}

// Addr returns the TCP address ("127.0.0.1:port") after ListenTCP, also while
// stopped, and "" otherwise.
func (s *Server) Addr() string {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	return s.srv.addr
}

// Dialer returns a dialer for grpc.WithContextDialer that connects to the
// Server's current listener, whichever transport it uses, also after Restart.
// While the Server is stopped it fails with an error wrapping
// syscall.ECONNREFUSED. The address argument is ignored.
func (s *Server) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		s.srv.mu.Lock()
		kind, addr, buf := s.srv.kind, s.srv.addr, s.srv.buf
		s.srv.mu.Unlock()
		switch {
		case kind == tcpTransport:
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		case buf != nil:
			return buf.DialContext(ctx)
		default:
			return nil, fmt.Errorf("testserver: not serving: %w", syscall.ECONNREFUSED)
		}
	}
}

// NewClient returns a client connection to the Server with insecure
// credentials: over bufconn through Dialer, over TCP to Addr with gRPC's own
// dialer. opts are applied after those and can override them. The connection
// follows Stop and Restart; the caller closes it. It fails before
// ListenBufconn or ListenTCP.
func (s *Server) NewClient(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	s.srv.mu.Lock()
	kind, addr := s.srv.kind, s.srv.addr
	s.srv.mu.Unlock()
	base := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	var target string
	switch kind {
	case bufTransport:
		target = bufTarget
		base = append(base, grpc.WithContextDialer(s.Dialer()))
	case tcpTransport:
		target = "passthrough:///" + addr
	default:
		return nil, errNotListening
	}
	return grpc.NewClient(target, append(base, opts...)...)
}

// Stop stops serving at once: it closes the listener and every connection,
// cancels running RPCs and waits for their handlers to return. Clients see
// Unavailable. Restart serves again. Stop does nothing if the Server is not
// serving.
func (s *Server) Stop() {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.stopLocked()
}

// Restart stops serving if the Server is serving, as Stop does, then serves
// again with a new grpc.Server on the same transport and address: the same
// TCP port (retrying the bind for a few seconds if the port is busy), or a new
// in-memory listener that Dialer and NewClient connections reach. It fails if
// the Server never listened, is closed, or the port cannot be bound again.
func (s *Server) Restart() error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.closed {
		return ErrClosed
	}
	if s.srv.kind == noTransport {
		return errNotListening
	}
	s.stopLocked()
	return s.startLocked()
}

// Close stops serving for good and waits for every goroutine the Server
// started to end. Later calls to ListenBufconn, ListenTCP and Restart fail
// with ErrClosed. Close is idempotent.
func (s *Server) Close() {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.stopLocked()
	s.srv.closed = true
}

// startLocked serves on a new listener of the chosen transport. s.srv.mu must
// be held and the Server must not be serving.
func (s *Server) startLocked() error {
	var lis net.Listener
	switch s.srv.kind {
	case bufTransport:
		s.srv.buf = bufconn.Listen(bufSize)
		lis = s.srv.buf
	case tcpTransport:
		l, err := listenTCP(s.srv.addr)
		if err != nil {
			return err
		}
		s.srv.addr = l.Addr().String()
		lis = l
	}
	opts := append(slices.Clone(s.cfg.serverOpts), grpc.WaitForHandlers(true))
	gs := grpc.NewServer(opts...)
	testingv1.RegisterEchoServiceServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns nil after Stop; any other error also means the
		// listener is gone, which clients notice by themselves.
		_ = gs.Serve(lis)
	}()
	s.srv.gs, s.srv.done = gs, done
	return nil
}

// stopLocked stops the current grpc.Server, if any, and waits for it.
// s.srv.mu must be held.
func (s *Server) stopLocked() {
	if s.srv.gs == nil {
		return
	}
	s.srv.gs.Stop() // closes the listener and connections, waits for handlers
	<-s.srv.done
	s.srv.gs, s.srv.done, s.srv.buf = nil, nil, nil
}

// listenTCP listens on addr, or on 127.0.0.1 with a kernel-chosen port if addr
// is empty. A busy addr is retried for up to 5 s (package listen), since the port
// may be released only a little after the previous listener closed.
func listenTCP(addr string) (net.Listener, error) {
	if addr == "" {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	l, err := listen.Again(addr)
	if err != nil {
		return nil, fmt.Errorf("testserver: listen again on %s: %w", addr, err)
	}
	return l, nil
}
