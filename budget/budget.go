package budget

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] and [New]
// return.
var ErrInvalidConfig = errors.New("budget: invalid config")

// ErrExhausted reports that a retry was refused because the budget was
// exhausted.
var ErrExhausted = errors.New("budget: retry budget exhausted")

// maxTokens bounds Config.MaxTokens, as gRFC A6 bounds maxTokens.
const maxTokens = 1000

// Config sets the size and refill rate of a [Budget]. A zero field means the
// default listed in [DefaultConfig], so Config{} is the default budget
// (MaxTokens 100, TokenRatio 1); a negative, NaN, ±Inf or out-of-range value
// is rejected by [Config.Validate] (and so by [New]), never silently
// replaced.
type Config struct {
	// MaxTokens is the bucket size, in (0, 1000] as in gRFC A6. Retries
	// are allowed while more than MaxTokens/2 tokens are left. Zero means
	// 100.
	MaxTokens float64
	// TokenRatio is the number of tokens a successful attempt adds, in
	// [0.001, MaxTokens] once zero fields have taken their defaults.
	// Precision beyond 0.001 is ignored, as in gRFC A6. Zero means 1.
	TokenRatio float64
}

// DefaultConfig returns the configuration a zero Config stands for, as a
// fresh value: MaxTokens 100 and TokenRatio 1 (see the package documentation
// for why). It is the one place the defaults live.
func DefaultConfig() Config { return Config{MaxTokens: 100, TokenRatio: 1} }

// WithDefaults returns c with every zero field replaced by its default: the
// configuration a Budget made from c runs with.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	c.MaxTokens = cmp.Or(c.MaxTokens, d.MaxTokens)
	c.TokenRatio = cmp.Or(c.TokenRatio, d.TokenRatio)
	return c
}

// String describes the budget c configures, zero fields taking their
// defaults, e.g. "100 tokens, 1 back per success (retries stop at 50)".
func (c Config) String() string {
	d := c.WithDefaults()
	return fmt.Sprintf("%g tokens, %g back per success (retries stop at %g)", d.MaxTokens, d.TokenRatio, d.MaxTokens/2)
}

// Validate reports every invalid field, joined with errors.Join; each error
// wraps [ErrInvalidConfig] and names the field and the value, e.g.
//
//	budget: invalid config: MaxTokens must be in (0, 1000] (0 means default), got NaN
//
// Zero values are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	maxOK := c.MaxTokens >= 0 && c.MaxTokens <= maxTokens // also rejects NaN
	if !maxOK {
		bad("MaxTokens must be in (0, %d] (0 means default), got %v", maxTokens, c.MaxTokens)
	}
	d := c.WithDefaults()
	switch {
	case !(c.TokenRatio == 0 || c.TokenRatio >= 0.001 && c.TokenRatio <= maxTokens): // also NaN
		bad("TokenRatio must be in [0.001, MaxTokens] (0 means default), got %v", c.TokenRatio)
	case maxOK && d.TokenRatio > d.MaxTokens:
		bad("TokenRatio (%v%s) must be <= MaxTokens (%v%s)",
			d.TokenRatio, defaulted(c.TokenRatio), d.MaxTokens, defaulted(c.MaxTokens))
	}
	return errors.Join(errs...)
}

// defaulted marks, in an error message, a value that came from a zero field.
func defaulted(v float64) string {
	if v == 0 {
		return ", the default"
	}
	return ""
}

// milli is the fixed-point scale of the token count.
const milli = 1000

// Budget is a retry token bucket. The zero value is not usable; create one
// with New.
type Budget struct {
	tokens    atomic.Int64 // milli-tokens
	max       int64
	ratio     int64
	threshold int64
}

// New returns a full Budget configured by c, with every zero field of c
// taking its default (so New(Config{}) is the default budget). It returns an
// error wrapping [ErrInvalidConfig] if c fails [Config.Validate].
func New(c Config) (*Budget, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	b := &Budget{
		max:   int64(math.Round(c.MaxTokens * milli)),
		ratio: int64(math.Round(c.TokenRatio * milli)),
	}
	b.threshold = b.max / 2
	b.tokens.Store(b.max)
	return b, nil
}

// AllowRetry reports whether a retry may be made now.
func (b *Budget) AllowRetry() bool { return b.tokens.Load() > b.threshold }

// Failure records an attempt that failed with a retryable code: one token
// is taken.
func (b *Budget) Failure() { b.add(-milli) }

// Success records a successful attempt: TokenRatio tokens are added.
func (b *Budget) Success() { b.add(b.ratio) }

func (b *Budget) add(d int64) {
	for {
		old := b.tokens.Load()
		n := min(max(old+d, 0), b.max)
		if n == old || b.tokens.CompareAndSwap(old, n) {
			return
		}
	}
}

// Tokens returns the current number of tokens.
func (b *Budget) Tokens() float64 { return float64(b.tokens.Load()) / milli }

// invalid is an error wrapping ErrInvalidConfig, as breaker's and
// backoff's.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
