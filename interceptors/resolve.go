package interceptors

import (
	"cmp"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/engine"
)

// layers are the engine's policy layers of a Middleware configured by cfg
// under the service config sc (nil: none).
func layers(cfg *config, sc *serviceConfig) engine.Layers {
	l := engine.Layers{Base: defaultPolicy(), Settings: cfg.defaults, Methods: cfg.methodPolicies}
	if sc != nil {
		l.Config = make(map[string]*engine.Patch, len(sc.methods))
		for name, mc := range sc.methods {
			l.Config[name] = mc.patch(cfg.random)
		}
	}
	return l
}

// WithServiceConfig sets call policies from a gRPC service config (gRFC
// A6), the JSON grpc.WithDefaultServiceConfig takes: methodConfig entries
// (matched as grpc-go does: the exact method, else its service, else the
// entry with an empty name) with their timeout, retryPolicy and
// hedgingPolicy, and retryThrottling (the retry budget). An entry applies
// over the PolicyOptions given to New and under WithMethodPolicy. The
// "resilience" extension (ExtensionKey) adds what A6 lacks; see the package
// documentation. Errors name the JSON path and the value, e.g.
//
//	interceptors: invalid config: WithServiceConfig: methodConfig[1].retryPolicy.maxAttempts: must be >= 2, got 1
//
// Use SetServiceConfig to change it while running.
func WithServiceConfig(json string) Option {
	return optionFunc(func(c *config) error {
		sc, err := parseServiceConfig(json)
		if err != nil {
			return invalid("WithServiceConfig", "%v", err)
		}
		c.serviceConfig = sc
		if sc.readyWait != nil {
			c.readyWait = *sc.readyWait
		}
		if sc.breaker != nil {
			c.breaker = mergeBreaker(c.breaker, sc.breaker)
		}
		if l := sc.limit; l != nil {
			c.limiter, c.limiterMethod = nil, l.perMethod
			if !l.off {
				c.limiter = ptr(l.cfg)
			}
		}
		if th := sc.clientThrottle; th != nil {
			c.throttle = nil
			if !th.off {
				c.throttle = ptr(th.cfg)
			}
		}
		return nil
	})
}

// SetServiceConfig replaces the Middleware's service config (see
// WithServiceConfig) atomically: calls in flight keep the policy they
// started with, later calls get the new one. Breakers and budgets keep
// their state per target; a target whose retry budget changed size (a new
// retryThrottling, or none: back to the budget given to New) gets a new,
// full budget of the new size. The extension's Middleware-wide settings
// (readyWait, breaker) are read by New only: a JSON that changes them is
// rejected. On error nothing changes.
func (m *Middleware) SetServiceConfig(json string) error {
	sc, err := parseServiceConfig(json)
	if err != nil {
		return fmt.Errorf("interceptors: SetServiceConfig: %w", err)
	}
	was := m.cfg.serviceConfig
	if was == nil {
		was = &serviceConfig{}
	}
	for _, f := range []struct {
		name     string
		got, had any
	}{
		{"readyWait", sc.readyWait, was.readyWait},
		{"breaker", sc.breaker, was.breaker},
		{"concurrencyLimit", sc.limit, was.limit},
		{"throttle", sc.clientThrottle, was.clientThrottle},
	} {
		if !reflect.DeepEqual(f.got, f.had) {
			return fmt.Errorf("interceptors: SetServiceConfig: resilience.%s: set by New only; it cannot change while running", f.name)
		}
	}
	if err := checkResolved(&m.cfg, sc); err != nil {
		return fmt.Errorf("interceptors: SetServiceConfig: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.eng.SetBudget(effectiveBudget(&m.cfg, sc))
	m.eng.SetLayers(layers(&m.cfg, sc))
	return nil
}

// effectiveBudget is the retry budget under sc: its retryThrottling, else
// the one given to New.
func effectiveBudget(cfg *config, sc *serviceConfig) *budget.Config {
	if sc != nil && sc.throttle != nil {
		return sc.throttle
	}
	return cfg.budget
}

// mergeBreaker returns base with the fields o sets (those not zero).
func mergeBreaker(base, o *breaker.Config) *breaker.Config {
	c := breaker.DefaultConfig()
	if base != nil {
		c = *base
	}
	c.Window = cmp.Or(o.Window, c.Window)
	c.OpenTimeout = cmp.Or(o.OpenTimeout, c.OpenTimeout)
	c.MaxOpenTimeout = cmp.Or(o.MaxOpenTimeout, c.MaxOpenTimeout)
	c.OpenMultiplier = cmp.Or(o.OpenMultiplier, c.OpenMultiplier)
	c.OpenJitter = cmp.Or(o.OpenJitter, c.OpenJitter)
	c.MinRequests = cmp.Or(o.MinRequests, c.MinRequests)
	c.ConsecutiveFailures = cmp.Or(o.ConsecutiveFailures, c.ConsecutiveFailures)
	c.HalfOpenProbes = cmp.Or(o.HalfOpenProbes, c.HalfOpenProbes)
	c.FailureRatio = cmp.Or(o.FailureRatio, c.FailureRatio)
	c.Quorum = cmp.Or(o.Quorum, c.Quorum)
	return &c
}

// ResolvedPolicy is the policy the calls of one method get before their own
// PolicyOptions: what the defaults, New's PolicyOptions, the service config
// and the method policies come to. It prints as its values (see String).
type ResolvedPolicy struct {
	MaxAttempts       int
	RetryCodes        []codes.Code // for hedged calls: the codes that are not fatal
	Backoff           backoff.Policy
	PerAttemptTimeout time.Duration
	Timeout           time.Duration  // the deadline of a call without one; 0: none
	Hedging           *HedgePolicy   // nil: not hedged
	Breaker           bool           // false: the method bypasses the breaker
	RetryBudget       *budget.Config // in force, defaults filled in; nil: no budget
}

// MethodPolicy returns the policy of fullMethod ("/pkg.Service/Method") in
// the current version of m's policies.
func (m *Middleware) MethodPolicy(fullMethod string) ResolvedPolicy {
	p := m.eng.MethodPolicy(fullMethod)
	r := ResolvedPolicy{
		MaxAttempts:       p.MaxAttempts,
		Backoff:           p.Backoff,
		PerAttemptTimeout: p.PerAttemptTimeout,
		Timeout:           p.CallTimeout,
		Breaker:           m.breakers != nil && !p.NoBreaker,
	}
	if b := m.eng.Budget(); b != nil {
		inForce := b.WithDefaults() // a zero field of WithRetryBudget's Config means its default
		r.RetryBudget = &inForce
	}
	r.RetryCodes = p.RetryCodes.Codes()
	if h := p.Hedge; h != nil {
		r.Hedging = &HedgePolicy{Delay: h.Delay, Percentile: h.Percentile, MaxAttempts: h.MaxInFlight}
		r.MaxAttempts = max(r.MaxAttempts, h.MaxInFlight)
	}
	return r
}
