package backoff_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grpc-resilience/resilience/backoff"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func fixed(r float64) backoff.Option {
	return backoff.WithRandom(func() float64 { return r })
}

func mustNew(t testing.TB, c backoff.Config, opts ...backoff.Option) *backoff.Exponential {
	t.Helper()
	e, err := backoff.NewExponential(c, opts...)
	if err != nil {
		t.Fatalf("NewExponential(%+v) error = %v, want nil", c, err)
	}
	return e
}

func TestExponentialSequence(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		cfg  backoff.Config
		r    float64
		want []time.Duration // delays for retry 1, 2, 3, ...
	}{
		{
			name: "default config r=0 no reduction",
			cfg:  backoff.DefaultConfig(),
			r:    0,
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms},
		},
		{
			name: "default config r=0.5 reduces by 10%",
			cfg:  backoff.DefaultConfig(),
			r:    0.5,
			want: []time.Duration{45 * ms, 90 * ms, 180 * ms, 360 * ms, 720 * ms, 1440 * ms, 1800 * ms, 1800 * ms},
		},
		{
			name: "NoJitter ignores r",
			cfg:  backoff.Config{BaseDelay: 10 * ms, Multiplier: 3, MaxDelay: time.Second, Jitter: backoff.NoJitter},
			r:    0.9,
			want: []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second, time.Second},
		},
		{
			name: "full jitter r=0.5 halves",
			cfg:  backoff.Config{BaseDelay: 100 * ms, Multiplier: 2, MaxDelay: 500 * ms, Jitter: 1},
			r:    0.5,
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 250 * ms, 250 * ms},
		},
		{
			name: "full jitter r=0 keeps the full delay",
			cfg:  backoff.Config{BaseDelay: 100 * ms, Multiplier: 2, MaxDelay: 500 * ms, Jitter: 1},
			r:    0,
			want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 500 * ms},
		},
		{
			name: "fractional multiplier",
			cfg:  backoff.Config{BaseDelay: 100 * ms, Multiplier: 1.5, MaxDelay: time.Second, Jitter: backoff.NoJitter},
			want: []time.Duration{100 * ms, 150 * ms, 225 * ms, 337500 * time.Microsecond, 506250 * time.Microsecond, 759375 * time.Microsecond, time.Second},
		},
		{
			name: "multiplier 1 is constant",
			cfg:  backoff.Config{BaseDelay: 7 * ms, Multiplier: 1, MaxDelay: 7 * ms, Jitter: backoff.NoJitter},
			want: []time.Duration{7 * ms, 7 * ms, 7 * ms},
		},
		{
			name: "zero fields take defaults",
			cfg:  backoff.Config{MaxDelay: time.Second, Jitter: backoff.NoJitter},
			r:    0.9,
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second},
		},
		{
			name: "zero Jitter is the default 0.2",
			cfg:  backoff.Config{BaseDelay: 100 * ms, Multiplier: 2, MaxDelay: time.Second},
			r:    0.5,
			want: []time.Duration{90 * ms, 180 * ms, 360 * ms, 720 * ms, 900 * ms},
		},
		{
			name: "base equals max",
			cfg:  backoff.Config{BaseDelay: time.Second, Multiplier: 10, MaxDelay: time.Second, Jitter: backoff.NoJitter},
			want: []time.Duration{time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, tt.cfg, fixed(tt.r))
			for i, want := range tt.want {
				retry := i + 1
				if got := e.Delay(retry); got != want {
					t.Errorf("Delay(%d) = %v, want %v", retry, got, want)
				}
			}
		})
	}
}

func TestExponentialHugeRetries(t *testing.T) {
	retries := []int{64, 1000, 1 << 30, math.MaxInt32, math.MaxInt - 1, math.MaxInt}
	tests := []struct {
		name string
		cfg  backoff.Config
		r    float64
		want time.Duration
	}{
		{"default", backoff.DefaultConfig(), 0, 2 * time.Second},
		{"default r=0.5", backoff.DefaultConfig(), 0.5, 1800 * time.Millisecond},
		{"max duration cap", backoff.Config{BaseDelay: 1, Multiplier: 2, MaxDelay: math.MaxInt64, Jitter: backoff.NoJitter}, 0.5, math.MaxInt64},
		{"max duration cap tiny jitter", backoff.Config{BaseDelay: 1, Multiplier: 2, MaxDelay: math.MaxInt64, Jitter: 1}, 1e-18, math.MaxInt64},
		{"huge multiplier", backoff.Config{BaseDelay: time.Hour, Multiplier: math.MaxFloat64, MaxDelay: math.MaxInt64, Jitter: backoff.NoJitter}, 0.5, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, tt.cfg, fixed(tt.r))
			for _, retry := range retries {
				if got := e.Delay(retry); got != tt.want {
					t.Errorf("Delay(%d) = %v, want %v", retry, got, tt.want)
				}
			}
		})
	}
}

