package budget

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestThrottlesBelowHalfAndRefills(t *testing.T) {
	b, err := New(Config{MaxTokens: 10, TokenRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if !b.AllowRetry() {
			t.Fatalf("retry refused after %d failures, want allowed while tokens > 5", i)
		}
		b.Failure()
	}
	if b.AllowRetry() {
		t.Fatalf("retry allowed with %v tokens, want refused at MaxTokens/2", b.Tokens())
	}
	for range 20 {
		b.Failure()
	}
	if got := b.Tokens(); got != 0 {
		t.Errorf("tokens = %v after many failures, want floor 0", got)
	}
	for range 11 {
		b.Success()
	}
	if got := b.Tokens(); got != 5.5 || !b.AllowRetry() {
		t.Errorf("tokens = %v (allow %v) after 11 successes, want 5.5 and allowed", got, b.AllowRetry())
	}
	for range 100 {
		b.Success()
	}
	if got := b.Tokens(); got != 10 {
		t.Errorf("tokens = %v, want capped at 10", got)
	}
}

// simulate runs calls with up to 3 attempts, each failing with
// probability p, and returns attempts per call.
func simulate(b *Budget, rng *rand.Rand, p float64, calls int) float64 {
	attempts := 0
	for range calls {
		for n := 1; n <= 3; n++ {
			if n > 1 && !b.AllowRetry() {
				break
			}
			attempts++
			if rng.Float64() >= p {
				b.Success()
				break
			}
			b.Failure()
		}
	}
	return float64(attempts) / float64(calls)
}

func TestDefaultNeverThrottlesUnder30PercentNoise(t *testing.T) {
	for seed := range uint64(20) {
		b, _ := New(DefaultConfig())
		rng := rand.New(rand.NewPCG(seed, seed))
		throttled := 0
		for range 20000 {
			if !b.AllowRetry() {
				throttled++
			}
			simulate(b, rng, 0.3, 1)
		}
		if throttled != 0 {
			t.Errorf("seed %d: retries throttled before %d of 20000 calls under 30%% noise, want 0", seed, throttled)
		}
	}
}

func TestDefaultCapsAttemptsUnderOutage(t *testing.T) {
	b, _ := New(DefaultConfig())
	rng := rand.New(rand.NewPCG(1, 1))
	got := simulate(b, rng, 1, 1000)
	if got > 1.1 {
		t.Errorf("%.3f attempts per call under a full outage, want <= 1.1", got)
	}
	// Once drained, exactly one attempt per call.
	if got := simulate(b, rng, 1, 1000); got != 1 {
		t.Errorf("%.3f attempts per call once drained, want 1", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	b, _ := New(Config{MaxTokens: 100, TokenRatio: 1})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Failure()
				b.Success()
				b.AllowRetry()
			}
		})
	}
	wg.Wait()
	if got := b.Tokens(); got < 0 || got > 100 {
		t.Errorf("tokens = %v outside [0, 100]", got)
	}
}

func TestValidate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{MaxTokens: -1}, "MaxTokens must be in (0, 1000] (0 means default), got -1"},
		{Config{MaxTokens: 1001}, "MaxTokens must be in (0, 1000] (0 means default), got 1001"},
		{Config{MaxTokens: nan}, "MaxTokens must be in (0, 1000] (0 means default), got NaN"},
		{Config{MaxTokens: inf}, "MaxTokens must be in (0, 1000] (0 means default), got +Inf"},
		{Config{MaxTokens: -inf}, "MaxTokens must be in (0, 1000] (0 means default), got -Inf"},
		{Config{TokenRatio: -1}, "TokenRatio must be in [0.001, MaxTokens] (0 means default), got -1"},
		{Config{TokenRatio: 0.0001}, "TokenRatio must be in [0.001, MaxTokens] (0 means default), got 0.0001"},
		{Config{TokenRatio: nan}, "TokenRatio must be in [0.001, MaxTokens] (0 means default), got NaN"},
		{Config{TokenRatio: inf}, "TokenRatio must be in [0.001, MaxTokens] (0 means default), got +Inf"},
		{Config{MaxTokens: 10, TokenRatio: 11}, "TokenRatio (11) must be <= MaxTokens (10)"},
		{Config{TokenRatio: 101}, "TokenRatio (101) must be <= MaxTokens (100, the default)"},
		{Config{MaxTokens: 0.5}, "TokenRatio (1, the default) must be <= MaxTokens (0.5)"},
	} {
		err := tc.c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || err.Error() != "budget: invalid config: "+tc.want {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig: %s", tc.c, err, tc.want)
		}
		if b, newErr := New(tc.c); b != nil || newErr == nil || newErr.Error() != err.Error() {
			t.Errorf("New(%+v) = %v, %v; want nil, %v", tc.c, b, newErr, err)
		}
	}
	for _, c := range []Config{{}, DefaultConfig(), {MaxTokens: 1000}, {TokenRatio: 0.001}, {MaxTokens: 2, TokenRatio: 2}} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
}

