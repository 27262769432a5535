package breaker

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// openings is a Shared that records how long each opening lasts; left
// degraded (as a Set starts), the Set stays local.
type openings struct {
	mu sync.Mutex
	m  *Member
	d  []time.Duration
}

func (o *openings) Attach(m *Member) error { o.m = m; return nil }

func (o *openings) Transition(t Transition) {
	if t.To == StateOpen {
		o.mu.Lock()
		o.d = append(o.d, t.OpenFor)
		o.mu.Unlock()
	}
}

func (o *openings) Voted(string, Vote) {}

func (o *openings) list() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.d)
}

// stillOpenUntil checks that key's breaker refuses until d has passed and
// admits a probe at d, which it returns.
func stillOpenUntil(t *testing.T, s *Set, key string, d time.Duration) func(error) {
	t.Helper()
	time.Sleep(d - time.Nanosecond)
	mustReject(t, s, key, StateOpen)
	time.Sleep(time.Nanosecond)
	return mustAllow(t, s, key)
}

// The default open period: 25ms after the trip, doubled by every failed
// probe up to 100ms, and 25ms again once the breaker has closed.
func TestOpenPeriodGrowsToTheCapAndResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{})
		ms := time.Millisecond
		for round := range 2 {
			trip(t, s, "k")
			for _, d := range []time.Duration{25 * ms, 50 * ms, 100 * ms, 100 * ms, 100 * ms} {
				stillOpenUntil(t, s, "k", d)(errUnavailable)
			}
			stillOpenUntil(t, s, "k", 100*ms)(nil) // the first probe goes alone
			p := mustAllow(t, s, "k")
			mustAllow(t, s, "k")(nil)
			p(nil)
			checkState(t, s, "k", StateClosed)
			t.Logf("round %d: 25, 50, 100, 100, 100, 100ms, then closed", round)
		}
	})
}

// An OpenTimeout above MaxOpenTimeout (a Config that sets only a long
// OpenTimeout) and an OpenMultiplier of 1 both keep the period fixed.
func TestFixedOpenPeriods(t *testing.T) {
	for _, c := range []Config{
		{OpenTimeout: time.Second},
		{OpenTimeout: 40 * time.Millisecond, OpenMultiplier: 1},
	} {
		t.Run(fmt.Sprint(c.OpenTimeout), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newTestSet(t, c)
				trip(t, s, "k")
				for range 4 {
					stillOpenUntil(t, s, "k", c.OpenTimeout)(errUnavailable)
				}
			})
		})
	}
}

// Every period is shortened by up to OpenJitter of itself, never
// lengthened, with draws from Rand spread over the whole range.
func TestOpenPeriodJitter(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    func() float64
		want [2]time.Duration // bounds of the periods at the cap
	}{
		{"r=0", func() float64 { return 0 }, [2]time.Duration{100 * time.Millisecond, 100 * time.Millisecond}},
		{"r=0.5", func() float64 { return 0.5 }, [2]time.Duration{95*time.Millisecond - 1, 95 * time.Millisecond}},
		{"r above 1", func() float64 { return 7 }, [2]time.Duration{90*time.Millisecond - 1, 90 * time.Millisecond}},
		{"r below 0", func() float64 { return -7 }, [2]time.Duration{100 * time.Millisecond, 100 * time.Millisecond}},
		{"r NaN", func() float64 { return math.NaN() }, [2]time.Duration{100 * time.Millisecond, 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := jitteredPeriods(t, tc.r, 10)
				for _, d := range got[3:] {
					if d < tc.want[0] || d > tc.want[1] {
						t.Fatalf("periods at the cap %v, want all in [%v, %v]", got[3:], tc.want[0], tc.want[1])
					}
				}
			})
		})
	}
	t.Run("seeded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := jitteredPeriods(t, rand.New(rand.NewPCG(7, 7)).Float64, 1000)
			for i, d := range got[:3] { // the ramp: 25, 50, 100ms, each shortened by up to 10%
				hi := 25 * time.Millisecond << i
				if lo := hi * 9 / 10; d < lo || d > hi {
					t.Fatalf("period %d = %v, want in (%v, %v]", i+1, d, lo, hi)
				}
			}
			capped := got[3:]
			lo, hi, sum := slices.Min(capped), slices.Max(capped), time.Duration(0)
			for _, d := range capped {
				sum += d
			}
			mean := sum / time.Duration(len(capped))
			t.Logf("%d periods at the cap: min %v, mean %v, max %v", len(capped), lo, mean, hi)
			if lo <= 90*time.Millisecond || hi > 100*time.Millisecond {
				t.Fatalf("periods at the cap in [%v, %v], want in (90ms, 100ms]", lo, hi)
			}
			if lo > 91*time.Millisecond || hi < 99*time.Millisecond || mean < 94*time.Millisecond || mean > 96*time.Millisecond {
				t.Fatalf("periods at the cap: min %v, mean %v, max %v; want draws over the whole range, mean 95ms", lo, mean, hi)
			}
		})
	})
	t.Run("own source", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Without Rand each Set draws from a source of its own.
			a, b := periodsOf(t, Config{}, 20), periodsOf(t, Config{}, 20)
			if slices.Equal(a, b) {
				t.Fatalf("two Sets drew the same periods %v", a)
			}
			for _, d := range append(a[3:], b[3:]...) {
				if d < 90*time.Millisecond || d > 100*time.Millisecond {
					t.Fatalf("period at the cap %v, want in (90ms, 100ms]", d)
				}
			}
		})
	})
}

