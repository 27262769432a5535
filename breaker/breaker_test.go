package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/outcome"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestSet returns a Set of c. Run in a synctest bubble, it reads the
// bubble's fake time: time.Sleep moves it. Unless c sets Rand, its open
// periods are not jittered: the n-th opening lasts exactly d(n).
func newTestSet(t testing.TB, c Config) *Set {
	t.Helper()
	if c.Rand == nil {
		c.Rand = noJitter
	}
	s, err := NewSet(c)
	if err != nil {
		t.Fatalf("NewSet(%+v) error: %v", c, err)
	}
	return s
}

// noJitter is a Rand that leaves every open period whole.
func noJitter() float64 { return 0 }

// transitions records hook calls.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (r *transitions) hook(key string, from, to State) {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprintf("%s:%s->%s", key, from, to))
	r.mu.Unlock()
}

func (r *transitions) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

var (
	errUnavailable = status.Error(codes.Unavailable, "connection refused")
	errNotFound    = status.Error(codes.NotFound, "no such thing")
)

// attempt runs one attempt ending with outcome; it reports whether the breaker
// admitted it.
func attempt(s *Set, key string, outcome error) bool {
	done, err := s.Allow(key)
	if err != nil {
		return false
	}
	done(outcome)
	return true
}

// mustAllow admits an attempt or fails the test.
func mustAllow(t *testing.T, s *Set, key string) func(error) {
	t.Helper()
	done, err := s.Allow(key)
	if err != nil {
		t.Fatalf("Allow(%q) error = %v, want admitted", key, err)
	}
	return done
}

// mustReject expects a rejection in state want.
func mustReject(t *testing.T, s *Set, key string, want State) {
	t.Helper()
	done, err := s.Allow(key)
	if err == nil {
		done(nil)
		t.Fatalf("Allow(%q) admitted, want rejection (%v)", key, want)
	}
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != want || oe.Key != key {
		t.Fatalf("Allow(%q) error = %#v, want *OpenError{Key: %q, State: %v}", key, err, key, want)
	}
}

func checkState(t *testing.T, s *Set, key string, want State) {
	t.Helper()
	if got := s.State(key); got != want {
		t.Fatalf("State(%q) = %v, want %v", key, got, want)
	}
}

// probing trips key's breaker, lets its open period pass and admits the
// first probe, which it returns.
func probing(t *testing.T, s *Set, key string) func(error) {
	t.Helper()
	trip(t, s, key)
	time.Sleep(s.cfg.OpenTimeout)
	return mustAllow(t, s, key)
}

// trip opens key's breaker with consecutive failures.
func trip(t *testing.T, s *Set, key string) {
	t.Helper()
	for i := 0; i < 1000 && s.State(key) == StateClosed; i++ {
		attempt(s, key, errUnavailable)
	}
	checkState(t, s, key, StateOpen)
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateClosed: "closed", StateHalfOpen: "half-open", StateOpen: "open", State(7): "State(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int8(s), got, want)
		}
	}
	if StateClosed != 0 || StateHalfOpen != 1 || StateOpen != 2 {
		t.Errorf("state values = %d,%d,%d, want 0,1,2", StateClosed, StateHalfOpen, StateOpen)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v, want nil", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v, want nil", err)
	}
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"ratio", Config{FailureRatio: 1.5}, "breaker: invalid config: FailureRatio must be in (0,1] (0 means default), got 1.5"},
		{"ratio negative", Config{FailureRatio: -0.1}, "FailureRatio must be in (0,1] (0 means default), got -0.1"},
		{"ratio NaN", Config{FailureRatio: math.NaN()}, "FailureRatio must be in (0,1] (0 means default), got NaN"},
		{"ratio +Inf", Config{FailureRatio: math.Inf(1)}, "FailureRatio must be in (0,1] (0 means default), got +Inf"},
		{"ratio -Inf", Config{FailureRatio: math.Inf(-1)}, "FailureRatio must be in (0,1] (0 means default), got -Inf"},
		{"window", Config{Window: -time.Second}, "Window must be >= 0 (0 means default), got -1s"},
		{"buckets", Config{Buckets: -1}, "Buckets must be in [0,1000] (0 means default), got -1"},
		{"buckets big", Config{Buckets: 1001}, "Buckets must be in [0,1000] (0 means default), got 1001"},
		{"bucket period", Config{Window: 5, Buckets: 10}, "Window (5ns) must be at least Buckets (10)"},
		{"open timeout", Config{OpenTimeout: -1}, "OpenTimeout must be >= 0 (0 means default), got -1ns"},
		{"max keys", Config{MaxKeys: -1}, "MaxKeys must be >= 0 (0 means default), got -1"},
		{"idle", Config{IdleTimeout: -time.Minute}, "IdleTimeout must be >= 0 (0 means default), got -1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
			s, err2 := NewSet(tc.c)
			if s != nil || err2 == nil || err2.Error() != err.Error() {
				t.Errorf("NewSet() = %v, %v; want nil, %v", s, err2, err)
			}
		})
	}
}

