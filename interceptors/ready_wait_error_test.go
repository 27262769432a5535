package interceptors

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// TestReadyWaitErrorNamesTheConnectionError: a call that starts while the
// connection is down waits for it before its first attempt; when its
// deadline ends the wait, its error says why the connection is down (the
// latest connection error of the target), not only that it waited.
func TestReadyWaitErrorNamesTheConnectionError(t *testing.T) {
	target := closedAddr(t)
	m := MustNew(WithReadyWait(time.Minute))
	conn, err := grpc.NewClient(target, append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Message: "x"})
		return err
	}
	// The first call's attempt finds the port closed, then waits.
	if err := call(); status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("first call: %v, want DeadlineExceeded with the last attempt's connection refused", err)
	}
	// The next one waits from the start: no attempt of its own.
	err = call()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second call: %v, want DeadlineExceeded", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "waiting for a ready connection") || !strings.Contains(msg, "last connection error: ") || !strings.Contains(msg, "connection refused") {
		t.Errorf("second call: %q, want the ready wait and the last connection error (connection refused)", msg)
	}
}
