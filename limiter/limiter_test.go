package limiter

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string // "" for valid
	}{
		{Config{}, ""},
		{Config{Fixed: 8}, ""},
		{Config{Fixed: 8, Queue: NoQueue}, ""},
		{Config{MinLimit: 5, MaxLimit: 50}, ""},
		{Config{MaxLimit: 10}, ""}, // the initial limit is the maximum
		{Config{Fixed: -1}, "Fixed must be in [0, 1048576]"},
		{Config{InitialLimit: -3}, "InitialLimit must be in"},
		{Config{MaxLimit: 1 << 30}, "MaxLimit must be in"},
		{Config{Queue: -2}, "Queue must be in [0, 1048576] or NoQueue"},
		{Config{MinLimit: 30, MaxLimit: 20}, "MinLimit (30) must be <= MaxLimit (20)"},
		{Config{InitialLimit: 500, MaxLimit: 100}, "InitialLimit (500) must be in [MinLimit, MaxLimit] = [1, 100]"},
		{Config{Fixed: 4, MaxLimit: 8}, "Fixed (4) is a bulkhead"},
	} {
		_, err := New(tc.c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%+v): %v, want valid", tc.c, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%+v): %v, want an ErrInvalidConfig naming %q", tc.c, err, tc.want)
		}
	}
	// Every invalid field at once.
	err := Config{Fixed: -1, MinLimit: -1, Queue: -5}.Validate()
	for _, name := range []string{"Fixed", "MinLimit", "Queue"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate: %v, want %s named", err, name)
		}
	}
}

func mustNew(t *testing.T, c Config) *Limiter {
	t.Helper()
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBulkheadRefusesOverTheLimitWithoutQueue(t *testing.T) {
	l := mustNew(t, Config{Fixed: 2, Queue: NoQueue})
	p1, err1 := l.Acquire(context.Background())
	p2, err2 := l.Acquire(context.Background())
	if err1 != nil || err2 != nil {
		t.Fatalf("within the limit: %v, %v", err1, err2)
	}
	_, err := l.Acquire(context.Background())
	if !errors.Is(err, ErrLimited) || status.Code(err) != codes.Unavailable {
		t.Fatalf("over the limit: %v, want ErrLimited with Unavailable", err)
	}
	p1.Done(Answered)
	if _, err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("after a permit came back: %v", err)
	}
	p2.Done(Dropped)
	if n := l.InFlight(); n != 1 {
		t.Errorf("in flight %d, want 1", n)
	}
}

func TestQueueIsFIFOAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustNew(t, Config{Fixed: 1, Queue: 2})
		held, _ := l.Acquire(context.Background())
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				p, err := l.Acquire(context.Background())
				if err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				p.Done(Answered)
			})
			synctest.Wait() // waiter i is queued before the next comes
		}
		if q := l.Queued(); q != 2 {
			t.Fatalf("queued %d, want 2", q)
		}
		if _, err := l.Acquire(context.Background()); !errors.Is(err, ErrLimited) || errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("a third waiter: %v, want refused at once (queue full)", err)
		}
		held.Done(Answered)
		wg.Wait()
		if len(order) != 2 || order[0] != 0 || order[1] != 1 {
			t.Errorf("served in order %v, want [0 1]", order)
		}
	})
}

func TestQueueWaitEndsWhereTheAttemptCouldStillFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustNew(t, Config{Fixed: 1})
		// Teach the limiter a 30 ms round trip.
		for range minSamples + 1 {
			p, _ := l.Acquire(context.Background())
			time.Sleep(30 * time.Millisecond)
			p.Done(Answered)
		}
		held, _ := l.Acquire(context.Background())
		defer held.Done(Dropped)

		// 20 ms left: less than a round trip, refused at once.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := l.Acquire(ctx); !errors.Is(err, ErrLimited) || errors.Is(err, ErrQueueTimeout) || time.Since(start) != 0 {
			t.Fatalf("20 ms left: %v after %v, want refused at once, not as a queue timeout", err, time.Since(start))
		}
		// 100 ms left: waits 70 ms, the latest start that can finish.
		ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := l.Acquire(ctx); !errors.Is(err, ErrLimited) || !errors.Is(err, ErrQueueTimeout) || time.Since(start) != 70*time.Millisecond {
			t.Fatalf("100 ms left: %v after %v, want refused after 70ms as a queue timeout", err, time.Since(start))
		}
		if q := l.Queued(); q != 0 {
			t.Errorf("%d still queued after the wait ended", q)
		}
		// The caller's cancel ends a wait with the context's error.
		ctx, cancel = context.WithCancel(context.Background())
		go func() { time.Sleep(5 * time.Millisecond); cancel() }()
		if _, err := l.Acquire(ctx); err != context.Canceled {
			t.Fatalf("cancelled wait: %v, want context.Canceled", err)
		}
	})
}

