package interceptors

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/endpoint"
	"github.com/grpc-resilience/resilience/internal/engine"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

// Defaults. They are applied in one place, defaultConfig, and documented in
// doc.go and the README.
const (
	// DefaultMaxAttempts is the number of attempts a call makes, counting
	// the first one.
	DefaultMaxAttempts = 3
	// DefaultCallTimeout is the deadline given to calls whose context has
	// none.
	DefaultCallTimeout = 10 * time.Second
	// DefaultMinConnectTimeout is the connect timeout DialOptions sets.
	DefaultMinConnectTimeout = 3 * time.Second
)

// DefaultReadyWait is how long after a connection went down calls still
// wait for it (see WithReadyWait): long enough for a process to restart,
// short enough that callers of a downstream gone for good soon fail fast.
const DefaultReadyWait = 5 * time.Second

// DefaultReconnectProbe is the mean wait between two reconnects of a
// connection that calls wait for (see WithReconnectProbe): at most about
// 10 connection attempts per second and connection, a restarted server
// found within about 100 ms.
const DefaultReconnectProbe = 100 * time.Millisecond

// DefaultRetryCodes are the status codes retried by default.
var DefaultRetryCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded}

// DefaultConnectBackoff is the reconnect backoff DialOptions sets: grpc-go's
// base delay (1 s) with a cap of 3 s instead of 120 s, so that a restarted
// downstream is found again within seconds even while no call waits. While
// calls wait for the connection, the reconnect probe (WithReconnectProbe)
// sets the rhythm instead: it restarts this backoff at every kick, and a
// base delay above the probe's longest wait (1.5 x its interval) keeps
// grpc-go's own reconnects from adding to the probe's.
var DefaultConnectBackoff = grpcbackoff.Config{
	BaseDelay:  time.Second,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   3 * time.Second,
}

// ErrInvalidConfig is wrapped by every error New returns for a bad option.
var ErrInvalidConfig = errors.New("interceptors: invalid config")

// Option configures a Middleware: its default call policy (every
// PolicyOption is an Option) and the settings that are the Middleware's
// alone (breakers, budget, ready wait, telemetry, ...). Options are applied
// in order; a later option overrides an earlier one of the same kind.
type Option interface {
	applyOption(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) applyOption(c *config) error { return f(c) }

// config is the immutable configuration of a Middleware.
type config struct {
	defaults       []engine.Setting // New's default policy, over defaultPolicy
	methodPolicies []engine.MethodLayer
	methodNames    []string // the full method names MatchMethods gave the method policies
	connectParams  grpc.ConnectParams
	telemetry      telemetry.Options
	replayBuffer   int
	budget         *budget.Config // nil: no retry budget
	readyWait      time.Duration
	probeInterval  time.Duration
	breaker        *breaker.Config  // nil: no breakers
	breakerMethod  bool             // key breakers by target and method
	limiter        *limiter.Config  // nil: no concurrency limit
	limiterMethod  bool             // key limiters by target and method
	throttle       *throttle.Config // nil: no client-side throttling
	serviceConfig  *serviceConfig   // the one given to New; nil: none
	endpoint       *endpoint.Config // nil: no endpoint ejection
	random         func() float64   // the Middleware's random source (jitter); nil: math/rand/v2
}

// policy is what governs one call; it is resolved per call from the
// Middleware defaults, the matching method policies and the call options,
// in place in the engine's call state.
type policy = engine.Policy

// defaultPolicy is the policy of a call that nothing else configures.
func defaultPolicy() policy {
	return policy{
		MaxAttempts: DefaultMaxAttempts,
		RetryCodes:  engine.NewCodeSet(DefaultRetryCodes...),
		Backoff:     backoff.MustExponential(backoff.DefaultConfig()),
		CallTimeout: DefaultCallTimeout,
	}
}

func defaultConfig() config {
	return config{
		connectParams: grpc.ConnectParams{
			Backoff:           DefaultConnectBackoff,
			MinConnectTimeout: DefaultMinConnectTimeout,
		},
		replayBuffer:  DefaultStreamReplayBuffer,
		budget:        ptr(budget.DefaultConfig()),
		readyWait:     DefaultReadyWait,
		probeInterval: DefaultReconnectProbe,
		breaker:       ptr(breaker.DefaultConfig()),
		limiter:       ptr(limiter.DefaultConfig()),
	}
}

func ptr[T any](v T) *T { return &v }

// isNil reports whether v is nil or an interface holding a nil pointer, map,
// func, chan or slice — such as a *backoff.Exponential left nil by an
// ignored error — which would otherwise panic at the first use.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

func invalid(option, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, option, fmt.Sprintf(format, args...))
}

// WithConnectParams sets the connect parameters DialOptions hands out.
// Default: DefaultConnectBackoff and DefaultMinConnectTimeout.
// MinConnectTimeout must be > 0 and the backoff must have BaseDelay > 0,
// Multiplier >= 1, Jitter in [0,1] and MaxDelay >= BaseDelay.
func WithConnectParams(p grpc.ConnectParams) Option {
	return optionFunc(func(c *config) error {
		b := p.Backoff
		switch {
		case p.MinConnectTimeout <= 0:
			return invalid("WithConnectParams", "MinConnectTimeout must be > 0, got %v", p.MinConnectTimeout)
		case b.BaseDelay <= 0:
			return invalid("WithConnectParams", "Backoff.BaseDelay must be > 0, got %v", b.BaseDelay)
		case !(b.Multiplier >= 1):
			return invalid("WithConnectParams", "Backoff.Multiplier must be >= 1, got %v", b.Multiplier)
		case !(b.Jitter >= 0 && b.Jitter <= 1):
			return invalid("WithConnectParams", "Backoff.Jitter must be in [0,1], got %v", b.Jitter)
		case b.MaxDelay < b.BaseDelay:
			return invalid("WithConnectParams", "Backoff.MaxDelay (%v) must be >= Backoff.BaseDelay (%v)", b.MaxDelay, b.BaseDelay)
		}
		c.connectParams = p
		return nil
	})
}