// Validate reports every bad field at once, each wrapping ErrInvalidConfig
// on its own, in field order.
func TestConfigValidateReportsEveryError(t *testing.T) {
	c := Config{
		Window:       -time.Second,
		Buckets:      maxBuckets + 1,
		FailureRatio: math.NaN(),
		OpenTimeout:  -1,
		MaxKeys:      -1,
		IdleTimeout:  -1,
	}
	err := c.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %v (%T), want an errors.Join of one error per field", err, err)
	}
	errs := joined.Unwrap()
	fields := []string{"Window", "Buckets", "FailureRatio", "OpenTimeout", "MaxKeys", "IdleTimeout"}
	if len(errs) != len(fields) {
		t.Fatalf("Validate() reported %d errors, want %d:\n%v", len(errs), len(fields), err)
	}
	for i, e := range errs {
		if !errors.Is(e, ErrInvalidConfig) || !strings.HasPrefix(e.Error(), "breaker: invalid config: "+fields[i]+" ") {
			t.Errorf("error %d = %q, want one wrapping ErrInvalidConfig naming %s", i, e, fields[i])
		}
	}
	// A field that is fine alone but not with another is reported along with
	// the fields that are bad alone.
	err = Config{Window: 5, Buckets: 10, MaxKeys: -1}.Validate()
	if got := len(err.(interface{ Unwrap() []error }).Unwrap()); got != 2 {
		t.Errorf("Validate() = %v: %d errors, want 2 (Window/Buckets and MaxKeys)", err, got)
	}
}

// A Set built from Config{} behaves as one built from DefaultConfig(): it
// opens after the same number of failures and stays open as long.
func TestZeroConfigBehavesAsDefaultConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type trace struct {
			failures int
			openFor  time.Duration
		}
		run := func(c Config) trace {
			s := newTestSet(t, c)
			var tr trace
			for s.State("k") == StateClosed {
				done, err := s.Allow("k")
				if err != nil {
					t.Fatalf("Allow while closed: %v", err)
				}
				done(errors.New("down"))
				tr.failures++
				if tr.failures > 1000 {
					t.Fatal("breaker never opened")
				}
			}
			for s.State("k") == StateOpen {
				time.Sleep(time.Millisecond)
				tr.openFor += time.Millisecond
			}
			return tr
		}
		zero, def := run(Config{}), run(DefaultConfig())
		if zero != def {
			t.Errorf("Config{}: opened after %d failures, open for %v; DefaultConfig(): %d, %v", zero.failures, zero.openFor, def.failures, def.openFor)
		}
		if want := (trace{25, 25 * time.Millisecond}); zero != want {
			t.Errorf("Config{}: %+v, want %+v (the documented defaults)", zero, want)
		}
	})
}

func TestDefaultConfigMatchesZeroConfig(t *testing.T) {
	d, z := DefaultConfig(), Config{}.withDefaults()
	d.IsFailure, d.IsExcluded, z.IsFailure, z.IsExcluded = nil, nil, nil, nil
	if fmt.Sprintf("%+v", d) != fmt.Sprintf("%+v", z) {
		t.Errorf("Config{} with defaults = %+v, want DefaultConfig() %+v", z, d)
	}
}

