package budget

import (
	"errors"
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
	for _, tc := range []struct {
		c     Config
		field string
	}{
		{Config{MaxTokens: 0, TokenRatio: 1}, "MaxTokens"},
		{Config{MaxTokens: 1001, TokenRatio: 1}, "MaxTokens"},
		{Config{MaxTokens: 10, TokenRatio: 0}, "TokenRatio"},
		{Config{MaxTokens: 10, TokenRatio: 11}, "TokenRatio"},
	} {
		_, err := New(tc.c)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig naming %s", tc.c, err, tc.field)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig invalid: %v", err)
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
