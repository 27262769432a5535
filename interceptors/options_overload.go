package interceptors

import (
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

// WithConcurrencyLimit sets the concurrency limit of unary attempts, one
// limiter per target (see package limiter): an adaptive limit that follows
// the target's latency (the default), or, with c.Fixed, a bulkhead. An
// attempt over the limit waits in a short queue — never past the point
// where it could still finish before the call's deadline — or is refused
// at once with an error that has status Unavailable and matches
// limiter.ErrLimited. A refused attempt never reached a server: no breaker,
// budget or endpoint detector counts it, and a fallback may answer the
// call. Streams are not limited. Invalid values are rejected by name.
// Default limiter.DefaultConfig(): adaptive, starting unlimited (1000)
// until a queue at the target is measured. c.OnLimitChange must be nil:
// each target's limit is reported by the resilience.client.limiter.*
// gauges and, with WithLogger, its changes worth knowing are logged.
func WithConcurrencyLimit(c limiter.Config) Option {
	return optionFunc(func(cfg *config) error {
		if err := c.Validate(); err != nil {
			return invalid("WithConcurrencyLimit", "%v", err)
		}
		if c.OnLimitChange != nil {
			return invalid("WithConcurrencyLimit", "OnLimitChange must be nil: the Middleware keeps a limiter per target "+
				"and reports their changes itself (WithLogger, and the resilience.client.limiter.limit gauge)")
		}
		cfg.limiter = &c
		return nil
	})
}

// WithConcurrencyLimitPerMethod keys concurrency limiters by target and
// method instead of by target alone: with WithConcurrencyLimit's
// limiter.Config{Fixed: n}, a bulkhead of n per method, so that one slow
// method cannot take every place from the others.
func WithConcurrencyLimitPerMethod() Option {
	return optionFunc(func(cfg *config) error {
		cfg.limiterMethod = true
		return nil
	})
}

// WithoutConcurrencyLimit turns the concurrency limit off.
func WithoutConcurrencyLimit() Option {
	return optionFunc(func(cfg *config) error {
		cfg.limiter = nil
		return nil
	})
}

// WithThrottle turns on client-side adaptive throttling of unary attempts,
// one throttle per target (see package throttle): while a target accepts
// fewer than 1/K of the attempts sent to it, the client refuses the excess
// itself, with an error that has status Unavailable and matches
// throttle.ErrThrottled. It suits downstreams whose failures are overload
// (they fail more the more they are sent); a downstream that fails at
// random, whatever its load, is sent less and answers less with it. A
// half-open breaker's probes are never throttled. Off by default; invalid
// values are rejected by name.
func WithThrottle(c throttle.Config) Option {
	return optionFunc(func(cfg *config) error {
		if err := c.Validate(); err != nil {
			return invalid("WithThrottle", "%v", err)
		}
		cfg.throttle = &c
		return nil
	})
}
