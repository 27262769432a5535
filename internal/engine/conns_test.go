package engine

import (
	"context"
	"errors"
	"net"
	"sync"
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
	c := conns{interval: 25 * time.Millisecond, rand: func() float64 { return 0.5 }, clock: fc}
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

// TestReconnectProbeJitter: every wait of the probe is drawn from the
// injected source as (0.5 + r) x interval, so waits spread over
// [0.5, 1.5) x interval instead of ticking in lockstep.
func TestReconnectProbeJitter(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	const interval = 100 * time.Millisecond
	seq := []float64{0, 0.999, 0.25, 0.75, 0.5, 0.1, 0.9}
	var mu sync.Mutex
	drawn := map[time.Duration]bool{}
	i := 0
	c := conns{interval: interval, clock: fc, rand: func() float64 {
		mu.Lock()
		defer mu.Unlock()
		r := seq[i%len(seq)]
		i++
		drawn[time.Duration((0.5+r)*float64(interval))] = true
		return r
	}}
	conn, err := grpc.NewClient("passthrough:///down",
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: time.Hour, Multiplier: 1, MaxDelay: time.Hour},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return nil, errors.New("refused") }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	w := c.register(conn, func() {}, true)
	seen := map[time.Duration]bool{}
	for len(seen) < 4 {
		p, ok := fc.WaitForTimers(ctx.Done(), 1)
		if !ok {
			t.Fatalf("probe timer not armed; waits seen: %v", seen)
		}
		d := p[0]
		mu.Lock()
		ok = drawn[d]
		mu.Unlock()
		if !ok || d < interval/2 || d >= interval*3/2 {
			t.Fatalf("probe wait %v: not (0.5 + r) x %v for a drawn r", d, interval)
		}
		seen[d] = true
		fc.Advance(d)
	}
	c.release(conn, w, true)
	t.Logf("waits: %v", seen)
}

// TestRecentlyProbed: a connection whose last waiter left less than
// recentProbe intervals ago counts as probed (a new waiter does not kick
// it at once); older entries are forgotten.
func TestRecentlyProbed(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	c := conns{interval: 100 * time.Millisecond, rand: func() float64 { return 0 }, clock: fc}
	a, b := new(grpc.ClientConn), new(grpc.ClientConn)
	if c.recentlyProbedLocked(a) {
		t.Fatal("never probed, yet recent")
	}
	c.probed = map[*grpc.ClientConn]time.Time{a: fc.Now()}
	fc.Advance(150 * time.Millisecond)
	c.probed[b] = fc.Now()
	if !c.recentlyProbedLocked(a) || !c.recentlyProbedLocked(b) {
		t.Fatal("probed within 2 intervals, yet not recent")
	}
	fc.Advance(50 * time.Millisecond)
	if c.recentlyProbedLocked(a) {
		t.Fatal("probed 2 intervals ago, still recent")
	}
	if _, ok := c.probed[a]; ok || len(c.probed) != 1 {
		t.Fatalf("old entry kept: %v", c.probed)
	}
}
