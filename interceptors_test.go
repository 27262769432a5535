package resilience_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// End-to-end tests of the public API over real loopback TCP.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen serves resiliencetest's EchoServer behind its Faults on loopback
// TCP until the end of the test.
func listen(t *testing.T) (*resiliencetest.Faults, *resiliencetest.Listener) {
	t.Helper()
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(faults.ServerOptions(), grpc.WaitForHandlers(true))...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop) // waits for Serve and the handlers to return
	return faults, lis
}

func fastBackoff() backoff.Policy {
	return backoff.MustExponential(backoff.Config{BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: 5 * time.Millisecond, Jitter: 0.2})
}

func TestRetriesRideThroughTransientFailures(t *testing.T) {
	faults, lis := listen(t)
	if err := faults.InjectNext(resiliencetest.AllMethods, 2, resiliencetest.Fail(codes.Unavailable)); err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	m, err := interceptors.New(interceptors.Backoff(fastBackoff()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := interceptors.NewClientReady(ctx, addr, append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var attempts int
	resp, err := testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "x"}, interceptors.Attempts(&attempts))
	if err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if n := faults.Attempts(resiliencetest.AllMethods); resp.GetMessage() != "x" || attempts != 3 || n != 3 {
		t.Errorf("got message %q after %d attempts (server saw %d), want %q after 3 (3)", resp.GetMessage(), attempts, n, "x")
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestDownstreamGoneWaitsForConnectionWithinDeadline(t *testing.T) {
	addr := closedPort(t)
	m := interceptors.MustNew(interceptors.Backoff(fastBackoff()))
	conn, err := grpc.NewClient(addr, append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("code %v, want DeadlineExceeded: the call waits for the connection until its deadline (err %v)", status.Code(err), err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not carry the last attempt's cause", err)
	}
}

func TestDownstreamGoneFailsFastWithoutReadyWait(t *testing.T) {
	addr := closedPort(t)
	m := interceptors.MustNew(interceptors.Backoff(fastBackoff()), interceptors.MaxAttempts(3), interceptors.WithReadyWait(0))
	conn, err := grpc.NewClient(addr, append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("code %v, want Unavailable (err %v)", status.Code(err), err)
	}
	if ctx.Err() != nil {
		t.Errorf("call used up its whole deadline; want a fast failure")
	}
	var ie *interceptors.Error
	if !errors.As(err, &ie) || ie.Attempts != 3 {
		t.Errorf("err %v: want *interceptors.Error with 3 attempts", err)
	}
}