// jitteredPeriods returns the first n open periods of a default Set whose
// Rand is r, its probes all failing.
func jitteredPeriods(t *testing.T, r func() float64, n int) []time.Duration {
	t.Helper()
	return periodsOf(t, Config{Rand: r}, n)
}

// periodsOf returns the first n open periods of a Set of c (c.Rand as is,
// nil included), its probes all failing.
func periodsOf(t *testing.T, c Config, n int) []time.Duration {
	t.Helper()
	o := &openings{}
	c.Shared = o
	s, err := NewSet(c)
	if err != nil {
		t.Fatal(err)
	}
	trip(t, s, "k")
	for range n - 1 {
		time.Sleep(c.withDefaults().MaxOpenTimeout) // past any period
		mustAllow(t, s, "k")(errUnavailable)
	}
	return o.list()
}

// Ready ends the open period at once: the next Allow is a probe. The growth
// is kept (a failed probe reopens for the next period), and Ready leaves a
// closed or half-open breaker, and keys the Set does not hold, alone.
func TestReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		s := newTestSet(t, Config{OnStateChange: rec.hook})
		s.Ready("unknown")
		if s.Len() != 0 {
			t.Fatal("Ready created a breaker")
		}
		mustAllow(t, s, "k")(nil)
		s.Ready("k") // closed: nothing to do
		trip(t, s, "k")
		time.Sleep(10 * time.Millisecond) // within the first 25ms period
		mustReject(t, s, "k", StateOpen)
		s.Ready("k")
		checkState(t, s, "k", StateHalfOpen)
		p := mustAllow(t, s, "k")
		s.Ready("k") // half-open: nothing to do
		p(errUnavailable)
		stillOpenUntil(t, s, "k", 50*time.Millisecond)(nil) // the second period
		want := []string{"k:closed->open", "k:open->half-open", "k:half-open->open", "k:open->half-open"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

// In a fleet, Ready tells the Shared the breaker turned half-open, and the
// probe still waits for the fleet's lease.
func TestReadyInAFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := member(t, Config{}, "k", Fleet{}) // a lone caller: its trip is the fleet's
		trip(t, s, "k")
		s.Ready("k")
		mustReject(t, s, "k", StateHalfOpen)
		want := []string{"k:closed->open for 25ms", "k:open->half-open"}
		if got := sh.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
		if !sh.m.Lease("k") {
			t.Fatal("Lease refused")
		}
		mustAllow(t, s, "k")(nil)
	})
}

