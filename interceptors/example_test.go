package interceptors_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// flakyServer fails the first `failures` calls with Unavailable.
type flakyServer struct {
	testingv1.UnimplementedEchoServiceServer
	failures int64
	calls    atomic.Int64
}

func (s *flakyServer) Echo(_ context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if s.calls.Add(1) <= s.failures {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

// serve starts srv on an in-memory listener and returns a client
// connection dialled with opts, and a function that stops both.
func serve(srv testingv1.EchoServiceServer, opts ...grpc.DialOption) (*grpc.ClientConn, func()) {
	lis := bufconn.Listen(1 << 16)
	s := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	opts = append(opts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		panic(err)
	}
	return conn, func() { conn.Close(); s.Stop() }
}

func ExampleMiddleware_DialOptions() {
	m, err := interceptors.New(
		interceptors.WithMaxAttempts(4),
		interceptors.WithBackoff(backoff.MustExponential(backoff.Config{
			BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: 10 * time.Millisecond, Jitter: 0.2,
		})),
	)
	if err != nil {
		panic(err)
	}
	server := &flakyServer{failures: 2}
	conn, stop := serve(server, m.DialOptions()...)
	defer stop()

	var attempts int
	resp, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(),
		&testingv1.EchoRequest{Message: "hello"}, interceptors.CallAttempts(&attempts))
	fmt.Println(resp.GetMessage(), err, attempts)
	// Output: hello <nil> 3
}

func ExampleCallNoRetry() {
	m := interceptors.MustNew()
	conn, stop := serve(&flakyServer{failures: 1}, m.DialOptions()...)
	defer stop()

	// A non-idempotent call: one attempt only.
	_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(),
		&testingv1.EchoRequest{Message: "charge"}, interceptors.CallNoRetry())
	fmt.Println(status.Code(err))
	// Output: Unavailable
}

func ExampleError() {
	m := interceptors.MustNew(interceptors.WithBackoff(backoff.Constant(0)))
	conn, stop := serve(&flakyServer{failures: 100}, m.DialOptions()...)
	defer stop()

	_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
	var ie *interceptors.Error
	if errors.As(err, &ie) {
		fmt.Println(status.Code(err), ie.Attempts)
	}
	fmt.Println(err)
	// Output:
	// Unavailable 3
	// rpc error: code = Unavailable desc = warming up (after 3 attempts)
}

func ExampleWithMethodPolicy() {
	m := interceptors.MustNew(
		interceptors.WithBackoff(backoff.Constant(0)),
		// Echo is not safe to repeat in this example: never retry it.
		interceptors.WithMethodPolicy(
			interceptors.MatchMethods("/resilience.testing.v1.EchoService/Echo"),
			interceptors.CallNoRetry()),
	)
	server := &flakyServer{failures: 1}
	conn, stop := serve(server, m.DialOptions()...)
	defer stop()

	_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
	fmt.Println(status.Code(err), server.calls.Load())
	// Output: Unavailable 1
}

func ExampleNew_invalid() {
	_, err := interceptors.New(interceptors.WithMaxAttempts(0))
	fmt.Println(err)
	fmt.Println(errors.Is(err, interceptors.ErrInvalidOption))
	// Output:
	// interceptors: invalid option: WithMaxAttempts: must be >= 1, got 0
	// true
}
