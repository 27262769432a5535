package throttle

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t *testing.T, c Config) *Throttle {
	t.Helper()
	th, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{K: 1, Window: time.Second}, ""},
		{Config{K: 0.5}, "K must be >= 1"},
		{Config{K: math.NaN()}, "K must be >= 1"},
		{Config{K: math.Inf(1)}, "K must be >= 1"},
		{Config{Window: -time.Second}, "Window must be in"},
		{Config{Window: 2 * time.Hour}, "Window must be in"},
		{Config{MaxProbability: 1.5}, "MaxProbability must be in (0, 1]"},
		{Config{MaxProbability: math.NaN()}, "MaxProbability must be in (0, 1]"},
	} {
		_, err := New(tc.c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%+v): %v", tc.c, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%+v): %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
	if !errors.Is(Refusal, ErrThrottled) || status.Code(Refusal) != codes.Unavailable {
		t.Errorf("Refusal %v: want ErrThrottled with Unavailable", Refusal)
	}
}

// The probability is the SRE book's: max(0, (requests − K·accepts) /
// (requests + 1)), counted before the request it decides on.
func TestProbabilityFormula(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := mustNew(t, Config{})
		for range 10 {
			if !th.Allow(0.999) {
				t.Fatal("refused a request with the probability still 0")
			}
			th.Done(true)
		}
		for range 30 { // 30 failures: requests 40, accepts 10
			th.Allow(0.999)
			th.Done(false)
		}
		want := (40.0 - 2*10) / 41
		if p := th.Probability(); math.Abs(p-want) > 1e-12 {
			t.Fatalf("probability %v, want %v", p, want)
		}
		if th.Allow(want - 0.01) {
			t.Error("a draw below the probability was let through")
		}
		if !th.Allow(0.99) {
			t.Error("a draw above the probability was refused")
		}
		// A refused request counts as a request at once; one let through
		// when it ends.
		want = (41.0 - 20) / 42
		if p := th.Probability(); math.Abs(p-want) > 1e-12 {
			t.Errorf("probability %v after a refusal and a request in flight, want %v", p, want)
		}
		th.Done(false)
		if p, want := th.Probability(), (42.0-20)/43; math.Abs(p-want) > 1e-12 {
			t.Errorf("probability %v once the request in flight failed, want %v", p, want)
		}
	})
}

// A downstream that can answer 30 requests/s and refuses the rest, asked
// for 100/s: the client settles at sending K × 30 = 60/s of them (the SRE
// book's fixed point), and once the downstream answers everything again,
// throttling ends well within the window.
func TestOverloadedDownstreamAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := mustNew(t, Config{Window: 2 * time.Second})
		rng := rand.New(rand.NewPCG(3, 4))
		// The downstream: a token bucket of 30/s, burst 3.
		tokens, last := 3.0, time.Now()
		answer := func(capacity float64) bool {
			now := time.Now()
			tokens = min(3, tokens+now.Sub(last).Seconds()*capacity)
			last = now
			if tokens >= 1 {
				tokens--
				return true
			}
			return false
		}
		sent, accepted := 0, 0
		for i := range 600 { // 6 s at 100/s; the first 2 s settle
			if th.Allow(rng.Float64()) {
				ok := answer(30)
				th.Done(ok)
				if i >= 200 {
					sent++
					if ok {
						accepted++
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if rate := float64(sent) / 4; rate < 50 || rate > 70 {
			t.Errorf("sent %.0f/s to a downstream answering 30/s, want about K × 30 = 60", rate)
		}
		if rate := float64(accepted) / 4; rate < 27 {
			t.Errorf("%.0f/s answered, want about the downstream's 30", rate)
		}
		start := time.Now()
		for th.Probability() > 0 {
			if th.Allow(rng.Float64()) {
				th.Done(answer(math.Inf(1)))
			}
			time.Sleep(10 * time.Millisecond)
			if time.Since(start) > time.Second {
				t.Fatalf("still throttling %v after the downstream recovered (window 2s)", time.Since(start))
			}
		}
		t.Logf("sent %.0f/s, answered %.0f/s; throttling ended %v after recovery", float64(sent)/4, float64(accepted)/4, time.Since(start))
	})
}

// However few requests the downstream accepts, a share goes: the cap
// leaves a downstream that accepts none to the breaker.
func TestProbabilityIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := mustNew(t, Config{})
		for range 100 {
			th.Allow(0.999)
			th.Done(false)
		}
		if p := th.Probability(); p != 0.8 {
			t.Fatalf("probability %v after 100 failures, want the cap 0.8", p)
		}
		th = mustNew(t, Config{MaxProbability: 1})
		for range 100 {
			th.Allow(0.999)
			th.Done(false)
		}
		if p := th.Probability(); p != 100.0/101 {
			t.Fatalf("probability %v uncapped, want 100/101", p)
		}
	})
}

func TestResetLetsEverythingThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := mustNew(t, Config{})
		for range 100 {
			th.Allow(0.999)
			th.Done(false)
		}
		th.Reset()
		if p := th.Probability(); p != 0 {
			t.Fatalf("probability %v after Reset, want 0", p)
		}
	})
}

func TestAllowDoesNotAllocate(t *testing.T) {
	th := mustNew(t, Config{})
	if n := testing.AllocsPerRun(1000, func() { th.Allow(0.5); th.Done(true) }); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

// Requests in flight do not count until they end: a burst of calls let
// through at once — those released when a restarted downstream is back —
// is not refused for want of answers that have not come yet.
func TestABurstInFlightIsNotThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := mustNew(t, Config{})
		for i := range 100 {
			if !th.Allow(0.5) {
				t.Fatalf("request %d of a burst refused before any answer came", i+1)
			}
		}
		for range 100 {
			th.Done(true)
		}
		if p := th.Probability(); p != 0 {
			t.Errorf("probability %v once the burst was accepted, want 0", p)
		}
	})
}