func TestClassification(t *testing.T) {
	type class int
	const (
		success class = iota
		failure
		excluded
	)
	zero := newTestSet(t, Config{}) // both defaults: classified in one pass
	classify := func(err error) class {
		want := outcome.Success
		switch {
		case DefaultIsExcluded(err):
			want = outcome.CallerGone
		case DefaultIsFailure(err):
			want = outcome.ServerFailure
		}
		if got := zero.classify(err); got != want {
			t.Errorf("Config{} classifies %v as %v, the default classifiers as %v", err, got, want)
		}
		switch {
		case DefaultIsExcluded(err):
			if DefaultIsFailure(err) {
				t.Errorf("DefaultIsFailure(%v) = true for an excluded error", err)
			}
			return excluded
		case DefaultIsFailure(err):
			return failure
		}
		return success
	}
	want := map[codes.Code]class{
		codes.OK: success, codes.Canceled: excluded, codes.Unknown: failure,
		codes.InvalidArgument: success, codes.DeadlineExceeded: failure, codes.NotFound: success,
		codes.AlreadyExists: success, codes.PermissionDenied: success, codes.ResourceExhausted: failure,
		codes.FailedPrecondition: success, codes.Aborted: success, codes.OutOfRange: success,
		codes.Unimplemented: success, codes.Internal: failure, codes.Unavailable: failure,
		codes.DataLoss: failure, codes.Unauthenticated: success,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		err := status.Error(c, "x")
		if got := classify(err); got != want[c] {
			t.Errorf("status %v: class %d, want %d", c, got, want[c])
		}
		if c == codes.OK { // status.Error(OK, ...) is nil
			continue
		}
		if got := classify(fmt.Errorf("attempt 2: %w", err)); got != want[c] {
			t.Errorf("wrapped status %v: class %d, want %d", c, got, want[c])
		}
	}
	for _, tc := range []struct {
		err  error
		want class
	}{
		{nil, success},
		{context.Canceled, excluded},
		{context.DeadlineExceeded, excluded},
		{fmt.Errorf("caller gave up: %w", context.DeadlineExceeded), excluded},
		{io.EOF, success},
		{errors.New("dial tcp: connection refused"), failure},
		{&OpenError{Key: "k", State: StateOpen}, failure}, // Unavailable, should never be reported
		{outcome.RefusalStatus("passed on").Err(), excluded},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("%v: class %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOpenError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{HalfOpenProbes: 1})
		const key = "dns:///orders:443"
		trip(t, s, key)
		_, err := s.Allow(key)
		if !errors.Is(err, ErrOpen) {
			t.Errorf("errors.Is(%v, ErrOpen) = false, want true", err)
		}
		if got := status.Code(err); got != codes.Unavailable {
			t.Errorf("status.Code = %v, want Unavailable", got)
		}
		if got := status.Code(fmt.Errorf("resilience: %w", err)); got != codes.Unavailable {
			t.Errorf("status.Code(wrapped) = %v, want Unavailable", got)
		}
		want := `breaker: circuit open for "dns:///orders:443" (state open)`
		if got := err.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if st, _ := status.FromError(err); st.Message() != want {
			t.Errorf("status message = %q, want %q", st.Message(), want)
		}
		var oe *OpenError
		if !errors.As(err, &oe) || oe.Key != key || oe.State != StateOpen {
			t.Errorf("errors.As = %+v, want Key %q State open", oe, key)
		}

		time.Sleep(DefaultConfig().OpenTimeout)
		probe := mustAllow(t, s, key)
		_, err = s.Allow(key)
		want = `breaker: circuit open for "dns:///orders:443" (state half-open, all probes in flight)`
		if err == nil || err.Error() != want || !errors.Is(err, ErrOpen) || status.Code(err) != codes.Unavailable {
			t.Errorf("half-open rejection = %v, want %q (ErrOpen, Unavailable)", err, want)
		}
		probe(nil)

		// A user-built OpenError works too.
		u := &OpenError{Key: "k", State: StateOpen}
		if status.Code(u) != codes.Unavailable || !errors.Is(u, ErrOpen) {
			t.Errorf("user OpenError: code %v, Is %v", status.Code(u), errors.Is(u, ErrOpen))
		}
	})
}

// TestTripsUnderOutage checks the documented bound: in a full outage a closed
// breaker opens after at most ConsecutiveFailures (25) failed attempts, at any
// call rate and whatever the window held before.
func TestTripsUnderOutage(t *testing.T) {
	for _, rate := range []float64{0.1, 1, 6, 100, 1000} {
		for _, warm := range []time.Duration{0, time.Minute} {
			t.Run(fmt.Sprintf("rate=%v/s,healthy-before=%v", rate, warm), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := newTestSet(t, Config{})
					step := time.Duration(float64(time.Second) / rate)
					for elapsed := time.Duration(0); elapsed < warm; elapsed += step {
						attempt(s, "t", nil)
						time.Sleep(step)
					}
					failed := 0
					start := time.Now()
					for {
						if !attempt(s, "t", errUnavailable) {
							t.Fatal("closed breaker rejected an attempt")
						}
						failed++
						if s.State("t") != StateClosed {
							break
						}
						if failed > 1000 {
							t.Fatal("no trip after 1000 failed attempts")
						}
						time.Sleep(step)
					}
					if failed > 25 {
						t.Errorf("opened after %d failed attempts, want <= 25", failed)
					}
					checkState(t, s, "t", StateOpen)
					t.Logf("opened after %d failed attempts, %v", failed, time.Since(start))
				})
			})
		}
	}
}

// TestTripsUnderPartialOutage: with 90% of attempts failing at 20/s, the
// breaker opens within one window (10s).
func TestTripsUnderPartialOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for seed := uint64(1); seed <= 20; seed++ {
			s := newTestSet(t, Config{})
			rng := rand.New(rand.NewPCG(seed, 7))
			step := 50 * time.Millisecond
			for range 1200 { // a healthy minute
				attempt(s, "t", nil)
				time.Sleep(step)
			}
			start := time.Now()
			for time.Since(start) <= 10*time.Second {
				var outcome error
				if rng.Float64() < 0.9 {
					outcome = errUnavailable
				}
				if !attempt(s, "t", outcome) {
					break
				}
				time.Sleep(step)
			}
			if got := s.State("t"); got != StateOpen {
				t.Errorf("seed %d: state after 10s at 90%% failures = %v, want open", seed, got)
			}
		}
	})
}