func TestExponentialSlowGrowthSaturates(t *testing.T) {
	// (1+1e-12)^(MaxInt-1) ≈ e^9.2e6 overflows to +Inf.
	e := mustNew(t, backoff.Config{BaseDelay: time.Millisecond, Multiplier: 1 + 1e-12, MaxDelay: time.Minute, Jitter: backoff.NoJitter})
	if got, want := e.Delay(math.MaxInt), time.Minute; got != want {
		t.Errorf("Delay(MaxInt) = %v, want %v", got, want)
	}
	if got, want := e.Delay(1000), time.Millisecond; got != want {
		t.Errorf("Delay(1000) = %v, want %v", got, want)
	}
}

func TestExponentialNeverExceedsCap(t *testing.T) {
	// MaxDelay values that are not exactly representable as float64 must not
	// be exceeded after the round trip through float64.
	caps := []time.Duration{math.MaxInt64, math.MaxInt64 - 1, 1<<62 + 1, 1<<53 + 1, 3*time.Second + 1}
	rs := []float64{0, 1e-17, 1e-12, 0.3, 0.999999}
	for _, maxDelay := range caps {
		for _, r := range rs {
			cfg := backoff.Config{BaseDelay: 1, Multiplier: 2, MaxDelay: maxDelay, Jitter: 1}
			e := mustNew(t, cfg, fixed(r))
			for _, retry := range []int{1, 30, 62, 63, 64, 100, math.MaxInt} {
				got := e.Delay(retry)
				if got < 0 || got > maxDelay {
					t.Errorf("MaxDelay %d, r %v: Delay(%d) = %d, want in [0, %d]", maxDelay, r, retry, got, maxDelay)
				}
			}
		}
	}
}

func TestExponentialRetryBelowOne(t *testing.T) {
	e := mustNew(t, backoff.DefaultConfig(), fixed(0))
	want := e.Delay(1)
	for _, retry := range []int{0, -1, math.MinInt} {
		if got := e.Delay(retry); got != want {
			t.Errorf("Delay(%d) = %v, want %v (same as Delay(1))", retry, got, want)
		}
	}
}

