package limiter

import (
	"cmp"
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] and [New]
// return.
var ErrInvalidConfig = errors.New("limiter: invalid config")

// NoQueue is the Queue value that turns the queue off: a call over the
// limit is refused at once.
const NoQueue = -1

// maxLimit bounds every limit setting.
const maxLimit = 1 << 20

// Config configures a [Limiter]. A zero field means the default listed in
// [DefaultConfig], so Config{} is the default adaptive limiter; a negative,
// NaN or out-of-range value is rejected by [Config.Validate] (and so by
// [New]) with an error naming the field, never silently replaced.
type Config struct {
	// Fixed, if not zero, makes the limiter a bulkhead: the limit is
	// Fixed and never adapts, and InitialLimit, MinLimit and MaxLimit
	// must be zero. Zero means adaptive.
	Fixed int
	// InitialLimit is the adaptive limit a new Limiter starts with. Zero
	// means MaxLimit: nothing is limited until a queue is measured.
	InitialLimit int
	// MinLimit is the least the adaptive limit falls to. Zero means 1.
	MinLimit int
	// MaxLimit is the most the adaptive limit rises to. Zero means 1000.
	MaxLimit int
	// Queue is how many calls over the limit may wait for a permit at
	// once; a call that finds the queue full, or too little time left
	// before its deadline, is refused at once. Zero means as many as the
	// current limit; NoQueue refuses every call over the limit at once.
	Queue int
	// OnLimitChange, if not nil, is told of the limit's changes (as
	// [Limiter.Limit] reports it): from the limit it was last told, or the
	// initial one, to the new one. It is called by the [Permit.Done] that
	// moved the limit, after the limiter's lock is released, in order and
	// never concurrently with itself: a change made while it runs is told
	// when it returns, merged with any others made meanwhile into one
	// (from the limit it was last told to the latest), so that a slow hook
	// delays one caller, never piles up work. It may call the Limiter. A
	// panic in it reaches the caller of that Done; later changes are still
	// told. A bulkhead's limit never changes. nil means none.
	OnLimitChange func(from, to int)
}

// DefaultConfig returns the configuration a zero Config stands for, as a
// fresh value. It is the one place the defaults live.
func DefaultConfig() Config {
	return Config{InitialLimit: 1000, MinLimit: 1, MaxLimit: 1000}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Fixed != 0 {
		c.InitialLimit, c.MinLimit, c.MaxLimit = c.Fixed, c.Fixed, c.Fixed
		return c
	}
	d := DefaultConfig()
	c.MinLimit = cmp.Or(c.MinLimit, d.MinLimit)
	c.MaxLimit = cmp.Or(c.MaxLimit, d.MaxLimit)
	c.InitialLimit = cmp.Or(c.InitialLimit, c.MaxLimit)
	return c
}

// Validate reports every invalid field, joined with errors.Join; each error
// wraps [ErrInvalidConfig] and names the field and the value, e.g.
//
//	limiter: invalid config: MinLimit (30) must be <= MaxLimit (20)
//
// Zero values are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	inRange := func(name string, v int) bool {
		if v < 0 || v > maxLimit {
			bad("%s must be in [0, %d] (0 means default), got %d", name, maxLimit, v)
			return false
		}
		return true
	}
	ok := inRange("Fixed", c.Fixed)
	ok = inRange("InitialLimit", c.InitialLimit) && ok
	ok = inRange("MinLimit", c.MinLimit) && ok
	ok = inRange("MaxLimit", c.MaxLimit) && ok
	if c.Queue < NoQueue || c.Queue > maxLimit {
		bad("Queue must be in [0, %d] or NoQueue (0 means the limit), got %d", maxLimit, c.Queue)
	}
	if !ok {
		return errors.Join(errs...)
	}
	if c.Fixed != 0 {
		if c.InitialLimit != 0 || c.MinLimit != 0 || c.MaxLimit != 0 {
			bad("Fixed (%d) is a bulkhead: InitialLimit, MinLimit and MaxLimit must be 0, got %d, %d, %d",
				c.Fixed, c.InitialLimit, c.MinLimit, c.MaxLimit)
		}
		return errors.Join(errs...)
	}
	d := c.withDefaults()
	if d.MinLimit > d.MaxLimit {
		bad("MinLimit (%d) must be <= MaxLimit (%d)", d.MinLimit, d.MaxLimit)
	} else if d.InitialLimit < d.MinLimit || d.InitialLimit > d.MaxLimit {
		bad("InitialLimit (%d) must be in [MinLimit, MaxLimit] = [%d, %d]", d.InitialLimit, d.MinLimit, d.MaxLimit)
	}
	return errors.Join(errs...)
}

// invalid is an error wrapping ErrInvalidConfig, as breaker's and
// backoff's.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
