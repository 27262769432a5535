package endpoint

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type event struct {
	addr    string
	ejected bool
	at      time.Duration // time since the core started, when delivered
}

// core is a detector with n endpoints, recording OnEject. Run in a synctest
// bubble, its time is the bubble's fake time: time.Sleep moves it.
type core struct {
	t      *testing.T
	start  time.Time
	det    *detector
	eps    []*epStats
	mu     sync.Mutex
	events []event
}

func newCore(t *testing.T, cfg Config, n int) *core {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := &core{t: t, start: time.Now()}
	cfg.OnEject = func(target, addr string, ejected bool) {
		if target != "test-target" {
			t.Errorf("OnEject target = %q", target)
		}
		// The hook runs outside the detector's lock: reading it must not
		// deadlock.
		_ = c.det.size()
		c.mu.Lock()
		c.events = append(c.events, event{addr, ejected, time.Since(c.start)})
		c.mu.Unlock()
	}
	c.det = newDetector("test-target", cfg)
	for i := range n {
		c.eps = append(c.eps, c.det.add(fmt.Sprintf("10.0.0.%d:443", i+1)))
	}
	return c
}

func (c *core) fail(i, n int) (ejected bool) {
	for range n {
		if c.det.record(c.eps[i], true) {
			ejected = true
		}
	}
	return ejected
}

func (c *core) succeed(i, n int) {
	for range n {
		c.det.record(c.eps[i], false)
	}
}

func (c *core) isEjected(i int) bool { return c.eps[i].ejected(c.det.elapsed()) }

func (c *core) got() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func TestConsecutiveRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{MinRequests: math.MaxInt32}, 5)
		if c.fail(0, 19) || c.isEjected(0) {
			t.Fatal("ejected after 19 failures in a row, want 20")
		}
		c.succeed(0, 1) // a success resets the run
		if c.fail(0, 19) {
			t.Fatal("ejected after a success and 19 failures")
		}
		if !c.fail(0, 1) || !c.isEjected(0) {
			t.Fatal("not ejected after 20 failures in a row")
		}
		if got := c.got(); len(got) != 1 || got[0] != (event{"10.0.0.1:443", true, 0}) {
			t.Fatalf("events = %v", got)
		}
		// Outcomes while ejected are dropped; the others are untouched.
		if c.fail(0, 100) || c.isEjected(1) {
			t.Fatal("outcomes of an ejected endpoint counted")
		}
	})
}

func TestFailureRatioRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 60% failing never reaches 0.7; 75% failing is ejected once the window
		// holds MinRequests outcomes. Runs are kept short: the consecutive rule
		// stays out of it.
		c := newCore(t, Config{}, 5)
		for range 100 {
			c.fail(0, 3)
			c.succeed(0, 2)
			time.Sleep(100 * time.Millisecond)
		}
		if c.isEjected(0) {
			t.Fatal("60% failing endpoint ejected")
		}
		n := 0
		for !c.isEjected(1) && n < 200 {
			c.fail(1, 3)
			c.succeed(1, 1)
			n += 4
		}
		if !c.isEjected(1) {
			t.Fatal("75% failing endpoint not ejected")
		}
		if n < 50 {
			t.Fatalf("ejected after %d outcomes, before MinRequests (50)", n)
		}
	})
}

func TestWindowRolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{ConsecutiveFailures: math.MaxInt32, MinRequests: 10, FailureRatio: 0.5}, 5)
		c.fail(0, 5) // old failures...
		time.Sleep(10 * time.Second)
		c.succeed(0, 5) // ...have left the window: 5 successes, 0 failures
		c.fail(0, 4)    // 4 of 9
		if c.isEjected(0) {
			t.Fatal("failures older than the window counted")
		}
		c.fail(0, 1) // 5 of 10
		if !c.isEjected(0) {
			t.Fatal("not ejected at 5 of 10 failing")
		}
	})
}

func TestEjectionTimeGrowsAndIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 100 * time.Second}, 5)
		for _, want := range []time.Duration{30, 60, 90, 100, 100} {
			want *= time.Second
			if !c.fail(0, 20) {
				t.Fatal("not ejected")
			}
			time.Sleep(want - 1)
			c.det.sweep()
			if !c.isEjected(0) {
				t.Fatalf("back before %v", want)
			}
			time.Sleep(1)
			c.det.sweep()
			if c.isEjected(0) {
				t.Fatalf("still ejected after %v", want)
			}
		}
		// The multiplier forgets one ejection per BaseEjectionTime in service:
		// after 100s back, 4 - 3 = 1, so the next ejection lasts 2 x 30s.
		time.Sleep(100 * time.Second)
		c.fail(0, 20)
		time.Sleep(60*time.Second - 1)
		c.det.sweep()
		if !c.isEjected(0) {
			t.Fatal("back before 60s")
		}
		time.Sleep(1)
		c.det.sweep()
		if c.isEjected(0) {
			t.Fatal("still ejected after 60s")
		}
		for _, e := range c.got() {
			if e.addr != "10.0.0.1:443" {
				t.Fatalf("event for %s", e.addr)
			}
		}
		if n := len(c.got()); n != 12 {
			t.Fatalf("%d events, want 12 (6 ejections, 6 returns)", n)
		}
	})
}

func TestReturnNoticedByOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{}, 5)
		c.fail(0, 20)
		time.Sleep(30 * time.Second)
		if c.isEjected(0) {
			t.Fatal("an ejection whose time is over still counts")
		}
		c.succeed(1, 1) // any outcome sweeps
		if got := c.got(); len(got) != 2 || got[1] != (event{"10.0.0.1:443", false, 30 * time.Second}) {
			t.Fatalf("events = %v", got)
		}
		// It starts afresh: 19 failures do not eject it again.
		if c.fail(0, 19) {
			t.Fatal("counts of before the ejection kept")
		}
	})
}

func TestMaxEjected(t *testing.T) {
	for _, tc := range []struct {
		n     int
		ratio float64
		want  int
	}{
		{1, 0, 0}, // nowhere else to go
		{2, 0, 1}, // at least one
		{3, 0, 1},
		{5, 0, 1},
		{9, 0, 1},
		{10, 0, 2},
		{100, 0.29, 29},
		{4, 1, 4},
	} {
		t.Run(fmt.Sprintf("%d-%v", tc.n, tc.ratio), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCore(t, Config{MaxEjectedRatio: tc.ratio}, tc.n)
				for i := range tc.n {
					c.fail(i, 50)
				}
				if got := len(c.det.ejectedAddrs()); got != tc.want {
					t.Fatalf("%d of %d ejected, want %d", got, tc.n, tc.want)
				}
			})
		})
	}
}

func TestCapFreedSlotIsTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{}, 5)
		c.fail(0, 20)
		c.fail(1, 20) // over the cap: stays in service, keeps counting
		if c.isEjected(1) {
			t.Fatal("cap exceeded")
		}
		time.Sleep(30 * time.Second)
		if !c.fail(1, 1) {
			t.Fatal("the freed slot did not go to the endpoint whose rule holds")
		}
	})
}

func TestRemoveForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{}, 3)
		c.fail(0, 20)
		c.det.remove(c.eps[0])
		if got := c.got(); len(got) != 2 || got[1] != (event{"10.0.0.1:443", false, 0}) {
			t.Fatalf("events = %v, want the removed endpoint's return", got)
		}
		if c.det.size() != 2 || c.det.nEjected != 0 {
			t.Fatalf("size %d, ejected %d after remove", c.det.size(), c.det.nEjected)
		}
		if c.fail(0, 50) { // late outcomes of in-flight attempts
			t.Fatal("removed endpoint ejected")
		}
		c.det.remove(c.eps[0]) // twice is harmless
		c.fail(1, 20)
		c.det.close()
		if got := c.got(); len(got) != 4 || got[3] != (event{"10.0.0.2:443", false, 0}) {
			t.Fatalf("events = %v, want a return for the one ejected at close", got)
		}
	})
}

func TestReconfigureWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{}, 5)
		c.fail(0, 19)
		cfg := Config{Window: 5 * time.Second}.withDefaults()
		cfg.OnEject = c.det.cfg.OnEject
		c.det.reconfigure(cfg)
		if c.fail(0, 19) {
			t.Fatal("run kept across a new window")
		}
		if !c.fail(0, 1) {
			t.Fatal("not ejected")
		}
	})
}

func TestHookPanicDoesNotWedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Config{}, 5)
		calls := 0
		c.det.cfg.OnEject = func(string, string, bool) {
			calls++
			if calls == 1 {
				panic("hook")
			}
		}
		func() {
			defer func() { _ = recover() }()
			c.fail(0, 20)
		}()
		time.Sleep(30 * time.Second)
		c.det.sweep()
		if calls != 2 {
			t.Fatalf("hook called %d times, want 2", calls)
		}
	})
}

