package engine

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// downConn returns a connection whose every dial fails at once and whose
// own reconnect backoff is an hour, and a channel that receives the
// (bubble) time of every dial.
func downConn(t *testing.T) (*grpc.ClientConn, <-chan time.Time) {
	t.Helper()
	dials := make(chan time.Time, 1000)
	conn, err := grpc.NewClient("passthrough:///down",
		// grpc-go alone would wait an hour before dialling again.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: time.Hour, Multiplier: 1, MaxDelay: time.Hour},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			dials <- time.Now()
			return nil, errors.New("refused")
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn, dials
}

func TestReconnectProbeBypassesGRPCBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, dials := downConn(t)
		defer conn.Close()
		c := conns{interval: 25 * time.Millisecond, rand: func() float64 { return 0.5 }}
		conn.Connect()
		synctest.Wait()
		if len(dials) != 1 {
			t.Fatalf("%d dials after Connect, want 1", len(dials))
		}
		<-dials

		// The first waiter kicks the connection at once.
		w := c.register(conn, func() {}, true)
		synctest.Wait()
		if len(dials) != 1 {
			t.Fatalf("%d dials when the first waiter came, want 1 at once", len(dials))
		}
		<-dials
		// Then every probe interval (25 ms, r = 0.5) dials again; grpc-go
		// alone would not dial for an hour.
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(dials); n < 30 || n > 41 {
			t.Errorf("%d dials in a second of 25 ms probes, want about 40", n)
		}
		c.release(conn, w, true) // the watcher goroutine ends here
		synctest.Wait()
		n := len(dials)
		time.Sleep(time.Second)
		synctest.Wait()
		if len(dials) != n {
			t.Errorf("%d dials after the last waiter left, want none", len(dials)-n)
		}
	})
}

// TestReconnectProbeJitter: every wait of the probe is drawn from the
// injected source as (0.5 + r) x interval, so waits spread over
// [0.5, 1.5) x interval instead of ticking in lockstep.
func TestReconnectProbeJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		seq := []float64{0, 0.999, 0.25, 0.75, 0.5, 0.1, 0.9}
		var mu sync.Mutex
		drawn := map[time.Duration]bool{}
		i := 0
		c := conns{interval: interval, rand: func() float64 {
			mu.Lock()
			defer mu.Unlock()
			r := seq[i%len(seq)]
			i++
			drawn[time.Duration((0.5+r)*float64(interval))] = true
			return r
		}}
		conn, dials := downConn(t)
		defer conn.Close()
		w := c.register(conn, func() {}, true)
		last := <-dials
		seen := map[time.Duration]bool{}
		for len(seen) < 4 {
			at := <-dials
			d := at.Sub(last)
			last = at
			mu.Lock()
			ok := drawn[d]
			mu.Unlock()
			if !ok || d < interval/2 || d >= interval*3/2 {
				t.Fatalf("probe wait %v: not (0.5 + r) x %v for a drawn r (drawn %v)", d, interval, drawn)
			}
			seen[d] = true
		}
		c.release(conn, w, true)
		t.Logf("waits: %v", seen)
	})
}

// TestRecentlyProbed: a connection whose last waiter left less than
// recentProbe intervals ago counts as probed (a new waiter does not kick
// it at once); older entries are forgotten.
func TestRecentlyProbed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := conns{interval: 100 * time.Millisecond, rand: func() float64 { return 0 }}
		a, b := new(grpc.ClientConn), new(grpc.ClientConn)
		if c.recentlyProbedLocked(a) {
			t.Fatal("never probed, yet recent")
		}
		c.probed = map[*grpc.ClientConn]time.Time{a: time.Now()}
		time.Sleep(150 * time.Millisecond)
		c.probed[b] = time.Now()
		if !c.recentlyProbedLocked(a) || !c.recentlyProbedLocked(b) {
			t.Fatal("probed within 2 intervals, yet not recent")
		}
		time.Sleep(50 * time.Millisecond)
		if c.recentlyProbedLocked(a) {
			t.Fatal("probed 2 intervals ago, still recent")
		}
		if _, ok := c.probed[a]; ok || len(c.probed) != 1 {
			t.Fatalf("old entry kept: %v", c.probed)
		}
	})
}
