// Quickstart: the smallest correct setup. It starts an EchoService on
// loopback that fails two of every three calls with Unavailable, connects
// to it through the resilience interceptors and shows every call succeed,
// with the number of attempts it took.
//
//	go -C examples run ./quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// flaky fails two of every three calls, as a downstream in trouble might.
type flaky struct {
	testingv1.UnimplementedEchoServiceServer
	calls atomic.Int64
}

func (f *flaky) Echo(_ context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if f.calls.Add(1)%3 != 0 {
		return nil, status.Error(codes.Unavailable, "flaky: try again")
	}
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	server := &flaky{}
	testingv1.RegisterEchoServiceServer(srv, server)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	// The resilient client: 3 attempts per call, 50 ms × 2^n backoff with
	// jitter, a 10 s deadline for calls that set none, grpc-go's own
	// retries off.
	m, err := interceptors.New(interceptors.MaxAttempts(3))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := interceptors.NewClientReady(ctx, lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)

	for i := 1; i <= 5; i++ {
		var attempts int
		start := time.Now()
		resp, err := client.Echo(context.Background(), &testingv1.EchoRequest{Message: fmt.Sprintf("hello %d", i)},
			interceptors.Attempts(&attempts))
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		fmt.Printf("call %d: %q after %d attempts in %v\n", i, resp.GetMessage(), attempts, time.Since(start).Round(time.Millisecond))
	}

	// Without retries the same server fails most calls.
	_, err = client.Echo(context.Background(), &testingv1.EchoRequest{Message: "once"}, interceptors.MaxAttempts(1))
	fmt.Printf("a call with MaxAttempts(1): code %v\n", status.Code(err))
	fmt.Printf("the server saw %d attempts for 6 calls\n", server.calls.Load())
	return nil
}
