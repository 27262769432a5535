package budget

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("budget: invalid config")

// ErrExhausted reports that a retry was refused because the budget was
// exhausted.
var ErrExhausted = errors.New("budget: retry budget exhausted")

// Config sets the size and refill rate of a Budget. Both fields are
// required; see DefaultConfig.
type Config struct {
	// MaxTokens is the bucket size, in (0, 1000] as in gRFC A6. Retries
	// are allowed while more than MaxTokens/2 tokens are left.
	MaxTokens float64
	// TokenRatio is the number of tokens a successful attempt adds, in
	// (0, MaxTokens]. Precision beyond 0.001 is ignored, as in gRFC A6.
	TokenRatio float64
}

// DefaultConfig returns MaxTokens 100 and TokenRatio 1 (see the package
// documentation for why).
func DefaultConfig() Config { return Config{MaxTokens: 100, TokenRatio: 1} }

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	switch {
	case !(c.MaxTokens > 0 && c.MaxTokens <= 1000):
		return fmt.Errorf("%w: MaxTokens must be in (0, 1000], got %v", ErrInvalidConfig, c.MaxTokens)
	case !(c.TokenRatio >= 0.001 && c.TokenRatio <= c.MaxTokens):
		return fmt.Errorf("%w: TokenRatio must be in [0.001, MaxTokens], got %v", ErrInvalidConfig, c.TokenRatio)
	}
	return nil
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

// New returns a full Budget.
func New(c Config) (*Budget, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
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
