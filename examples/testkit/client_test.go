package testkit_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestClientRidesOutFaults(t *testing.T) {
	// The server: your service, with the kit's fault interceptors, on a
	// loopback listener the test can stop and restart.
	faults, err := resiliencetest.NewFaults(resiliencetest.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{}) // register your service here
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	// The client: your settings.
	m, err := interceptors.New(interceptors.MaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testingv1.NewEchoServiceClient(conn)
	const method = testingv1.EchoService_Echo_FullMethodName
	req := &testingv1.EchoRequest{Message: "hi"}
	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := client.Echo(ctx, req)
		return err
	}

	// Two Unavailable in a row are retried through: 3 attempts arrive.
	if err := faults.InjectNext(method, 2, resiliencetest.Fail(codes.Unavailable)); err != nil {
		t.Fatal(err)
	}
	if err := call(5 * time.Second); err != nil {
		t.Fatalf("after 2 failures: %v", err)
	}
	if got := faults.AttemptNumbers(method); got[1] != 1 || got[2] != 1 || got[3] != 1 {
		t.Errorf("attempts by number %v, want one each of 1, 2, 3", got)
	}

	// A client error is never retried.
	faults.Reset()
	if err := faults.InjectNext(method, 1, resiliencetest.Fail(codes.InvalidArgument)); err != nil {
		t.Fatal(err)
	}
	if err := call(5 * time.Second); status.Code(err) != codes.InvalidArgument || faults.Attempts(method) != 1 {
		t.Errorf("%v after %d attempts, want InvalidArgument after 1", err, faults.Attempts(method))
	}

	// 30 % noise: every call still succeeds.
	if err := faults.InjectFraction(method, 0.3, resiliencetest.Fail(codes.Unavailable)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := call(5 * time.Second); err != nil {
			t.Errorf("call %d under noise: %v", i, err)
		}
	}
	faults.Reset()

	// A restart on the same port: the client finds the server again.
	if err := lis.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := call(5 * time.Second); err != nil {
		t.Errorf("after a restart: %v", err)
	}

	// A hung server: the caller's deadline ends the call, not a retry loop.
	if err := faults.InjectNext(method, 1, resiliencetest.Hang()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := call(200 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("hung server: %v, want DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("hung server: the call took %v, its deadline was 200ms", elapsed)
	}
}