// An opening on the fleet's word counts as one of the breaker's openings:
// after a fleet member's failed probe, this member's own next failed probe
// reopens it for the period after that.
func TestFleetOpeningAdvancesTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := member(t, Config{}, "k", Fleet{})
		trip(t, s, "k") // opening 1: 25ms
		time.Sleep(25 * time.Millisecond)
		checkState(t, s, "k", StateHalfOpen)
		sh.m.Open("k", 50*time.Millisecond)                            // opening 2, another member's
		sh.m.SetDegraded(true)                                         // probe locally, without a lease
		stillOpenUntil(t, s, "k", 50*time.Millisecond)(errUnavailable) // opening 3: 100ms
		got := sh.list()
		if want := "k:half-open->open for 100ms"; got[len(got)-1] != want {
			t.Fatalf("transitions %v, want the last to be %q", got, want)
		}
	})
}

func TestScheduleConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{MaxOpenTimeout: -1}, "MaxOpenTimeout must be >= 0 (0 means default), got -1ns"},
		{Config{OpenMultiplier: 0.5}, "OpenMultiplier must be a finite number >= 1 (0 means default), got 0.5"},
		{Config{OpenMultiplier: -1}, "OpenMultiplier must be a finite number >= 1 (0 means default), got -1"},
		{Config{OpenMultiplier: math.NaN()}, "OpenMultiplier must be a finite number >= 1 (0 means default), got NaN"},
		{Config{OpenMultiplier: math.Inf(1)}, "OpenMultiplier must be a finite number >= 1 (0 means default), got +Inf"},
		{Config{OpenJitter: 1.5}, "OpenJitter must be in [0, 1] (0 means default, backoff.NoJitter none), got 1.5"},
		{Config{OpenJitter: -0.1}, "OpenJitter must be in [0, 1] (0 means default, backoff.NoJitter none), got -0.1"},
		{Config{OpenJitter: math.NaN()}, "OpenJitter must be in [0, 1] (0 means default, backoff.NoJitter none), got NaN"},
	} {
		err := tc.c.Validate()
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an ErrInvalidConfig saying %q", tc.c, err, tc.want)
		}
		if s, err := NewSet(tc.c); s != nil || err == nil {
			t.Errorf("NewSet(%+v) = %v, %v; want the error", tc.c, s, err)
		}
	}
	for _, c := range []Config{
		{OpenTimeout: time.Hour},                      // above the default cap: fixed
		{OpenTimeout: time.Second, MaxOpenTimeout: 1}, // above an explicit cap: fixed
		{OpenJitter: math.SmallestNonzeroFloat64},     // backoff.NoJitter
		{OpenJitter: 1, OpenMultiplier: 1},
		{OpenTimeout: math.MaxInt64, MaxOpenTimeout: math.MaxInt64, OpenMultiplier: math.MaxFloat64},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
}

// A huge schedule saturates instead of overflowing: open "forever".
func TestHugeOpenPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{OpenTimeout: math.MaxInt64, MaxOpenTimeout: math.MaxInt64, OpenMultiplier: math.MaxFloat64})
		trip(t, s, "k")
		time.Sleep(1000 * time.Hour)
		mustReject(t, s, "k", StateOpen)
	})
}

// callChain runs one call through a chain of breakers, the first the
// caller's: each hop's breaker guards its call to the next, and the last
// hop's downstream answers when healed. A refusal anywhere fails the call
// (a refused hop answers its caller Unavailable, which the caller's breaker
// counts as a failure).
func callChain(hops []*Set, healed bool) bool {
	if len(hops) == 0 {
		return healed
	}
	done, err := hops[0].Allow("k")
	if err != nil {
		return false
	}
	ok := callChain(hops[1:], healed)
	if ok {
		done(nil)
	} else {
		done(errUnavailable)
	}
	return ok
}

func seededChain(t *testing.T, n int, seed uint64) []*Set {
	hops := make([]*Set, n)
	for i := range hops {
		hops[i] = newTestSet(t, Config{Rand: rand.New(rand.NewPCG(seed, uint64(i))).Float64})
	}
	return hops
}

