package resiliencetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// ErrInvalidConfig is wrapped by every error about a bad argument or option. The
// message names the function and the field at fault.
var ErrInvalidConfig = errors.New("resiliencetest: invalid config")

// invalid returns an error wrapping ErrInvalidConfig.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Option configures NewFaults and NewChaos. Options are applied in order.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	seed uint64
}

func newConfig(opts []Option) (config, error) {
	var cfg config // seed 0 by default
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, invalid("nil Option"))
			continue
		}
		if err := o.apply(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return cfg, errors.Join(errs...)
}

// rng returns the random source of cfg: a PCG seeded with the seed.
func (c config) rng() *rand.Rand {
	return rand.New(rand.NewPCG(c.seed, c.seed))
}

// WithSeed seeds the random draws (fractions and rates) with seed, so that a
// run can be reproduced. The default seed is 0: without WithSeed runs are
// reproducible too.
func WithSeed(seed uint64) Option {
	return optionFunc(func(c *config) error {
		c.seed = seed
		return nil
	})
}
