package backoff

import (
	"cmp"
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
// package documentation for the exact formula.
//
// A zero field means the default listed in [DefaultConfig], so Config{} is
// the default backoff and Config{MaxDelay: 10 * time.Second} is the default
// with a longer cap. A negative, NaN, ±Inf or out-of-range value is an error
// from [Config.Validate] (and so from [NewExponential]) naming the field and
// the value; it is never silently replaced.
//
// Two settings whose natural spelling would be a zero are spelled
// differently, because a zero already means the default:
//
//   - no jitter: set Jitter to [NoJitter];
//   - no delay at all (BaseDelay 0 or MaxDelay 0 would make every delay 0):
//     use the policy [Constant](0) instead of an Exponential.
//
// The field names are those of google.golang.org/grpc/backoff.Config (the
// reconnect backoff in grpc.ConnectParams), but Jitter does not mean the
// same thing there; see the package documentation.
type Config struct {
	// BaseDelay is the delay before the first retry, before jitter.
	// Zero means 50ms; it must not be negative.
	BaseDelay time.Duration
	// Multiplier is the factor by which the delay grows per retry.
	// Zero means 2; otherwise it must be a finite number >= 1 (NaN, ±Inf
	// and values below 1 are rejected).
	Multiplier float64
	// MaxDelay caps every delay, before and after jitter. Zero means 2s;
	// it must not be negative, and must be >= BaseDelay once zero fields
	// have taken their defaults (so BaseDelay 5s needs an explicit MaxDelay).
	// For no practical cap use math.MaxInt64.
	MaxDelay time.Duration
	// Jitter is the fraction by which a delay is randomly shortened, never
	// lengthened: the delay is drawn from (d×(1−Jitter), d], so 1 is "full
	// jitter" (a delay uniform in (0, d]). Zero means 0.2; [NoJitter] turns
	// jitter off; any other value must be in (0, 1] (negative values, NaN
	// and ±Inf are rejected).
	//
	// This is not grpc-go's Jitter. google.golang.org/grpc/backoff.Config
	// (grpc.ConnectParams) has the same field names but multiplies its
	// capped delay by a factor uniform in [1−Jitter, 1+Jitter]: its 0.2
	// spreads a delay ±20% around d, so a delay may exceed its MaxDelay by
	// up to Jitter×MaxDelay, and its zero Jitter is no jitter. Here 0.2
	// draws from the 20% below d, no delay exceeds MaxDelay, and zero
	// Jitter is the default. Values copied from a grpc-go Config therefore
	// give shorter delays on average (0.9·d instead of d, for 0.2).
	Jitter float64
}

// NoJitter is the Jitter value that turns jitter off: every delay is exactly
// min(MaxDelay, BaseDelay × Multiplier^(n−1)).
//
// A zero Jitter means the default (0.2), like every zero field of [Config],
// so "no jitter" needs a value of its own. Rather than a negative sentinel,
// which the convention rejects as invalid, NoJitter is the smallest positive
// float64: a valid Jitter that the formula itself turns into no jitter, since
// 1 − NoJitter×r rounds to exactly 1 in float64 for every r. It is not a
// magic value with its own rules; the only thing special about it is that
// the random source is not called for it, as there is nothing to draw.
const NoJitter = math.SmallestNonzeroFloat64

// DefaultConfig returns the configuration a zero Config stands for, as a
// fresh value: 50ms before the first retry, doubling per retry, capped at 2s,
// with each delay randomly shortened by up to 20%. It is the one place the
// defaults live.
func DefaultConfig() Config {
	return Config{
		BaseDelay:  50 * time.Millisecond,
		Multiplier: 2,
		MaxDelay:   2 * time.Second,
		Jitter:     0.2,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.BaseDelay = cmp.Or(c.BaseDelay, d.BaseDelay)
	c.Multiplier = cmp.Or(c.Multiplier, d.Multiplier)
	c.MaxDelay = cmp.Or(c.MaxDelay, d.MaxDelay)
	c.Jitter = cmp.Or(c.Jitter, d.Jitter)
	return c
}

// ErrInvalidConfig is wrapped by every error reporting an invalid [Config]
// or an invalid [Option]; test for it with errors.Is.
var ErrInvalidConfig = errors.New("backoff: invalid config")

// invalid returns an error wrapping ErrInvalidConfig with the given detail.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Validate reports whether c is usable by [NewExponential]. Zero fields are
// valid (they mean the default). Otherwise it reports every problem found,
// not only the first, joined with errors.Join (one problem per line of the
// message). Each problem wraps [ErrInvalidConfig] and names the field and
// its bad value, for example
//
//	backoff: invalid config: Multiplier must be a finite number >= 1 (0 means default), got 0.5
func (c Config) Validate() error {
	var errs []error
	baseOK, maxOK := c.BaseDelay >= 0, c.MaxDelay >= 0
	if !baseOK {
		errs = append(errs, invalid("BaseDelay must be >= 0 (0 means default), got %v", c.BaseDelay))
	}
	if math.IsNaN(c.Multiplier) || math.IsInf(c.Multiplier, 0) || (c.Multiplier != 0 && c.Multiplier < 1) {
		errs = append(errs, invalid("Multiplier must be a finite number >= 1 (0 means default), got %v", c.Multiplier))
	}
	if !maxOK {
		errs = append(errs, invalid("MaxDelay must be >= 0 (0 means default), got %v", c.MaxDelay))
	}
	if baseOK && maxOK {
		if d := c.withDefaults(); d.MaxDelay < d.BaseDelay {
			errs = append(errs, invalid("MaxDelay (%v%s) must be >= BaseDelay (%v%s)",
				d.MaxDelay, defaulted(c.MaxDelay), d.BaseDelay, defaulted(c.BaseDelay)))
		}
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) { // also NaN
		errs = append(errs, invalid("Jitter must be in [0, 1] (0 means default, NoJitter none), got %v", c.Jitter))
	}
	return errors.Join(errs...)
}

// defaulted marks, in an error message, a value that came from a zero field.
func defaulted(d time.Duration) string {
	if d == 0 {
		return ", the default"
	}
	return ""
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

// NewExponential returns an exponential backoff policy for c, with every
// zero field of c taking its default (so NewExponential(Config{}) is the
// default backoff). It returns an error wrapping [ErrInvalidConfig] if c
// fails [Config.Validate] or an option is invalid (a nil Option, or
// [WithRandom] given nil).
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
	return &Exponential{cfg: c.withDefaults(), random: o.random}, nil
}

// MustExponential is like [NewExponential] but panics, with the error
// NewExponential would have returned, if c or an option is invalid. It is
// meant for package-level variables and configurations known to be valid,
// such as the zero Config.
func MustExponential(c Config, opts ...Option) *Exponential {
	e, err := NewExponential(c, opts...)
	if err != nil {
		panic(err)
	}
	return e
}

// Config returns the configuration e was built with, with zero fields
// replaced by the defaults they stood for: the values Delay uses.
func (e *Exponential) Config() Config { return e.cfg }

// String describes e, e.g. "exponential(50ms × 2^(n-1), max 2s, shortened by up to 20%)".
func (e *Exponential) String() string {
	c := e.cfg
	if c.Jitter == NoJitter {
		return fmt.Sprintf("exponential(%v × %g^(n-1), max %v, no jitter)", c.BaseDelay, c.Multiplier, c.MaxDelay)
	}
	return fmt.Sprintf("exponential(%v × %g^(n-1), max %v, shortened by up to %g%%)", c.BaseDelay, c.Multiplier, c.MaxDelay, c.Jitter*100)
}

// Delay returns the delay before the given retry:
//
//	d(n)  = min(MaxDelay, BaseDelay × Multiplier^(n−1))
//	delay = d(n) × (1 − Jitter × r), r uniform in [0, 1)
//
// truncated to whole nanoseconds. Retry numbers below 1 are treated as 1.
// The result is always in [0, MaxDelay], even for retry = math.MaxInt. The
// random source is not called when Jitter is [NoJitter]. Delay does not
// allocate.
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
	if c.Jitter > NoJitter {
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

// String describes c, e.g. "constant(100ms)".
func (c Constant) String() string { return "constant(" + time.Duration(c).String() + ")" }

// Delay returns c for every retry, or 0 if c is negative.
func (c Constant) Delay(int) time.Duration {
	if c < 0 {
		return 0
	}
	return time.Duration(c)
}
