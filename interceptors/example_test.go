package interceptors_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// flakyServer starts an EchoService server in memory whose first
// `failures` attempts fail with Unavailable, and returns its faults, a
// client connection dialled with opts, and a function that stops both.
func flakyServer(failures int, opts ...grpc.DialOption) (*resiliencetest.Faults, *grpc.ClientConn, func()) {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		panic(err)
	}
	if err := faults.InjectNext(resiliencetest.AllMethods, failures,
		resiliencetest.Fail(codes.Unavailable).WithMessage("warming up")); err != nil {
		panic(err)
	}
	lis := resiliencetest.ListenMemory()
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Target(), append([]grpc.DialOption{grpc.WithContextDialer(lis.DialContext),
		grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		panic(err)
	}
	return faults, conn, func() { conn.Close(); srv.Stop() }
}

func ExampleMiddleware_DialOptions() {
	m, err := interceptors.New(
		interceptors.MaxAttempts(4),
		interceptors.Backoff(backoff.MustExponential(backoff.Config{
			BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: 10 * time.Millisecond, Jitter: 0.2,
		})),
	)
	if err != nil {
		panic(err)
	}
	_, conn, stop := flakyServer(2, m.DialOptions()...)
	defer stop()

	var attempts int
	resp, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(),
		&testingv1.EchoRequest{Message: "hello"}, interceptors.Attempts(&attempts))
	fmt.Println(resp.GetMessage(), err, attempts)
	// Output: hello <nil> 3
}

func ExampleMaxAttempts() {
	m := interceptors.MustNew()
	_, conn, stop := flakyServer(1, m.DialOptions()...)
	defer stop()

	// A non-idempotent call: one attempt only.
	_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(),
		&testingv1.EchoRequest{Message: "charge"}, interceptors.MaxAttempts(1))
	fmt.Println(status.Code(err))
	// Output: Unavailable
}

func ExampleError() {
	m := interceptors.MustNew(interceptors.Backoff(backoff.Constant(0)))
	_, conn, stop := flakyServer(100, m.DialOptions()...)
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
		interceptors.Backoff(backoff.Constant(0)),
		// Echo is not safe to repeat in this example: never retry it.
		interceptors.WithMethodPolicy(
			interceptors.MatchMethods("/resilience.testing.v1.EchoService/Echo"),
			interceptors.MaxAttempts(1)),
	)
	server, conn, stop := flakyServer(1, m.DialOptions()...)
	defer stop()

	_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
	fmt.Println(status.Code(err), server.Attempts(resiliencetest.AllMethods))
	// Output: Unavailable 1
}

func ExampleNew_invalid() {
	_, err := interceptors.New(interceptors.MaxAttempts(0))
	fmt.Println(err)
	fmt.Println(errors.Is(err, interceptors.ErrInvalidConfig))
	// Output:
	// interceptors: invalid config: MaxAttempts: must be >= 1, got 0
	// true
}