// noiseRun drives key at rate attempts per simulated second for d, each
// failing with Unavailable with probability p, and returns how many attempts
// were rejected.
func noiseRun(s *Set, seed uint64, rate float64, d time.Duration, p float64) (rejected int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	step := time.Duration(float64(time.Second) / rate)
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		var outcome error
		if rng.Float64() < p {
			outcome = errUnavailable
		}
		if !attempt(s, "t", outcome) {
			rejected++
		}
		time.Sleep(step)
	}
	return rejected
}

// TestNoTripUnderNoise: independent 30% Unavailable never opens the default
// breaker, over 20 seeds, at a low rate (the window rule cannot fire, only the
// consecutive rule can), at the rate where the window holds about MinRequests
// attempts (the window rule's worst case), and at a high rate.
func TestNoTripUnderNoise(t *testing.T) {
	runs := []struct {
		rate float64
		d    time.Duration
	}{
		{1, 4 * time.Hour},
		{5, time.Hour},
		{6, time.Hour},
		{1000, 2 * time.Minute},
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("rate=%v/s", r.rate), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				for seed := uint64(1); seed <= 20; seed++ {
					var rec transitions
					s := newTestSet(t, Config{OnStateChange: rec.hook})
					if rej := noiseRun(s, seed, r.rate, r.d, 0.3); rej != 0 || len(rec.list()) != 0 {
						t.Errorf("seed %d: %d attempts rejected, transitions %v; want none", seed, rej, rec.list())
					}
				}
			})
		})
	}
}

// TestWeakRulesTripUnderNoise shows the noise test has teeth: gobreaker's own
// default (more than 5 consecutive failures) and a 50%-of-20 window rule open
// under the same 30% noise.
func TestWeakRulesTripUnderNoise(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		rate float64
		d    time.Duration
	}{
		{"gobreaker default", Config{ConsecutiveFailures: 6, MinRequests: math.MaxUint32}, 10, 10 * time.Minute},
		{"50% of 20", Config{MinRequests: 20, FailureRatio: 0.5, ConsecutiveFailures: math.MaxUint32}, 2, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tripped := 0
			synctest.Test(t, func(t *testing.T) {
				for seed := uint64(1); seed <= 20; seed++ {
					var rec transitions
					c := tc.c
					c.OnStateChange = rec.hook
					s := newTestSet(t, c)
					// An opening lasts less than the time between two
					// attempts: count the openings, not the rejections.
					if noiseRun(s, seed, tc.rate, tc.d, 0.3); len(rec.list()) > 0 {
						tripped++
					}
				}
			})
			if tripped < 10 {
				t.Errorf("tripped in %d of 20 seeds, want most", tripped)
			}
			t.Logf("tripped in %d of 20 seeds", tripped)
		})
	}
}

func TestWindowRule(t *testing.T) {
	c := Config{Window: 10 * time.Second, Buckets: 10, MinRequests: 10, FailureRatio: 0.5, ConsecutiveFailures: math.MaxUint32}

	t.Run("ratio and volume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, c)
			for range 5 {
				attempt(s, "k", nil)
			}
			for range 4 {
				attempt(s, "k", errUnavailable)
			}
			checkState(t, s, "k", StateClosed) // 4/9 failures, volume 9 < 10
			attempt(s, "k", errUnavailable)
			checkState(t, s, "k", StateOpen) // 5/10
		})
	})
	t.Run("old outcomes leave the window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, c)
			for range 9 {
				attempt(s, "k", errUnavailable)
			}
			time.Sleep(10 * time.Second)
			attempt(s, "k", errUnavailable)
			checkState(t, s, "k", StateClosed) // the 9 old failures rolled out
			time.Sleep(5 * time.Second)
			for range 8 {
				attempt(s, "k", errUnavailable)
			}
			checkState(t, s, "k", StateClosed) // 9 in window
			attempt(s, "k", errUnavailable)
			checkState(t, s, "k", StateOpen)
		})
	})
	t.Run("bucket by bucket", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, c)
			for range 6 { // t=0s: 6 successes
				attempt(s, "k", nil)
			}
			time.Sleep(9500 * time.Millisecond)
			for range 5 { // t=9.5s: window still holds the successes (5/11)
				attempt(s, "k", errUnavailable)
			}
			checkState(t, s, "k", StateClosed)
			time.Sleep(time.Second) // t=10.5s: the first bucket left
			for range 4 {
				attempt(s, "k", errUnavailable)
			}
			checkState(t, s, "k", StateClosed) // 9 failures, volume 9 < 10
			attempt(s, "k", errUnavailable)
			checkState(t, s, "k", StateOpen)
		})
	})
}

func TestHalfOpenProbesCloseOnRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		s := newTestSet(t, Config{OnStateChange: rec.hook})
		trip(t, s, "k")
		mustReject(t, s, "k", StateOpen)
		time.Sleep(DefaultConfig().OpenTimeout - time.Nanosecond)
		mustReject(t, s, "k", StateOpen)
		checkState(t, s, "k", StateOpen)
		time.Sleep(time.Nanosecond)
		checkState(t, s, "k", StateHalfOpen)

		first := mustAllow(t, s, "k")
		mustReject(t, s, "k", StateHalfOpen) // the first probe goes alone
		first(nil)
		checkState(t, s, "k", StateHalfOpen)
		probes := []func(error){mustAllow(t, s, "k"), mustAllow(t, s, "k")}
		mustReject(t, s, "k", StateHalfOpen) // 3 probes by default
		probes[0](errNotFound)               // the server answered: healthy
		checkState(t, s, "k", StateHalfOpen)
		probes[1](nil)
		checkState(t, s, "k", StateClosed)
		if !attempt(s, "k", nil) {
			t.Error("closed breaker rejected an attempt")
		}
		want := []string{"k:closed->open", "k:open->half-open", "k:half-open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}

		// The counts start afresh: it takes a full 25 failures to reopen.
		for range 24 {
			attempt(s, "k", errUnavailable)
		}
		checkState(t, s, "k", StateClosed)
		attempt(s, "k", errUnavailable)
		checkState(t, s, "k", StateOpen)
	})
}

func TestHalfOpenFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		s := newTestSet(t, Config{OnStateChange: rec.hook})
		trip(t, s, "k")
		open := DefaultConfig().OpenTimeout
		time.Sleep(open)
		mustAllow(t, s, "k")(nil) // the first probe succeeds: the others may go
		p1, p2 := mustAllow(t, s, "k"), mustAllow(t, s, "k")
		p1(errUnavailable)
		checkState(t, s, "k", StateOpen)
		p2(nil) // stale: admitted in the half-open period that ended
		checkState(t, s, "k", StateOpen)
		time.Sleep(2*open - time.Nanosecond) // a new open period, twice as long
		mustReject(t, s, "k", StateOpen)
		time.Sleep(time.Nanosecond)
		p := mustAllow(t, s, "k")
		checkState(t, s, "k", StateHalfOpen)
		p(nil)
		want := []string{"k:closed->open", "k:open->half-open", "k:half-open->open", "k:open->half-open"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

func TestClientErrorsDoNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{})
		clientErrs := []error{
			status.Error(codes.InvalidArgument, ""), status.Error(codes.NotFound, ""),
			status.Error(codes.AlreadyExists, ""), status.Error(codes.PermissionDenied, ""),
			status.Error(codes.Unauthenticated, ""), status.Error(codes.FailedPrecondition, ""),
			status.Error(codes.OutOfRange, ""), status.Error(codes.Unimplemented, ""),
			status.Error(codes.Aborted, ""), io.EOF,
		}
		for i := range 10_000 {
			if !attempt(s, "k", clientErrs[i%len(clientErrs)]) {
				t.Fatalf("attempt %d rejected", i)
			}
		}
		checkState(t, s, "k", StateClosed)
		// A client error is an answer: it breaks a run of failures.
		for range 3 {
			for range 24 {
				attempt(s, "k", errUnavailable)
			}
			attempt(s, "k", errNotFound)
		}
		checkState(t, s, "k", StateClosed)
	})
}

func TestCallerCancellationsDoNotCount(t *testing.T) {
	excluded := []error{context.Canceled, context.DeadlineExceeded, status.Error(codes.Canceled, "")}
	t.Run("never trip", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, Config{})
			for i := range 10_000 {
				if !attempt(s, "k", excluded[i%len(excluded)]) {
					t.Fatalf("attempt %d rejected", i)
				}
			}
			checkState(t, s, "k", StateClosed)
		})
	})
	t.Run("neither extend nor reset a run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, Config{})
			for i := range 24 {
				attempt(s, "k", errUnavailable)
				attempt(s, "k", excluded[i%len(excluded)])
			}
			checkState(t, s, "k", StateClosed)
			attempt(s, "k", errUnavailable)
			checkState(t, s, "k", StateOpen)
		})
	})
	t.Run("no window volume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, Config{MinRequests: 10, FailureRatio: 0.5, ConsecutiveFailures: math.MaxUint32})
			for range 100 {
				attempt(s, "k", context.Canceled)
			}
			for range 9 {
				attempt(s, "k", errUnavailable)
			}
			checkState(t, s, "k", StateClosed) // 9 counted outcomes < MinRequests
		})
	})
	t.Run("attempt deadline counts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, Config{})
			for range 25 {
				attempt(s, "k", status.Error(codes.DeadlineExceeded, "attempt timeout"))
			}
			checkState(t, s, "k", StateOpen)
		})
	})
}

