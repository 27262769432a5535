package faultserver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startBufconn starts a bufconn server and a client of it, both closed
// when the test ends.
func startBufconn(t *testing.T) (*Server, testgrpc.TestServiceClient) {
	t.Helper()
	srv, err := Start(Bufconn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(srv.Target(), srv.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, testgrpc.NewTestServiceClient(conn)
}

func call(t *testing.T, c testgrpc.TestServiceClient, req *testpb.SimpleRequest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.UnaryCall(ctx, req, grpc.WaitForReady(true))
	return err
}

func TestFaultsStopAndRestart(t *testing.T) {
	for _, tr := range []Transport{Bufconn, TCP} {
		t.Run(string(tr), func(t *testing.T) {
			srv, err := Start(tr)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			conn, err := grpc.NewClient(srv.Target(), srv.DialOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := testgrpc.NewTestServiceClient(conn)
			req := &testpb.SimpleRequest{ResponseSize: 8}

			if err := call(t, c, req); err != nil {
				t.Fatalf("healthy call: %v", err)
			}
			srv.SetFaults(Faults{Outage: true})
			err = call(t, c, req)
			if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != InjectedMessage {
				t.Fatalf("outage call: got %v, want Unavailable %q", err, InjectedMessage)
			}
			srv.SetFaults(Faults{FailFraction: 1})
			if got := status.Code(call(t, c, req)); got != codes.Unavailable {
				t.Fatalf("FailFraction 1: got %v, want Unavailable", got)
			}
			// A status the client asked for is the service's, untouched.
			srv.SetFaults(Faults{})
			asked := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "asked"}}
			if got := status.Code(call(t, c, asked)); got != codes.NotFound {
				t.Fatalf("requested status: got %v, want NotFound", got)
			}
			if got := srv.Hits(); got != 4 {
				t.Errorf("Hits = %d, want 4", got)
			}

			target := srv.Target()
			srv.Stop()
			fast, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = c.UnaryCall(fast, req) // fail fast: no server
			cancel()
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call to a stopped server: got %v, want Unavailable", err)
			}
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			if srv.Target() != target {
				t.Fatalf("restarted on %s, want %s", srv.Target(), target)
			}
			if err := call(t, c, req); err != nil {
				t.Fatalf("call after restart: %v", err)
			}
		})
	}
}

func TestSlowAttemptEndsWhenClientGivesUp(t *testing.T) {
	srv, c := startBufconn(t)
	if err := call(t, c, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(Faults{SlowFraction: 1, SlowDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow call: got %v, want DeadlineExceeded", err)
	}
	// Close (at cleanup) must not wait an hour: the handler saw the cancel.
}

func TestUnknownTransport(t *testing.T) {
	if _, err := Start("carrier-pigeon"); err == nil {
		t.Fatal("Start accepted an unknown transport")
	}
}