func TestExponentialRandomOutOfRange(t *testing.T) {
	cfg := backoff.Config{BaseDelay: time.Second, Multiplier: 2, MaxDelay: 10 * time.Second, Jitter: 1}
	tests := []struct {
		r    float64
		want time.Duration
	}{
		{-0.5, time.Second},
		{math.Inf(-1), time.Second},
		{math.NaN(), time.Second},
		{1, 0},
		{1.5, 0},
		{math.Inf(1), 0},
	}
	for _, tt := range tests {
		e := mustNew(t, cfg, fixed(tt.r))
		if got := e.Delay(1); got != tt.want {
			t.Errorf("r=%v: Delay(1) = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestExponentialDefaultRandomWithinBounds(t *testing.T) {
	e := mustNew(t, backoff.DefaultConfig())
	for retry := 1; retry <= 10; retry++ {
		d := min(backoff.DefaultConfig().MaxDelay, backoff.DefaultConfig().BaseDelay<<(retry-1))
		lo := time.Duration(float64(d) * (1 - backoff.DefaultConfig().Jitter))
		for range 200 {
			if got := e.Delay(retry); got <= lo || got > d {
				t.Fatalf("Delay(%d) = %v, want in (%v, %v]", retry, got, lo, d)
			}
		}
	}
}

func TestRandomNotCalledWithNoJitter(t *testing.T) {
	calls := 0
	e := mustNew(t, backoff.Config{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute, Jitter: backoff.NoJitter},
		backoff.WithRandom(func() float64 { calls++; return 0.5 }))
	e.Delay(1)
	e.Delay(100)
	if calls != 0 {
		t.Errorf("random source called %d times with NoJitter, want 0", calls)
	}
}

// NoJitter needs no rule of its own: the formula leaves every delay
// unchanged for it, whatever r is, so it is safe to treat it as a Jitter
// like any other.
func TestNoJitterIsExactForEveryRandom(t *testing.T) {
	caps := []time.Duration{time.Nanosecond, 3 * time.Second, math.MaxInt64}
	for _, maxDelay := range caps {
		for _, retry := range []int{1, 2, 10, 62, 63, math.MaxInt} {
			d := min(float64(maxDelay), float64(time.Nanosecond)*math.Pow(2, float64(retry-1)))
			for _, r := range []float64{0, 1e-300, 0.5, 0.999999999, 1} {
				if got := d * (1 - backoff.NoJitter*r); got != d {
					t.Fatalf("d×(1−NoJitter×%v) = %v, want exactly %v", r, got, d)
				}
			}
		}
	}
}

func TestRandomCalledWithZeroJitter(t *testing.T) {
	calls := 0
	e := mustNew(t, backoff.Config{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		backoff.WithRandom(func() float64 { calls++; return 0.5 }))
	if got, want := e.Delay(1), 900*time.Millisecond; got != want {
		t.Errorf("Delay(1) with zero (default 0.2) Jitter and r=0.5 = %v, want %v", got, want)
	}
	if calls != 1 {
		t.Errorf("random source called %d times with zero Jitter (the default 0.2), want 1", calls)
	}
}

// Without the zero-means-default rule, Config{} fails Validate (Multiplier
// 0) and a Config naming one field gets zero for the others.
func TestZeroConfigIsDefaultConfig(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		zero := mustNew(t, backoff.Config{}, fixed(r))
		def := mustNew(t, backoff.DefaultConfig(), fixed(r))
		if got, want := zero.Config(), backoff.DefaultConfig(); got != want {
			t.Fatalf("NewExponential(Config{}).Config() = %+v, want DefaultConfig() %+v", got, want)
		}
		for retry := 1; retry <= 12; retry++ {
			if got, want := zero.Delay(retry), def.Delay(retry); got != want {
				t.Errorf("r=%v: Config{} Delay(%d) = %v, DefaultConfig() gives %v", r, retry, got, want)
			}
		}
	}
	if err := (backoff.Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v, want nil", err)
	}
	if got := backoff.MustExponential(backoff.Config{}).Config(); got != backoff.DefaultConfig() {
		t.Errorf("MustExponential(Config{}).Config() = %+v, want DefaultConfig()", got)
	}
}

// Each zero field takes its own default, whatever the other fields say.
func TestEachZeroFieldTakesItsDefault(t *testing.T) {
	set := backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 3, MaxDelay: 5 * time.Second, Jitter: 0.5}
	d := backoff.DefaultConfig()
	tests := []struct {
		name string
		zero func(*backoff.Config)
		want func(*backoff.Config)
	}{
		{"BaseDelay", func(c *backoff.Config) { c.BaseDelay = 0 }, func(c *backoff.Config) { c.BaseDelay = d.BaseDelay }},
		{"Multiplier", func(c *backoff.Config) { c.Multiplier = 0 }, func(c *backoff.Config) { c.Multiplier = d.Multiplier }},
		{"MaxDelay", func(c *backoff.Config) { c.MaxDelay = 0 }, func(c *backoff.Config) { c.MaxDelay = d.MaxDelay }},
		{"Jitter", func(c *backoff.Config) { c.Jitter = 0 }, func(c *backoff.Config) { c.Jitter = d.Jitter }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, want := set, set
			tt.zero(&in)
			tt.want(&want)
			if got := mustNew(t, in).Config(); got != want {
				t.Errorf("NewExponential(%+v).Config() = %+v, want %+v", in, got, want)
			}
		})
	}
}

func TestDefaultConfigIsFresh(t *testing.T) {
	c := backoff.DefaultConfig()
	c.BaseDelay, c.Jitter = time.Hour, 1
	if got := backoff.DefaultConfig(); got.BaseDelay != 50*time.Millisecond || got.Jitter != 0.2 {
		t.Errorf("DefaultConfig() = %+v after a caller changed its copy", got)
	}
}

func TestValidate(t *testing.T) {
	valid := backoff.DefaultConfig()
	tests := []struct {
		name   string
		mutate func(*backoff.Config)
		want   []string // substrings the message must contain
	}{
		{"negative BaseDelay", func(c *backoff.Config) { c.BaseDelay = -time.Millisecond }, []string{"backoff: invalid config: BaseDelay must be >= 0 (0 means default), got -1ms"}},
		{"Multiplier below 1", func(c *backoff.Config) { c.Multiplier = 0.5 }, []string{"Multiplier must be a finite number >= 1 (0 means default), got 0.5"}},
		{"negative Multiplier", func(c *backoff.Config) { c.Multiplier = -2 }, []string{"Multiplier", "got -2"}},
		{"NaN Multiplier", func(c *backoff.Config) { c.Multiplier = math.NaN() }, []string{"Multiplier", "got NaN"}},
		{"+Inf Multiplier", func(c *backoff.Config) { c.Multiplier = math.Inf(1) }, []string{"Multiplier", "got +Inf"}},
		{"-Inf Multiplier", func(c *backoff.Config) { c.Multiplier = math.Inf(-1) }, []string{"Multiplier", "got -Inf"}},
		{"negative MaxDelay", func(c *backoff.Config) { c.MaxDelay = -time.Second }, []string{"MaxDelay must be >= 0 (0 means default), got -1s"}},
		{"MaxDelay below BaseDelay", func(c *backoff.Config) { c.MaxDelay = 10 * time.Millisecond }, []string{"MaxDelay (10ms) must be >= BaseDelay (50ms)"}},
		{"default MaxDelay below BaseDelay", func(c *backoff.Config) { c.BaseDelay, c.MaxDelay = 5*time.Second, 0 }, []string{"MaxDelay (2s, the default) must be >= BaseDelay (5s)"}},
		{"MaxDelay below default BaseDelay", func(c *backoff.Config) { c.BaseDelay, c.MaxDelay = 0, time.Millisecond }, []string{"MaxDelay (1ms) must be >= BaseDelay (50ms, the default)"}},
		{"negative Jitter", func(c *backoff.Config) { c.Jitter = -0.1 }, []string{"Jitter must be in [0, 1] (0 means default, NoJitter none), got -0.1"}},
		{"Jitter above 1", func(c *backoff.Config) { c.Jitter = 1.5 }, []string{"Jitter", "got 1.5"}},
		{"NaN Jitter", func(c *backoff.Config) { c.Jitter = math.NaN() }, []string{"Jitter", "got NaN"}},
		{"+Inf Jitter", func(c *backoff.Config) { c.Jitter = math.Inf(1) }, []string{"Jitter", "got +Inf"}},
		{"-Inf Jitter", func(c *backoff.Config) { c.Jitter = math.Inf(-1) }, []string{"Jitter", "got -Inf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want error", cfg)
			}
			if !errors.Is(err, backoff.ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false, want true", err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate() error = %q, want it to contain %q", err, s)
				}
			}
			e, newErr := backoff.NewExponential(cfg)
			if e != nil || newErr == nil || newErr.Error() != err.Error() {
				t.Errorf("NewExponential() = %v, %v; want nil, %v", e, newErr, err)
			}
		})
	}
}