// server simulates a downstream that serves `workers` requests at once for
// `service` each and queues the rest without bound (FIFO), as a server
// whose queue the client's limit is meant to keep short.
type server struct {
	mu      sync.Mutex
	workers chan struct{}
	service time.Duration
	served  atomic.Int64
}

func newServer(workers int, service time.Duration) *server {
	return &server{workers: make(chan struct{}, workers), service: service}
}

func (s *server) setCapacity(workers int, service time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers, s.service = make(chan struct{}, workers), service
}

func (s *server) call() {
	s.mu.Lock()
	w, d := s.workers, s.service
	s.mu.Unlock()
	w <- struct{}{}
	time.Sleep(d)
	<-w
	s.served.Add(1)
}

// drive sends Poisson arrivals at rate per second for d, each with a
// 100 ms deadline, through l to s; it returns the calls refused.
func drive(l *Limiter, s *server, rng *rand.Rand, rate float64, d time.Duration) (refused int64) {
	var wg sync.WaitGroup
	var n atomic.Int64
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			p, err := l.Acquire(ctx)
			if err != nil {
				n.Add(1)
				return
			}
			s.call()
			p.Done(Answered)
		})
	}
	wg.Wait()
	return n.Load()
}

func TestLimitSettlesNearTheServersCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		l := mustNew(t, Config{})
		s := newServer(4, 2*time.Millisecond) // 2,000/s
		// Below capacity nothing queues: the limit stays where it starts.
		drive(l, s, rng, 1400, time.Second)
		if got := l.Limit(); got != 1000 {
			t.Errorf("limit %d after 1 s at 0.7 of capacity, want the initial 1000", got)
		}
		// 1.5 times the capacity: the limit falls to the 4 workers plus a
		// short queue, and the server stays busy.
		before := s.served.Load()
		refused := drive(l, s, rng, 3000, 2*time.Second)
		served := s.served.Load() - before
		if got := l.Limit(); got < 5 || got > 4+12 {
			t.Errorf("limit %d during a spike at a 4-worker server, want 4 plus a short queue", got)
		}
		if goodput := float64(served) / 2 / 2000; goodput < 0.95 {
			t.Errorf("served %d in 2 s: %.2f of capacity, want >= 0.95", served, goodput)
		}
		if refused == 0 {
			t.Error("nothing refused at 1.5 times the capacity")
		}
		// Half the capacity: the limit follows.
		s.setCapacity(2, 2*time.Millisecond)
		drive(l, s, rng, 3000, 2*time.Second)
		if got := l.Limit(); got < 3 || got > 2+12 {
			t.Errorf("limit %d at a 2-worker server, want 2 plus a short queue", got)
		}
		// Eight times the capacity: the limit grows back while used.
		s.setCapacity(32, 2*time.Millisecond)
		drive(l, s, rng, 3000, time.Second)
		if got := l.Limit(); got < 7 {
			t.Errorf("limit %d after a second at 3000/s against a 32-worker server, want it grown past 6", got)
		}
		t.Logf("limit %d, refused %d in the spike", l.Limit(), refused)
	})
}

// A client that fans out many calls at once to an idle downstream is not
// held back: the limit starts at its maximum.
func TestFanOutAtStartIsNotLimited(t *testing.T) {
	l := mustNew(t, Config{})
	var ps []Permit
	for i := range 500 {
		p, err := l.Acquire(context.Background())
		if err != nil {
			t.Fatalf("call %d of a fan-out: %v", i, err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.Done(Dropped)
	}
}

func TestOverloadCutsTheLimitOncePerRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustNew(t, Config{InitialLimit: 100})
		// A round trip of 10 ms, learnt from answered attempts.
		for range minSamples {
			p, _ := l.Acquire(context.Background())
			time.Sleep(10 * time.Millisecond)
			p.Done(Answered)
		}
		// 30 attempts time out at the same moment: one cut.
		var ps []Permit
		for range 30 {
			p, _ := l.Acquire(context.Background())
			ps = append(ps, p)
		}
		time.Sleep(10 * time.Millisecond)
		for _, p := range ps {
			p.Done(Overloaded)
		}
		if got := l.Limit(); got != 90 {
			t.Fatalf("limit %d after one round trip of timeouts, want 90 (one 10 %% cut)", got)
		}
	})
}

func TestDroppedOutcomesAreNotMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustNew(t, Config{})
		for range 200 {
			p, _ := l.Acquire(context.Background())
			time.Sleep(time.Millisecond)
			p.Done(Dropped)
		}
		if got, rtt := l.Limit(), l.noLoad.get(time.Now()); got != 1000 || rtt != 0 {
			t.Fatalf("limit %d, no-load rtt %v after dropped outcomes only, want 1000 and nothing measured", got, rtt)
		}
	})
}

func TestNoAllocationWithoutWaiting(t *testing.T) {
	l := mustNew(t, Config{})
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := l.Acquire(ctx)
		p.Done(Answered)
	}); n != 0 {
		t.Errorf("%v allocations per permit, want 0", n)
	}
}

func BenchmarkAcquireDone(b *testing.B) {
	l, _ := New(Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _ := l.Acquire(ctx)
			p.Done(Answered)
		}
	})
}

// A limit that fell in a spike rises again, although light load leaves it
// unused, once the congestion is 10 s old: what the downstream could serve
// then says little now (it may have restarted, or scaled out).
func TestUnusedLimitRisesOnceTheCongestionIsStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		l := mustNew(t, Config{})
		s := newServer(4, 2*time.Millisecond)
		drive(l, s, rng, 3000, time.Second)
		low := l.Limit()
		if low > 4+12 {
			t.Fatalf("limit %d after a spike, want it fallen near the 4 workers", low)
		}
		drive(l, s, rng, 300, 9*time.Second)
		if got := l.Limit(); got != low {
			t.Errorf("limit %d after 9 s of light load, want it still %d: the congestion is recent", got, low)
		}
		drive(l, s, rng, 300, 3*time.Second)
		if got := l.Limit(); got < 4*low {
			t.Errorf("limit %d after 12 s of light load, want it risen well above %d", got, low)
		}
	})
}

// Reset takes the limit back to the initial one and forgets the no-load
// round trip: a queued call gets a place at once, the hook is told, and
// the limit is learned again from the round trips after the reset.
func TestResetForgetsWhatWasMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &changes{}
		c.l = mustNew(t, Config{InitialLimit: 20, OnLimitChange: c.hook})
		learnRoundTrip(c.l)
		for range 30 {
			timeOut(c.l)
		}
		low := c.l.Limit()
		if low > 2 {
			t.Fatalf("limit %d after 30 overloaded round trips, want it cut to 1 or 2", low)
		}
		held := make([]Permit, low)
		for i := range held {
			held[i], _ = c.l.Acquire(context.Background())
		}
		got := make(chan error, 1)
		go func() {
			p, err := c.l.Acquire(context.Background())
			got <- err
			p.Done(Dropped)
		}()
		synctest.Wait()
		if c.l.Queued() != 1 {
			t.Fatalf("queued %d with the limit full, want 1", c.l.Queued())
		}
		c.l.Reset()
		if err := <-got; err != nil {
			t.Errorf("queued call after Reset: %v, want a permit", err)
		}
		if c.l.Limit() != 20 {
			t.Errorf("limit %d after Reset, want the initial 20", c.l.Limit())
		}
		if told := c.told(); told[len(told)-1] != [2]int{low, 20} {
			t.Errorf("hook last told %v, want [%d 20]", told[len(told)-1], low)
		}
		for _, p := range held {
			p.Done(Dropped)
		}
		// The no-load round trip was forgotten: a downstream that now
		// answers in 40 ms, not 10, is not read as a queue of 3/4 of what
		// is in flight, and the used limit rises.
		for range minSamples {
			var ps []Permit
			for range 20 {
				p, _ := c.l.Acquire(context.Background())
				ps = append(ps, p)
			}
			time.Sleep(40 * time.Millisecond)
			for _, p := range ps {
				p.Done(Answered)
			}
		}
		if got := c.l.Limit(); got <= 20 {
			t.Errorf("limit %d after 40 ms round trips filling it, want it risen above 20: the 10 ms no-load round trip from before the reset still counts", got)
		}
	})
}

func TestResetKeepsAFixedLimit(t *testing.T) {
	l := mustNew(t, Config{Fixed: 3})
	l.Reset()
	if got := l.Limit(); got != 3 {
		t.Errorf("bulkhead limit %d after Reset, want 3", got)
	}
}