// WithStreamReplayBuffer sets how many bytes of client messages a stream
// keeps for replay before it is committed; a stream whose messages exceed
// it commits to its current attempt. 0 means streams commit at their first
// message. Negative values are rejected. Default DefaultStreamReplayBuffer
// (256 KiB).
func WithStreamReplayBuffer(bytes int) Option {
	return optionFunc(func(c *config) error {
		if bytes < 0 {
			return invalid("WithStreamReplayBuffer", "must be >= 0, got %d", bytes)
		}
		c.replayBuffer = bytes
		return nil
	})
}

// WithRetryBudget gives every target a retry budget with c (see package
// budget): retries pass only while enough recent attempts to the target
// succeeded, so that under an outage calls fall back to one attempt each
// instead of MaxAttempts. A call refused a retry ends with an *Error whose
// Reason is ErrBudgetExhausted. Attempts that fail because no connection
// is ready never reached a server and are not counted. Default
// budget.DefaultConfig() (MaxTokens 100, TokenRatio 1).
func WithRetryBudget(c budget.Config) Option {
	return optionFunc(func(cfg *config) error {
		if err := c.Validate(); err != nil {
			return invalid("WithRetryBudget", "%v", err)
		}
		cfg.budget = &c
		return nil
	})
}

// WithoutRetryBudget turns the retry budget off: every retryable failure
// is retried up to MaxAttempts.
func WithoutRetryBudget() Option {
	return optionFunc(func(cfg *config) error {
		cfg.budget = nil
		return nil
	})
}

// WithReadyWait sets how long after a connection went down calls still
// wait for it. When an attempt fails because the connection is down (or a
// call starts while it is in TRANSIENT_FAILURE), the next attempt first
// waits for the connection to become ready, within the call deadline,
// instead of failing at once and burning the call's attempts in
// milliseconds; no backoff delay precedes it. d is counted from when a
// call first found the connection down, not per call: once it has been
// down for d, attempts no longer wait but fail fast (they then count
// against the breaker, which refuses calls at once), and a call that
// finds the connection down makes it reconnect unless another did within
// about a probe interval (WithReconnectProbe), so that its return is
// found as fast as by a wait. A restart shorter than d is ridden out; a
// downstream gone for good costs each caller at most one wait. A call
// that finds the connection down more than d after any call last did
// counts a new outage. d also bounds a call's wait for a half-open
// breaker's probe slot. 0 disables waiting, as in grpc-go. Negative
// values are rejected. Default DefaultReadyWait (5 s).
func WithReadyWait(d time.Duration) Option {
	return durationOption("WithReadyWait", d, func(c *config) *time.Duration { return &c.readyWait })
}

// WithReconnectProbe sets how often, on average, while calls wait for a
// connection, the connection is told to reconnect at once (grpc's
// ResetConnectBackoff), so that a restarted server is found within about
// d instead of behind grpc-go's reconnect backoff. Each wait is drawn
// uniformly from [0.5, 1.5) x d, so that the clients of a fleet that lost
// the same server do not reconnect in lockstep; a connection gets about
// 1/d connection attempts per second while calls wait (with the default
// connect backoff, whose base delay is above 1.5 x d). One goroutine per
// waited-for connection does it, only while calls wait. 0 disables it.
// Negative values are rejected. Default DefaultReconnectProbe (100 ms).
func WithReconnectProbe(d time.Duration) Option {
	return durationOption("WithReconnectProbe", d, func(c *config) *time.Duration { return &c.probeInterval })
}

// WithBreaker sets the configuration of the circuit breakers, one per
// target (see package breaker for the trip rule and what counts as a
// failure). While a target's breaker is open its attempts fail at once,
// without touching the network, with an error that has status Unavailable,
// names the target and matches breaker.ErrOpen; the call does not retry
// into an open breaker. c.OnStateChange, if set, is called on every
// transition, outside the breaker's lock. Invalid values are rejected by
// name. Default breaker.DefaultConfig().
func WithBreaker(c breaker.Config) Option {
	return optionFunc(func(cfg *config) error {
		if err := c.Validate(); err != nil {
			return invalid("WithBreaker", "%v", err)
		}
		cfg.breaker = &c
		return nil
	})
}

// WithoutBreaker turns the circuit breakers off.
func WithoutBreaker() Option {
	return optionFunc(func(cfg *config) error {
		cfg.breaker = nil
		return nil
	})
}

// WithBreakerPerMethod keys breakers by target and method instead of by
// target alone, so that one failing method does not stop calls to the
// others.
func WithBreakerPerMethod() Option {
	return optionFunc(func(cfg *config) error {
		cfg.breakerMethod = true
		return nil
	})
}

// durationOption is an option that sets a duration which must not be
// negative (0 usually turns the feature off).
func durationOption(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalid(name, "must be >= 0, got %v", d)
		}
		*field(c) = d
		return nil
	})
}

// withRandom injects, for tests, the one random source of a Middleware:
// it jitters the reconnect probe and the service config's backoff.
func withRandom(r func() float64) Option {
	return optionFunc(func(c *config) error {
		c.random = r
		return nil
	})
}
