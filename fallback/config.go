package fallback

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] and [NewStore]
// return.
var ErrInvalidConfig = errors.New("fallback: invalid config")

// Config configures a [Store]. The zero value of every field means "use the
// default" listed in [DefaultConfig]; negative values are rejected by
// [Config.Validate] (and so by [NewStore]), never silently replaced.
type Config struct {
	// MaxBytes bounds the memory the Store keeps, counted as described in
	// the package documentation ("What counts toward MaxBytes"). When a
	// copy would take the Store over it, the least recently used copies
	// are evicted. Zero means 64 MiB.
	MaxBytes int64
	// MaxAge is how long a copy may be served after it was saved: a copy
	// older than MaxAge is never served, and is dropped when it is looked
	// up or when a later save finds it. Zero means 5 minutes.
	MaxAge time.Duration
}

// DefaultConfig returns the configuration a zero Config stands for. It is the
// one place the defaults live. Each call returns a fresh value.
func DefaultConfig() Config {
	return Config{
		MaxBytes: 64 << 20,
		MaxAge:   5 * time.Minute,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.MaxBytes = cmp.Or(c.MaxBytes, d.MaxBytes)
	c.MaxAge = cmp.Or(c.MaxAge, d.MaxAge)
	return c
}

// Validate reports every invalid field, each as an error wrapping
// [ErrInvalidConfig] that names it, joined with errors.Join, e.g.
//
//	fallback: invalid config: MaxBytes must be >= 0 (0 means 64 MiB), got -1
//
// Zero values are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	if c.MaxBytes < 0 {
		errs = append(errs, invalid("MaxBytes must be >= 0 (0 means 64 MiB), got %d", c.MaxBytes))
	}
	if c.MaxAge < 0 {
		errs = append(errs, invalid("MaxAge must be >= 0 (0 means 5m), got %v", c.MaxAge))
	}
	return errors.Join(errs...)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