// Validate reports every bad field at once, each wrapping ErrInvalidConfig
// on its own.
func TestValidateReportsEveryError(t *testing.T) {
	err := Config{MaxTokens: math.NaN(), TokenRatio: math.Inf(-1)}.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %v (%T), want an errors.Join of one error per field", err, err)
	}
	errs := joined.Unwrap()
	fields := []string{"MaxTokens", "TokenRatio"}
	if len(errs) != len(fields) {
		t.Fatalf("Validate() reported %d errors, want %d:\n%v", len(errs), len(fields), err)
	}
	for i, e := range errs {
		if !errors.Is(e, ErrInvalidConfig) || !strings.Contains(e.Error(), fields[i]+" ") {
			t.Errorf("error %d = %q, want one wrapping ErrInvalidConfig naming %s", i, e, fields[i])
		}
	}
}

// Without the zero-means-default rule, New(Config{}) fails and a Config
// naming one field is rejected for the other.
func TestZeroConfigIsDefaultConfig(t *testing.T) {
	if got, want := (Config{}).WithDefaults(), DefaultConfig(); got != want {
		t.Errorf("Config{} with defaults = %+v, want DefaultConfig() %+v", got, want)
	}
	zero, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}) = %v, want the default budget", err)
	}
	def, _ := New(DefaultConfig())
	rz, rd := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for range 50 {
		az, ad := simulate(zero, rz, 0.8, 20), simulate(def, rd, 0.8, 20)
		if az != ad || zero.Tokens() != def.Tokens() || zero.AllowRetry() != def.AllowRetry() {
			t.Fatalf("Config{} budget: %v attempts/call, %v tokens; DefaultConfig(): %v, %v", az, zero.Tokens(), ad, def.Tokens())
		}
	}
	if got, want := (Config{MaxTokens: 10}).WithDefaults(), (Config{MaxTokens: 10, TokenRatio: 1}); got != want {
		t.Errorf("Config{MaxTokens: 10} with defaults = %+v, want %+v", got, want)
	}
	if got, want := (Config{TokenRatio: 0.5}).WithDefaults(), (Config{MaxTokens: 100, TokenRatio: 0.5}); got != want {
		t.Errorf("Config{TokenRatio: 0.5} with defaults = %+v, want %+v", got, want)
	}
	b, err := New(Config{MaxTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	b.Failure()
	b.Failure()
	b.Success() // the default TokenRatio: one token back
	if got := b.Tokens(); got != 3 {
		t.Errorf("Config{MaxTokens: 4}: tokens = %v after 2 failures and 1 success, want 3", got)
	}
}

func TestDefaultConfigIsFresh(t *testing.T) {
	c := DefaultConfig()
	c.MaxTokens = 1
	if got := DefaultConfig(); got.MaxTokens != 100 || got.TokenRatio != 1 {
		t.Errorf("DefaultConfig() = %+v after a caller changed its copy", got)
	}
}

func TestNoAllocs(t *testing.T) {
	b, _ := New(DefaultConfig())
	if n := testing.AllocsPerRun(100, func() { b.Success(); b.Failure(); b.AllowRetry() }); n != 0 {
		t.Errorf("%v allocs per operation, want 0", n)
	}
}

func BenchmarkSuccess(b *testing.B) {
	bu, _ := New(DefaultConfig())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bu.Success()
		}
	})
}
