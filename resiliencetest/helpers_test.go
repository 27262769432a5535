package resiliencetest_test

import (
	"context"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	echo         = testingv1.EchoService_Echo_FullMethodName
	serverStream = testingv1.EchoService_ServerStream_FullMethodName
	bidiStream   = testingv1.EchoService_BidiStream_FullMethodName
	clientStream = testingv1.EchoService_ClientStream_FullMethodName
)

// recorder is an outer server interceptor: it signals every attempt's
// arrival and the code it ended with, as the server returned it, on the
// channels that are not nil.
type recorder struct {
	arrived chan string     // receives the method of every attempt, if not nil
	endings chan codes.Code // receives the code of every attempt, if not nil
}

func (r *recorder) arrive(method string) {
	if r.arrived != nil {
		r.arrived <- method
	}
}

func (r *recorder) done(err error) {
	if r.endings != nil {
		r.endings <- status.Code(err)
	}
}

func (r *recorder) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			r.arrive(info.FullMethod)
			resp, err := h(ctx, req)
			r.done(err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			r.arrive(info.FullMethod)
			err := h(srv, ss)
			r.done(err)
			return err
		}),
	}
}

// server is an EchoServer behind a recorder and faults, on a Listener: on
// loopback TCP or, for tests in a testing/synctest bubble, in memory.
type server struct {
	lis    *resiliencetest.Listener
	faults *resiliencetest.Faults
	rec    *recorder
}

// serve starts an EchoServer with faults (a fresh one if nil) on a new
// Listener; it stops at the end of the test.
func serve(t *testing.T, faults *resiliencetest.Faults, rec *recorder) *server {
	t.Helper()
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	return newServer(t, lis, faults, rec)
}

// newServer serves faults (a fresh one if nil) and rec (a fresh one if
// nil) on lis until the end of the test.
func newServer(t *testing.T, lis *resiliencetest.Listener, faults *resiliencetest.Faults, rec *recorder) *server {
	t.Helper()
	if faults == nil {
		var err error
		if faults, err = resiliencetest.NewFaults(); err != nil {
			t.Fatal(err)
		}
	}
	if rec == nil {
		rec = &recorder{}
	}
	s := &server{lis: lis, faults: faults, rec: rec}
	gs := grpc.NewServer(append(s.rec.options(), s.faults.ServerOptions()...)...)
	testingv1.RegisterEchoServiceServer(gs, resiliencetest.EchoServer{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return s
}

// serveMem is serve on ListenMemory, for tests that run in a
// testing/synctest bubble (real sockets do not work in one).
func serveMem(t *testing.T, faults *resiliencetest.Faults, rec *recorder) *server {
	t.Helper()
	return newServer(t, resiliencetest.ListenMemory(), faults, rec)
}

// dialInsecure are the options of a plain client: no retries.
func dialInsecure(opts ...grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry(),
	}, opts...)
}

func echoClient(conn *grpc.ClientConn) testingv1.EchoServiceClient {
	return testingv1.NewEchoServiceClient(conn)
}

// client returns a plain client of s, through the Listener's dialer.
func (s *server) client(t *testing.T, opts ...grpc.DialOption) testingv1.EchoServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.lis.Target(), dialInsecure(append(opts, grpc.WithContextDialer(s.lis.DialContext))...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testingv1.NewEchoServiceClient(conn)
}

// callCtx bounds a call that should answer.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func echoCode(ctx context.Context, c testingv1.EchoServiceClient, opts ...grpc.CallOption) codes.Code {
	_, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "hi"}, opts...)
	return status.Code(err)
}

func mustNewFaults(t *testing.T, opts ...resiliencetest.Option) *resiliencetest.Faults {
	t.Helper()
	f, err := resiliencetest.NewFaults(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func nan() float64 { return math.NaN() }
