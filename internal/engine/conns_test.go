package engine

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/internal/clock"
)

func TestReconnectProbeBypassesGRPCBackoff(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	dials := make(chan struct{}, 100)
	refuse := func(ctx context.Context, _ string) (net.Conn, error) {
		dials <- struct{}{}
		return nil, errors.New("refused")
	}
	c := conns{interval: 25 * time.Millisecond, clock: fc}
	conn, err := grpc.NewClient("passthrough:///down",
		// grpc-go alone would wait an hour before dialling again.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: time.Hour, Multiplier: 1, MaxDelay: time.Hour},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithContextDialer(refuse), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	failed := func() {
		t.Helper()
		select {
		case <-dials:
		case <-ctx.Done():
			t.Fatal("no dial")
		}
		for s := conn.GetState(); s != connectivity.TransientFailure; s = conn.GetState() {
			if !conn.WaitForStateChange(ctx, s) {
				t.Fatal("connection never reached TRANSIENT_FAILURE")
			}
		}
	}
	failed()

	// The first waiter kicks the connection at once.
	w := c.register(conn, func() {}, true)
	failed()
	// Each probe interval may find the connection between states; count
	// how many intervals it takes to see three more dials. grpc-go alone
	// would not dial again for an hour.
	advances := 0
	for dialled := 0; dialled < 3; {
		if _, ok := fc.WaitForTimers(ctx.Done(), 1); !ok {
			t.Fatal("probe timer not armed")
		}
		fc.Advance(25 * time.Millisecond)
		advances++
		if advances > 60 {
			t.Fatalf("only %d dials after %d probe intervals", dialled, advances)
		}
		poll := time.NewTimer(50 * time.Millisecond)
		select {
		case <-dials:
			dialled++
			poll.Stop()
			for s := conn.GetState(); s != connectivity.TransientFailure; s = conn.GetState() {
				if !conn.WaitForStateChange(ctx, s) {
					t.Fatal("connection never failed again")
				}
			}
		case <-poll.C:
		}
	}
	t.Logf("3 dials in %d probe intervals", advances)
	c.release(conn, w, true) // the watcher goroutine ends here; goleak checks it
	if p := fc.Pending(); len(p) != 0 {
		t.Errorf("probe timers still pending after release: %v", p)
	}
}
