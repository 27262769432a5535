package backoff

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy computes the delay before a retry.
//
// Retry 1 is the delay before the second attempt, retry 2 the delay before
// the third, and so on. Implementations must be safe for concurrent use.
type Policy interface {
	// Delay returns how long to wait before the given retry. It never
	// returns a negative duration.
	Delay(retry int) time.Duration
}

// Config describes a capped exponential backoff with jitter. See the
// package documentation for the exact formula. The zero Config is not
// valid (its Multiplier is 0); start from [DefaultConfig]() and override
// fields as needed.
type Config struct {
	// BaseDelay is the delay before the first retry, before jitter.
	// It must be >= 0.
	BaseDelay time.Duration
	// Multiplier is the factor by which the delay grows per retry.
	// It must be a finite number >= 1; 0, NaN, ±Inf and values below 1
	// are rejected.
	Multiplier float64
	// MaxDelay caps every delay, before and after jitter. It must be
	// >= BaseDelay (and so >= 0).
	MaxDelay time.Duration
	// Jitter is the fraction in [0, 1] by which a delay is randomly
	// shortened: 0 disables jitter, 1 is "full jitter" (a delay uniform in
	// (0, d]). NaN is rejected.
	Jitter float64
}

// DefaultConfig returns the recommended backoff configuration, as a fresh
// value: 50ms before the first retry, doubling per retry, capped at 2s, with
// each delay randomly shortened by up to 20%.
func DefaultConfig() Config {
	return Config{
		BaseDelay:  50 * time.Millisecond,
		Multiplier: 2,
		MaxDelay:   2 * time.Second,
		Jitter:     0.2,
	}
}

// ErrInvalidConfig is wrapped by every error reporting an invalid [Config]
// or an invalid [Option]; test for it with errors.Is.
var ErrInvalidConfig = errors.New("backoff: invalid config")

// invalid returns an error wrapping ErrInvalidConfig with the given detail.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Validate reports whether c is usable by [NewExponential]. It returns nil
// for a valid Config. Otherwise it reports every problem found, not only the
// first, joined with errors.Join (one problem per line of the message).
// Each problem wraps [ErrInvalidConfig] and names the field and its bad
// value, for example
//
//	backoff: invalid config: Multiplier must be >= 1, got 0
func (c Config) Validate() error {
	var errs []error
	if c.BaseDelay < 0 {
		errs = append(errs, invalid("BaseDelay must be >= 0, got %v", c.BaseDelay))
	}
	switch {
	case math.IsNaN(c.Multiplier) || math.IsInf(c.Multiplier, 0):
		errs = append(errs, invalid("Multiplier must be a finite number >= 1, got %v", c.Multiplier))
	case c.Multiplier < 1:
		errs = append(errs, invalid("Multiplier must be >= 1, got %v", c.Multiplier))
	}
	switch {
	case c.MaxDelay < 0:
		errs = append(errs, invalid("MaxDelay must be >= 0, got %v", c.MaxDelay))
	case c.MaxDelay < c.BaseDelay:
		errs = append(errs, invalid("MaxDelay must be >= BaseDelay (%v), got %v", c.BaseDelay, c.MaxDelay))
	}
	if math.IsNaN(c.Jitter) || c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, invalid("Jitter must be in [0, 1], got %v", c.Jitter))
	}
	return errors.Join(errs...)
}

// Option configures an [Exponential] built by [NewExponential] or
// [MustExponential].
type Option interface {
	apply(*options)
}

// options holds everything an Option can set; defaults live in
// defaultOptions.
type options struct {
	random func() float64
}

func defaultOptions() options {
	return options{random: rand.Float64}
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithRandom sets the random source used for jitter. f must return values
// in [0, 1) and be safe for concurrent use; values outside that range are
// clamped into [0, 1] and NaN is treated as 0, so a misbehaving source can
// never push a delay below 0 or above the cap. The default is math/rand/v2's
// top-level Float64. A nil f makes [NewExponential] return an error wrapping
// [ErrInvalidConfig] that names WithRandom.
//
// A fixed function, such as func() float64 { return 0.5 }, makes delays
// deterministic, which is useful in tests and examples.
func WithRandom(f func() float64) Option {
	return optionFunc(func(o *options) { o.random = f })
}

// Exponential is a capped exponential backoff [Policy] with jitter, built by
// [NewExponential] from a validated [Config]. It is immutable after
// construction and safe for concurrent use. The zero value returns 0 for
// every retry; use NewExponential to get a useful policy.
type Exponential struct {
	cfg    Config
	random func() float64
}

var (
	_ Policy = (*Exponential)(nil)
	_ Policy = Constant(0)
)

// NewExponential returns an exponential backoff policy for c. It returns an
// error wrapping [ErrInvalidConfig] if c fails [Config.Validate] or an
// option is invalid (a nil Option, or [WithRandom] given nil).
func NewExponential(c Config, opts ...Option) (*Exponential, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, invalid("option %d is nil", i)
		}
		opt.apply(&o)
	}
	if o.random == nil {
		return nil, invalid("WithRandom: random source must not be nil")
	}
	return &Exponential{cfg: c, random: o.random}, nil
}

// MustExponential is like [NewExponential] but panics, with the error
// NewExponential would have returned, if c or an option is invalid. It is
// meant for package-level variables and configurations known to be valid,
// such as [DefaultConfig].
func MustExponential(c Config, opts ...Option) *Exponential {
	e, err := NewExponential(c, opts...)
	if err != nil {
		panic(err)
	}
	return e
}

// Config returns the configuration e was built with.
func (e *Exponential) Config() Config { return e.cfg }

// Delay returns the delay before the given retry:
//
//	d(n)  = min(MaxDelay, BaseDelay × Multiplier^(n−1))
//	delay = d(n) × (1 − Jitter × r), r uniform in [0, 1)
//
// truncated to whole nanoseconds. Retry numbers below 1 are treated as 1.
// The result is always in [0, MaxDelay], even for retry = math.MaxInt. The
// random source is called only when Jitter > 0. Delay does not allocate.
func (e *Exponential) Delay(retry int) time.Duration {
	c := &e.cfg
	if c.BaseDelay <= 0 || c.MaxDelay <= 0 {
		// 0 × Multiplier^(n−1) is 0; returning early also avoids 0 × +Inf = NaN.
		return 0
	}
	if retry < 1 {
		retry = 1
	}
	maxF := float64(c.MaxDelay)
	d := float64(c.BaseDelay) * math.Pow(c.Multiplier, float64(retry-1))
	if !(d < maxF) { // also catches +Inf
		d = maxF
	}
	if c.Jitter > 0 {
		r := e.random()
		switch {
		case !(r > 0): // r <= 0 or NaN
			r = 0
		case r > 1:
			r = 1
		}
		d *= 1 - c.Jitter*r
	}
	// float64(MaxDelay) may round up past math.MaxInt64, so saturate before
	// converting: any d below maxF converts to a Duration <= MaxDelay.
	if d >= maxF {
		return c.MaxDelay
	}
	if !(d > 0) {
		return 0
	}
	return time.Duration(d)
}

// Constant is a [Policy] that waits the same duration before every retry,
// for example backoff.Constant(100 * time.Millisecond). A negative Constant
// behaves as 0: its Delay returns 0. It is safe for concurrent use.
type Constant time.Duration

// Delay returns c for every retry, or 0 if c is negative.
func (c Constant) Delay(int) time.Duration {
	if c < 0 {
		return 0
	}
	return time.Duration(c)
}