// simulate feeds a detector round-robin outcomes over n endpoints at rate
// attempts/s in total for d of simulated time; fails(i, rng) decides each
// outcome. It returns the events and the most endpoints ejected at once.
func simulate(t *testing.T, cfg Config, seed uint64, n int, rate float64, d time.Duration,
	fails func(i int, rng *rand.Rand) bool) (events []event, maxEjected int) {
	t.Helper()
	c := newCore(t, cfg, n)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	step := time.Duration(float64(time.Second) / rate)
	steps := int(d / step)
	for k := range steps {
		time.Sleep(step)
		i := k % n
		if c.isEjected(i) { // the picker skips it
			i = (i + 1) % n
		}
		c.det.record(c.eps[i], fails(i, rng))
		maxEjected = max(maxEjected, c.det.nEjected)
	}
	return c.got(), maxEjected
}

func noise(p float64) func(int, *rand.Rand) bool {
	return func(_ int, rng *rand.Rand) bool { return rng.Float64() < p }
}

// TestDefaultsNoise checks the argument of the package documentation: under
// 30% independent failures on every endpoint, the defaults eject nothing,
// for 20 seeds, at the rate where the window rule is most exposed (the
// window just holds MinRequests) and at a high rate.
func TestDefaultsNoise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for seed := range uint64(20) {
			for _, r := range []struct {
				perEndpoint float64
				d           time.Duration
			}{{5, time.Hour}, {400, 30 * time.Second}} {
				if ev, _ := simulate(t, Config{}, seed, 5, 5*r.perEndpoint, r.d, noise(0.3)); len(ev) > 0 {
					t.Fatalf("seed %d, %v/s per endpoint: %d ejections under 30%% noise, first %+v",
						seed, r.perEndpoint, len(ev), ev[0])
				}
			}
		}
		// The simulation is sensitive: a rule as eager as Envoy's default
		// (5 consecutive failures) or a 50%-of-20 ratio ejects under the same
		// noise.
		for _, tc := range []struct {
			cfg  Config
			rate float64
		}{
			{Config{ConsecutiveFailures: 5}, 100},
			{Config{MinRequests: 20, FailureRatio: 0.5}, 10}, // the window holds about 20
		} {
			if ev, _ := simulate(t, tc.cfg, 1, 5, tc.rate, time.Hour, noise(0.3)); len(ev) == 0 {
				t.Errorf("%+v: no ejection under 30%% noise; the simulation cannot tell", tc.cfg)
			}
		}
	})
}

// TestDefaultsFailingEndpoint: a 100%-failing endpoint among four with 30%
// noise is ejected after at most 50 of its failures at any rate, and within
// 1s once it gets 20 attempts/s or more.
func TestDefaultsFailingEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, perEndpoint := range []float64{1, 10, 20, 50, 200, 1000} {
			for seed := range uint64(20) {
				c := newCore(t, Config{}, 5)
				rng := rand.New(rand.NewPCG(seed, 1))
				step := time.Duration(float64(time.Second) / (5 * perEndpoint))
				failures := 0
				for k := 0; !c.isEjected(0); k++ {
					if failures > 50 {
						t.Fatalf("%v/s, seed %d: not ejected after %d failures", perEndpoint, seed, failures)
					}
					time.Sleep(step)
					i := k % 5
					f := i == 0 || rng.Float64() < 0.3
					if i == 0 {
						failures++
					}
					c.det.record(c.eps[i], f)
				}
				took := time.Since(c.start)
				if perEndpoint >= 20 && took > time.Second {
					t.Fatalf("%v/s, seed %d: ejected after %v, want <= 1s", perEndpoint, seed, took)
				}
				if ev := c.got(); len(ev) != 1 || ev[0].addr != "10.0.0.1:443" {
					t.Fatalf("%v/s, seed %d: events %v, want only the failing endpoint", perEndpoint, seed, ev)
				}
			}
		}
	})
}

// TestDefaultsFullOutage: when every endpoint fails, no more than the cap
// (one of five) is ever ejected; the breaker is for that case.
func TestDefaultsFullOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev, most := simulate(t, Config{}, 0, 5, 500, 10*time.Minute, noise(1))
		if most != 1 {
			t.Fatalf("at most %d of 5 ejected at once, want the cap, 1", most)
		}
		if len(ev) == 0 {
			t.Fatal("nothing ejected")
		}
	})
}