func TestCancelledProbeFreesSlot(t *testing.T) {
	for _, cancelled := range []error{context.Canceled, context.DeadlineExceeded, status.Error(codes.Canceled, "")} {
		t.Run(fmt.Sprint(cancelled), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newTestSet(t, Config{HalfOpenProbes: 1})
				trip(t, s, "k")
				time.Sleep(5 * time.Second)
				for range 3 { // each cancelled probe gives its slot back
					p := mustAllow(t, s, "k")
					mustReject(t, s, "k", StateHalfOpen)
					p(cancelled)
					checkState(t, s, "k", StateHalfOpen)
				}
				p := mustAllow(t, s, "k")
				p(nil)
				checkState(t, s, "k", StateClosed)
			})
		})
	}
	t.Run("several probes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestSet(t, Config{HalfOpenProbes: 3})
			trip(t, s, "k")
			time.Sleep(5 * time.Second)
			first := mustAllow(t, s, "k")
			mustReject(t, s, "k", StateHalfOpen) // the first probe goes alone
			first(nil)
			b, c := mustAllow(t, s, "k"), mustAllow(t, s, "k")
			mustReject(t, s, "k", StateHalfOpen)
			b(context.Canceled)
			d := mustAllow(t, s, "k")
			mustReject(t, s, "k", StateHalfOpen)
			c(nil)
			checkState(t, s, "k", StateHalfOpen)
			d(nil)
			checkState(t, s, "k", StateClosed)
		})
	})
}

func TestStaleOutcomesIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{HalfOpenProbes: 1})
		early := []func(error){mustAllow(t, s, "k"), mustAllow(t, s, "k"), mustAllow(t, s, "k")}
		trip(t, s, "k")
		early[0](nil) // admitted while closed, ends while open
		mustReject(t, s, "k", StateOpen)
		time.Sleep(5 * time.Second)
		p := mustAllow(t, s, "k")
		early[1](errUnavailable) // ends during half-open: must not reopen
		early[2](context.Canceled)
		checkState(t, s, "k", StateHalfOpen)
		mustReject(t, s, "k", StateHalfOpen) // the stale cancel freed no slot
		p(nil)
		checkState(t, s, "k", StateClosed)
	})
}

func TestKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{})
		trip(t, s, "a")
		checkState(t, s, "b", StateClosed)
		if !attempt(s, "b", nil) {
			t.Error("key b rejected while only a is open")
		}
		if got := s.Len(); got != 2 {
			t.Errorf("Len() = %d, want 2", got)
		}
		checkState(t, s, "unknown", StateClosed)
		if got := s.Len(); got != 2 {
			t.Errorf("Len() after State(unknown) = %d, want 2 (State creates nothing)", got)
		}
	})
}

// TestEvictionBoundsMemory: 100,000 distinct keys through a default Set keep
// Len at MaxKeys and the heap flat.
func TestEvictionBoundsMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{})
		maxKeys := DefaultConfig().MaxKeys
		heap := func() uint64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		use := func(from, to int) {
			for i := from; i < to; i++ {
				attempt(s, fmt.Sprintf("dns:///svc-%d.example:443", i), nil)
				time.Sleep(time.Millisecond)
				if n := s.Len(); n > maxKeys {
					t.Fatalf("Len() = %d after %d keys, want <= %d", n, i+1, maxKeys)
				}
			}
		}
		before := heap()
		use(0, 2*maxKeys) // fill up to the cap, then churn a while
		atCap := heap()
		use(2*maxKeys, 100_000)
		after := heap()
		if n := s.Len(); n != maxKeys {
			t.Errorf("Len() = %d, want %d", n, maxKeys)
		}
		perKey := float64(atCap-before) / float64(maxKeys)
		growth := int64(after) - int64(atCap)
		t.Logf("heap: %d B before, %d B at cap (%.0f B/key), %d B after 100k keys (growth %d B)",
			before, atCap, perKey, after, growth)
		// Flat: the 80,000 extra keys cost less than 10% of what holding them would.
		if limit := int64(perKey * 80_000 / 10); growth > limit {
			t.Errorf("heap grew %d B over 80,000 more keys, want < %d B", growth, limit)
		}
		runtime.KeepAlive(s)
	})
}

func TestIdleEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		s := newTestSet(t, Config{IdleTimeout: time.Minute, OpenTimeout: time.Hour, OnStateChange: rec.hook})
		attempt(s, "idle", nil)
		trip(t, s, "open")
		inflight := mustAllow(t, s, "busy")
		attempt(s, "recent", nil)
		time.Sleep(2 * time.Minute)
		attempt(s, "recent", nil)
		attempt(s, "new", nil) // adding a key sweeps idle breakers
		for key, want := range map[string]bool{"idle": false, "open": true, "busy": true, "recent": true, "new": true} {
			s.mu.RLock()
			_, got := s.m[key]
			s.mu.RUnlock()
			if got != want {
				t.Errorf("key %q held = %v, want %v", key, got, want)
			}
		}
		inflight(nil)
		checkState(t, s, "open", StateOpen)

		// Once its open period is over, an idle open breaker goes too, and its
		// removal is reported as a return to closed.
		time.Sleep(2 * time.Hour)
		attempt(s, "newer", nil)
		if got := s.Len(); got != 1 {
			t.Errorf("Len() = %d, want 1 (only newer)", got)
		}
		want := []string{"open:closed->open", "open:open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

func TestCapEvictsLeastRecentlyUsedClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{MaxKeys: 4, OpenTimeout: time.Hour})
		trip(t, s, "k0") // oldest, but open
		for _, k := range []string{"k1", "k2", "k3"} {
			time.Sleep(time.Second)
			attempt(s, k, nil)
		}
		time.Sleep(time.Second)
		attempt(s, "k4", nil)
		if got := s.Len(); got != 4 {
			t.Fatalf("Len() = %d, want 4", got)
		}
		s.mu.RLock()
		_, k0 := s.m["k0"]
		_, k1 := s.m["k1"]
		s.mu.RUnlock()
		if !k0 || k1 {
			t.Errorf("after adding k4: k0 held %v (want true, open), k1 held %v (want false, LRU closed)", k0, k1)
		}
		checkState(t, s, "k0", StateOpen)
	})
}

func TestCapForcedEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		s := newTestSet(t, Config{MaxKeys: 2, OpenTimeout: time.Hour, OnStateChange: rec.hook})
		trip(t, s, "a")
		time.Sleep(time.Second)
		trip(t, s, "b")
		attempt(s, "c", nil) // nothing evictable: the LRU open one goes anyway
		if got := s.Len(); got != 2 {
			t.Errorf("Len() = %d, want 2", got)
		}
		got := rec.list()
		want := []string{"a:closed->open", "b:closed->open", "a:open->closed"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
		checkState(t, s, "a", StateClosed)
	})
}

// TestEvictedInFlightAttempt: an attempt admitted by a breaker that is then
// evicted can still report; it no longer affects the key.
func TestEvictedInFlightAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{MaxKeys: 1})
		done := mustAllow(t, s, "a")
		attempt(s, "b", nil) // evicts a (forced: in flight)
		done(errUnavailable)
		checkState(t, s, "a", StateClosed)
		if got := s.Len(); got != 1 {
			t.Errorf("Len() = %d, want 1", got)
		}
	})
}

func TestHookMayCallBack(t *testing.T) {
	// A deadlock would leave the bubble's goroutines blocked on locks, where
	// its fake time stands still: the guard runs on real time, outside it.
	guard := time.AfterFunc(10*time.Second, func() { panic("deadlock: attempts did not finish") })
	defer guard.Stop()
	synctest.Test(t, func(t *testing.T) {
		var (
			s   *Set
			rec transitions
		)
		hook := func(key string, from, to State) {
			rec.hook(key, from, to)
			// Read and use the Set from inside the hook.
			if got := s.State(key); got != to {
				rec.hook("state-mismatch:"+key, to, got)
			}
			_ = s.Len()
			if key == "a" && to == StateOpen {
				// Cause another transition from inside the hook.
				for range 25 {
					attempt(s, "b", errUnavailable)
				}
			}
		}
		s = newTestSet(t, Config{OnStateChange: hook, HalfOpenProbes: 1})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for range 25 {
				attempt(s, "a", errUnavailable)
			}
			time.Sleep(5 * time.Second)
			attempt(s, "a", nil)
		}()
		<-finished
		want := []string{"a:closed->open", "b:closed->open", "a:open->half-open", "a:half-open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

func TestHookPanicDoesNotWedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		panicked := false
		hook := func(key string, from, to State) {
			if !panicked {
				panicked = true
				panic("boom")
			}
			rec.hook(key, from, to)
		}
		s := newTestSet(t, Config{OnStateChange: hook, HalfOpenProbes: 1})
		func() {
			defer func() {
				if recover() == nil {
					t.Error("hook panic did not reach the caller")
				}
			}()
			for range 25 {
				attempt(s, "a", errUnavailable)
			}
		}()
		checkState(t, s, "a", StateOpen)
		time.Sleep(5 * time.Second)
		attempt(s, "a", nil)
		want := []string{"a:open->half-open", "a:half-open->closed"}
		if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("transitions after a panic = %v, want %v", got, want)
		}
	})
}

