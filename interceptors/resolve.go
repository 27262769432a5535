package interceptors

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
)

// policies is one version of a Middleware's policies: its layers, and the
// policy of each method resolved from them once. A new service config makes
// a new version; calls keep the version they started with.
type policies struct {
	base    policy // defaults and New's PolicyOptions
	sc      *serviceConfig
	methods []methodPolicy

	mu    sync.Mutex                         // serializes writers of cache
	cache atomic.Pointer[map[string]*policy] // copy on write
}

// maxCachedMethods bounds the resolved-policy cache. Beyond it, a method's
// policy is resolved on each call: correct, only slower.
const maxCachedMethods = 1024

func newPolicies(cfg *config, sc *serviceConfig) *policies {
	ps := &policies{base: defaultPolicy(), sc: sc, methods: cfg.methodPolicies}
	for _, o := range cfg.defaults {
		_ = o.apply(&ps.base) // checked by New
	}
	return ps
}

// forMethod returns the policy of method. The caller must not modify it.
func (ps *policies) forMethod(method string) *policy {
	if m := ps.cache.Load(); m != nil {
		if p, ok := (*m)[method]; ok {
			return p
		}
	}
	p := ps.resolve(method)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var old map[string]*policy
	if m := ps.cache.Load(); m != nil {
		old = *m
	}
	if cached, ok := old[method]; ok {
		return cached
	}
	if len(old) < maxCachedMethods {
		m := make(map[string]*policy, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[method] = p
		ps.cache.Store(&m)
	}
	return p
}

// resolve computes the policy of method from the layers.
func (ps *policies) resolve(method string) *policy {
	p := new(policy)
	*p = ps.base
	ps.sc.lookup(method).apply(p)
	for i := range ps.methods {
		if mp := &ps.methods[i]; mp.match(method) {
			for _, o := range mp.opts {
				_ = o.apply(p) // checked by New
			}
		}
	}
	return p
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
//	interceptors: invalid option: WithServiceConfig: methodConfig[1].retryPolicy.maxAttempts: must be >= 2, got 1
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
	var wasWait *time.Duration
	var wasBreaker *breaker.Config
	if was != nil {
		wasWait, wasBreaker = was.readyWait, was.breaker
	}
	if !reflect.DeepEqual(sc.readyWait, wasWait) {
		return errors.New("interceptors: SetServiceConfig: resilience.readyWait: set by New only; it cannot change while running")
	}
	if !reflect.DeepEqual(sc.breaker, wasBreaker) {
		return errors.New("interceptors: SetServiceConfig: resilience.breaker: set by New only; it cannot change while running")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.eng.SetBudget(effectiveBudget(&m.cfg, sc))
	m.pol.Store(newPolicies(&m.cfg, sc))
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
	if o.Window != 0 {
		c.Window = o.Window
	}
	if o.OpenTimeout != 0 {
		c.OpenTimeout = o.OpenTimeout
	}
	if o.MinRequests != 0 {
		c.MinRequests = o.MinRequests
	}
	if o.ConsecutiveFailures != 0 {
		c.ConsecutiveFailures = o.ConsecutiveFailures
	}
	if o.HalfOpenProbes != 0 {
		c.HalfOpenProbes = o.HalfOpenProbes
	}
	if o.FailureRatio != 0 {
		c.FailureRatio = o.FailureRatio
	}
	return &c
}

// ResolvedPolicy is the policy the calls of one method get before their own
// PolicyOptions: what the defaults, New's PolicyOptions, the service config
// and the method policies come to.
type ResolvedPolicy struct {
	MaxAttempts       int
	RetryCodes        []codes.Code // for hedged calls: the codes that are not fatal
	Backoff           backoff.Policy
	PerAttemptTimeout time.Duration
	Timeout           time.Duration // the deadline of a call without one; 0: none
	Hedging           *HedgePolicy  // nil: not hedged
	Breaker           bool          // false: the method bypasses the breaker
	RetryBudget       *budget.Config
}

// MethodPolicy returns the policy of fullMethod ("/pkg.Service/Method") in
// the current version of m's policies.
func (m *Middleware) MethodPolicy(fullMethod string) ResolvedPolicy {
	p := m.pol.Load().forMethod(fullMethod)
	r := ResolvedPolicy{
		MaxAttempts:       p.MaxAttempts,
		Backoff:           p.Backoff,
		PerAttemptTimeout: p.PerAttemptTimeout,
		Timeout:           p.CallTimeout,
		Breaker:           m.breakers != nil && !p.NoBreaker,
		RetryBudget:       m.eng.Budget(),
	}
	for c := range codes.Code(codes.Unauthenticated + 1) {
		if p.RetryCodes.Has(c) {
			r.RetryCodes = append(r.RetryCodes, c)
		}
	}
	if h := p.Hedge; h != nil {
		r.Hedging = &HedgePolicy{Delay: h.Delay, Percentile: h.Percentile, MaxAttempts: h.MaxInFlight}
		r.MaxAttempts = max(r.MaxAttempts, h.MaxInFlight)
	}
	slices.Sort(r.RetryCodes)
	return r
}