// Validate reports every bad field at once, one joined error per field,
// each wrapping ErrInvalidConfig on its own.
func TestValidateReportsEveryError(t *testing.T) {
	cfg := backoff.Config{BaseDelay: -1, Multiplier: math.NaN(), MaxDelay: -2, Jitter: math.Inf(1)}
	err := cfg.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %v (%T), want an errors.Join of one error per field", err, err)
	}
	errs := joined.Unwrap()
	fields := []string{"BaseDelay", "Multiplier", "MaxDelay", "Jitter"}
	if len(errs) != len(fields) {
		t.Fatalf("Validate() reported %d errors, want %d:\n%v", len(errs), len(fields), err)
	}
	for i, e := range errs {
		if !errors.Is(e, backoff.ErrInvalidConfig) || !strings.Contains(e.Error(), fields[i]+" ") {
			t.Errorf("error %d = %q, want one wrapping ErrInvalidConfig naming %s", i, e, fields[i])
		}
	}
}

func TestValidConfigs(t *testing.T) {
	tests := []struct {
		name string
		cfg  backoff.Config
	}{
		{"DefaultConfig", backoff.DefaultConfig()},
		{"zero Config", backoff.Config{}},
		{"only MaxDelay", backoff.Config{MaxDelay: time.Minute}},
		{"NoJitter", backoff.Config{Jitter: backoff.NoJitter}},
		{"Multiplier 1", backoff.Config{Multiplier: 1}},
		{"full jitter", backoff.Config{BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: time.Second, Jitter: 1}},
		{"max duration", backoff.Config{BaseDelay: math.MaxInt64, Multiplier: math.MaxFloat64, MaxDelay: math.MaxInt64}},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		}
	}
}

func TestDefaultConfigValues(t *testing.T) {
	want := backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 2, MaxDelay: 2 * time.Second, Jitter: 0.2}
	if got := backoff.DefaultConfig(); got != want {
		t.Errorf("DefaultConfig = %+v, want %+v", got, want)
	}
}

func TestNewExponentialOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts []backoff.Option
		want string
	}{
		{"nil WithRandom", []backoff.Option{backoff.WithRandom(nil)}, "WithRandom"},
		{"nil Option", []backoff.Option{fixed(0), nil}, "option 1 is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := backoff.NewExponential(backoff.DefaultConfig(), tt.opts...)
			if err == nil {
				t.Fatalf("NewExponential() = %v, nil; want error", e)
			}
			if e != nil {
				t.Errorf("NewExponential() policy = %v, want nil", e)
			}
			if !errors.Is(err, backoff.ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false, want true", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLastWithRandomWins(t *testing.T) {
	e := mustNew(t, backoff.Config{BaseDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute, Jitter: 1},
		fixed(0.9), fixed(0.5))
	if got, want := e.Delay(1), 500*time.Millisecond; got != want {
		t.Errorf("Delay(1) = %v, want %v", got, want)
	}
}

func TestMustExponential(t *testing.T) {
	if e := backoff.MustExponential(backoff.DefaultConfig()); e == nil {
		t.Fatal("MustExponential(DefaultConfig) = nil, want policy")
	}
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, backoff.ErrInvalidConfig) {
			t.Errorf("MustExponential(invalid) panicked with %v, want error wrapping ErrInvalidConfig", r)
		}
	}()
	backoff.MustExponential(backoff.Config{Multiplier: 0.5})
	t.Error("MustExponential(invalid) did not panic")
}

func TestConfigRoundTrip(t *testing.T) {
	cfg := backoff.Config{BaseDelay: 3 * time.Millisecond, Multiplier: 1.7, MaxDelay: time.Minute, Jitter: 0.4}
	e := mustNew(t, cfg)
	if got := e.Config(); got != cfg {
		t.Errorf("Config() = %+v, want %+v", got, cfg)
	}
}

func TestZeroExponential(t *testing.T) {
	var e backoff.Exponential
	if got := e.Delay(3); got != 0 {
		t.Errorf("zero Exponential Delay(3) = %v, want 0", got)
	}
}

func TestConstant(t *testing.T) {
	tests := []struct {
		c    backoff.Constant
		want time.Duration
	}{
		{backoff.Constant(100 * time.Millisecond), 100 * time.Millisecond},
		{backoff.Constant(0), 0},
		{backoff.Constant(-time.Second), 0},
		{backoff.Constant(math.MaxInt64), math.MaxInt64},
	}
	for _, tt := range tests {
		var p backoff.Policy = tt.c
		for _, retry := range []int{math.MinInt, 0, 1, 2, math.MaxInt} {
			if got := p.Delay(retry); got != tt.want {
				t.Errorf("Constant(%v).Delay(%d) = %v, want %v", time.Duration(tt.c), retry, got, tt.want)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	policies := map[string]backoff.Policy{
		"default random": mustNew(t, backoff.DefaultConfig()),
		"fixed random":   mustNew(t, backoff.DefaultConfig(), fixed(0.5)),
		"constant":       backoff.Constant(time.Second),
	}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 1000 {
						retry := g*1000 + i
						if d := p.Delay(retry); d < 0 || d > backoff.DefaultConfig().MaxDelay {
							select {
							case errs <- "out of range":
							default:
							}
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Errorf("concurrent Delay: %s", e)
			}
		})
	}
}

func TestDelayDoesNotAllocate(t *testing.T) {
	policies := map[string]backoff.Policy{
		"exponential default random": mustNew(t, backoff.DefaultConfig()),
		"exponential fixed random":   mustNew(t, backoff.DefaultConfig(), fixed(0.3)),
		"constant":                   backoff.Constant(time.Second),
	}
	for name, p := range policies {
		retry := 0
		if got := testing.AllocsPerRun(1000, func() {
			retry++
			_ = p.Delay(retry)
		}); got != 0 {
			t.Errorf("%s: allocs per Delay = %v, want 0", name, got)
		}
	}
}

func BenchmarkDelay(b *testing.B) {
	benchmarks := []struct {
		name string
		p    backoff.Policy
	}{
		{"Exponential/default", backoff.MustExponential(backoff.DefaultConfig())},
		{"Exponential/nojitter", backoff.MustExponential(backoff.Config{BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: time.Second, Jitter: backoff.NoJitter})},
		{"Constant", backoff.Constant(time.Second)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink time.Duration
			retry := 0
			for b.Loop() {
				retry = retry%20 + 1
				sink += bm.p.Delay(retry)
			}
			_ = sink
		})
	}
}
