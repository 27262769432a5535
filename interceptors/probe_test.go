package interceptors

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
	m := MustNew(withClock(fc), WithReconnectProbe(25*time.Millisecond),
		// grpc-go alone would wait an hour before dialling again.
		WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: time.Hour, Multiplier: 1, MaxDelay: time.Hour},
			MinConnectTimeout: time.Second,
		}))
	conn, err := grpc.NewClient("passthrough:///down", append(m.DialOptions(),
		grpc.WithContextDialer(refuse), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	<-dials
	for s := conn.GetState(); s != connectivity.TransientFailure; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatal("connection never reached TRANSIENT_FAILURE")
		}
	}

	release := m.probes.acquire(conn)
	for i := range 3 {
		if _, ok := fc.WaitForTimers(ctx.Done(), 1); !ok {
			t.Fatal("probe timer not armed")
		}
		fc.Advance(25 * time.Millisecond)
		select {
		case <-dials:
		case <-ctx.Done():
			t.Fatalf("probe %d did not make the connection dial again", i+1)
		}
		for s := conn.GetState(); s != connectivity.TransientFailure; s = conn.GetState() {
			if !conn.WaitForStateChange(ctx, s) {
				t.Fatal("connection did not fail again")
			}
		}
	}
	release() // the probe goroutine ends here; goleak checks it
	if p := fc.Pending(); len(p) != 0 {
		t.Errorf("probe timers still pending after release: %v", p)
	}
}