// TestDeadDownstreamProbeRate: the defaults send a dead downstream that
// fails at once one probe per open period, about 1/95ms = 10.5 attempts/s
// once the period has reached its cap, whatever the call rate.
func TestDeadDownstreamProbeRate(t *testing.T) {
	for _, rate := range []float64{50, 100, 1000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := seededChain(t, 1, 1)[0]
				step := time.Duration(float64(time.Second) / rate)
				start := time.Now()
				perSecond := make([]int, 10)
				for time.Since(start) < 10*time.Second {
					if done, err := s.Allow("k"); err == nil {
						perSecond[time.Since(start)/time.Second]++
						done(errUnavailable)
					}
					time.Sleep(step)
				}
				steady := 0
				for _, n := range perSecond[1:] {
					steady += n
					if n > 12 { // no more than one probe per period of more than 90ms
						t.Errorf("%d attempts in one second, want <= 12", n)
					}
				}
				mean := float64(steady) / 9
				t.Logf("%v calls/s to a dead downstream: attempts per second %v (mean after the first %.2f)", rate, perSecond, mean)
				if mean > 10.6 {
					t.Errorf("mean %.2f attempts/s after the first second, want <= 10.6", mean)
				}
			})
		})
	}
}

// TestRecoveryNoticed: a downstream that heals at a random moment is
// reached within one open period (100ms) through one breaker, and within
// two through a chain of two, where the outer breaker's probe must find the
// inner one's period over. Calls come every millisecond.
func TestRecoveryNoticed(t *testing.T) {
	for _, tc := range []struct {
		hops     int
		max      time.Duration
		meanUpTo time.Duration
	}{
		{1, 100 * time.Millisecond, 55 * time.Millisecond},
		{2, 200 * time.Millisecond, 80 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%d hops", tc.hops), func(t *testing.T) {
			var lat []time.Duration
			for seed := range uint64(200) {
				synctest.Test(t, func(t *testing.T) {
					hops := seededChain(t, tc.hops, seed)
					rng := rand.New(rand.NewPCG(seed, 99))
					start := time.Now()
					heal := 3*time.Second + time.Duration(rng.Float64()*float64(time.Second))
					for {
						healed := time.Since(start) >= heal
						if callChain(hops, healed) && healed {
							lat = append(lat, time.Since(start)-heal)
							return
						}
						time.Sleep(time.Millisecond)
					}
				})
			}
			slices.Sort(lat)
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			mean, p90, worst := sum/time.Duration(len(lat)), lat[len(lat)*9/10], lat[len(lat)-1]
			t.Logf("first success after healing, %d hop(s): mean %v, p90 %v, max %v", tc.hops, mean, p90, worst)
			if worst > tc.max+time.Duration(tc.hops)*time.Millisecond || mean > tc.meanUpTo {
				t.Errorf("mean %v, max %v; want mean <= %v, max <= %v plus the call interval", mean, worst, tc.meanUpTo, tc.max)
			}
		})
	}
}

// TestFalseOpeningIsShort: a breaker opened under 30% noise (as a false
// trip would) is closed again after about 2.9 open periods, 0.17s on
// average with the defaults (calls every millisecond).
func TestFalseOpeningIsShort(t *testing.T) {
	var sum time.Duration
	const runs = 300
	for seed := range uint64(runs) {
		synctest.Test(t, func(t *testing.T) {
			s := seededChain(t, 1, seed)[0]
			rng := rand.New(rand.NewPCG(seed, 5))
			trip(t, s, "k")
			start := time.Now()
			for s.State("k") != StateClosed {
				time.Sleep(time.Millisecond)
				if done, err := s.Allow("k"); err == nil {
					var outcome error
					if rng.Float64() < 0.3 {
						outcome = errUnavailable
					}
					done(outcome)
				}
			}
			sum += time.Since(start)
		})
	}
	mean := sum / runs
	t.Logf("a false opening under 30%% noise lasts %v on average", mean)
	if mean < 120*time.Millisecond || mean > 230*time.Millisecond {
		t.Errorf("mean %v, want about 0.17s", mean)
	}
}