// TestConcurrentUse hammers a small Set from many goroutines (run with -race)
// and checks that each key's reported transitions form a chain in order.
func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		last := map[string]State{}
		var bad []string
		var s *Set
		hook := func(key string, from, to State) {
			mu.Lock()
			if prev := last[key]; prev != from {
				bad = append(bad, fmt.Sprintf("%s: %v->%v after ->%v", key, from, to, prev))
			}
			last[key] = to
			mu.Unlock()
			_ = s.State(key)
		}
		s = newTestSet(t, Config{OnStateChange: hook, MaxKeys: 6, OpenTimeout: 50 * time.Millisecond, ConsecutiveFailures: 5})
		const workers, ops = 16, 3000
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				var pending []func(error)
				for i := range ops {
					key := fmt.Sprintf("k%d", rng.IntN(8))
					switch r := rng.IntN(100); {
					case r < 2:
						time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
					case r < 5:
						_ = s.State(key)
						_ = s.Len()
					default:
						if done, err := s.Allow(key); err == nil {
							pending = append(pending, done)
						} else if !errors.Is(err, ErrOpen) {
							t.Errorf("Allow error %v does not match ErrOpen", err)
						}
					}
					if len(pending) > 0 && (rng.IntN(3) == 0 || i == ops-1) {
						var outcome error
						switch rng.IntN(4) {
						case 0, 1:
							outcome = errUnavailable
						case 2:
							outcome = context.Canceled
						}
						pending[0](outcome)
						pending = pending[1:]
					}
				}
				for _, done := range pending {
					done(nil)
				}
			})
		}
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("%d out-of-order transitions, e.g. %v", len(bad), bad[:min(len(bad), 5)])
		}
		if n := s.Len(); n > 6 {
			t.Errorf("Len() = %d, want <= 6", n)
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		for k, e := range s.m {
			e.mu.Lock()
			if e.inflight != 0 {
				t.Errorf("key %s: %d attempts still in flight after all done", k, e.inflight)
			}
			e.mu.Unlock()
		}
	})
}

// TestRealClock runs the default Set on time.Now, as NewSet does.
func TestRealClock(t *testing.T) {
	s, err := NewSet(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for range 25 {
		attempt(s, "k", errUnavailable)
	}
	checkState(t, s, "k", StateOpen)
	mustReject(t, s, "k", StateOpen)
}

// TestNoAllocs guards the hot paths: a closed breaker's Allow+done and an open
// breaker's rejection allocate nothing.
func TestNoAllocs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{OpenTimeout: time.Hour})
		attempt(s, "closed", nil)
		if n := testing.AllocsPerRun(1000, func() { attempt(s, "closed", nil) }); n != 0 {
			t.Errorf("closed Allow+done: %v allocs, want 0", n)
		}
		if n := testing.AllocsPerRun(1000, func() { attempt(s, "closed", errUnavailable); attempt(s, "closed", nil) }); n != 0 {
			t.Errorf("closed Allow+done(Unavailable): %v allocs, want 0", n)
		}
		trip(t, s, "open")
		mustReject(t, s, "open", StateOpen)
		if n := testing.AllocsPerRun(1000, func() { s.Allow("open") }); n != 0 {
			t.Errorf("open rejection: %v allocs, want 0", n)
		}
	})
}

func TestAllowWaitTakesAFreedProbeSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{HalfOpenProbes: 1})
		probe := probing(t, s, "k")
		got := make(chan error, 1)
		go func() {
			done, err := s.AllowWait(context.Background(), "k")
			if done != nil {
				done(nil)
			}
			got <- err
		}()
		// The waiter is refused until the probe ends; a cancelled probe frees
		// its slot, which the waiter takes.
		probe(context.Canceled)
		if err := <-got; err != nil {
			t.Fatalf("AllowWait after the probe's slot was freed: %v, want admitted", err)
		}
		checkState(t, s, "k", StateClosed) // the waiter's success was the probe
	})
}

func TestAllowWaitWakesOnTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{HalfOpenProbes: 1})
		probe := probing(t, s, "k")
		got := make(chan error, 1)
		go func() {
			_, err := s.AllowWait(context.Background(), "k")
			got <- err
		}()
		probe(errUnavailable) // reopens: the waiter gets the open refusal at once
		err := <-got
		var oe *OpenError
		if !errors.As(err, &oe) || oe.State != StateOpen {
			t.Fatalf("AllowWait after the probe failed: %v, want the open refusal", err)
		}
	})
}

func TestAllowWaitEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, Config{HalfOpenProbes: 1})
		probe := probing(t, s, "k")
		defer probe(nil)
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() {
			_, err := s.AllowWait(ctx, "k")
			got <- err
		}()
		cancel()
		err := <-got
		var oe *OpenError
		if !errors.As(err, &oe) || oe.State != StateHalfOpen {
			t.Fatalf("AllowWait with its context done: %v, want the half-open refusal", err)
		}
		// Open refusals never wait.
		s2 := newTestSet(t, Config{})
		trip(t, s2, "k")
		if _, err := s2.AllowWait(context.Background(), "k"); !errors.Is(err, ErrOpen) {
			t.Fatalf("AllowWait on an open breaker: %v, want ErrOpen at once", err)
		}
	})
}
