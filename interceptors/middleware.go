package interceptors

import (
	"errors"
	"sync"

	"github.com/grpc-resilience/resilience/breaker"

	"google.golang.org/grpc"
)

// AttemptMetadataKey is the outgoing metadata key that carries the attempt
// number (2, 3, ...) to the server on retries. The first attempt does not
// carry it. The caller's metadata is never modified: the key is added to a
// copy.
const AttemptMetadataKey = "resilience-attempt"

// Middleware holds the configuration and the shared state (breakers,
// budgets) of a set of interceptors. The unary and stream interceptors of
// one Middleware share that state, so use one Middleware per client
// connection or per group of connections that should share it.
//
// A Middleware is safe for concurrent use and holds no goroutines.
type Middleware struct {
	cfg    config
	tel    telemetry
	probes probes

	breakers *breaker.Set // nil when breakers are off

	mu        sync.RWMutex
	targets   map[string]*targetState
	latencies map[string]*latencies // per method, for hedging
	// transitions holds, per breaker key, a channel closed at the key's
	// next state change; only calls waiting on a half-open breaker create
	// one.
	transitions map[string]chan struct{}
}

// New returns a Middleware configured by opts, or an error that wraps
// ErrInvalidOption and names every invalid option.
func New(opts ...Option) (*Middleware, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, invalid("Option", "nil option"))
			continue
		}
		if err := o.apply(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &Middleware{cfg: cfg, tel: newTelemetry(&cfg)}
	m.probes = probes{interval: cfg.probeInterval, clock: cfg.clock}
	if cfg.breaker != nil {
		bc := *cfg.breaker
		user := bc.OnStateChange
		bc.OnStateChange = func(key string, from, to breaker.State) {
			// Runs outside the breaker's lock (package breaker queues
			// transitions), so the gauge may be set from here.
			m.tel.breakerState(key, int(to))
			m.transitioned(key)
			if user != nil {
				user(key, from, to)
			}
		}
		set, err := breaker.NewSet(bc)
		if err != nil {
			return nil, invalid("WithBreaker", "%v", err)
		}
		m.breakers = set
	}
	return m, nil
}

// MustNew is like New but panics if an option is invalid. It suits
// package-level variables and tests whose options are constants.
func MustNew(opts ...Option) *Middleware {
	m, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return m
}

// UnaryClientInterceptor returns a unary interceptor configured by opts.
// It panics if an option is invalid; use New to get an error instead.
// Each call creates a separate Middleware: use New and DialOptions to share
// state between the unary and stream interceptors.
func UnaryClientInterceptor(opts ...Option) grpc.UnaryClientInterceptor {
	return MustNew(opts...).UnaryClientInterceptor()
}

// StreamClientInterceptor returns a stream interceptor configured by opts.
// It panics if an option is invalid; use New to get an error instead.
func StreamClientInterceptor(opts ...Option) grpc.StreamClientInterceptor {
	return MustNew(opts...).StreamClientInterceptor()
}

// DialOptions returns the dial options of a Middleware configured by opts.
// It panics if an option is invalid; use New and Middleware.DialOptions to
// get an error instead.
func DialOptions(opts ...Option) []grpc.DialOption {
	return MustNew(opts...).DialOptions()
}

// DialOptions returns everything a client needs in one go:
//   - the unary and stream interceptors of m (chained after any
//     interceptors added earlier with grpc.WithChainUnaryInterceptor),
//   - grpc.WithDisableRetry(), so grpc-go's own retries do not multiply
//     the attempts (3 of ours × 4 of theirs would be 12 hits),
//   - grpc.WithConnectParams with a short connect timeout and reconnect
//     backoff (see WithConnectParams).
//
// Transport credentials are the caller's to add.
func (m *Middleware) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(m.StreamClientInterceptor()),
		grpc.WithDisableRetry(),
		grpc.WithConnectParams(m.cfg.connectParams),
	}
}

// resolve computes the policy for one call into p and removes the interceptors'
// own call options from opts. It allocates only when opts holds some.
func (m *Middleware) resolve(p *policy, method string, opts []grpc.CallOption) []grpc.CallOption {
	*p = m.cfg.policy
	for i := range m.cfg.methodPolicies {
		mp := &m.cfg.methodPolicies[i]
		if mp.match(method) {
			for _, o := range mp.opts {
				o.apply(p)
			}
		}
	}
	ours := 0
	for _, o := range opts {
		if co, ok := o.(CallOption); ok {
			ours++
			if co.apply == nil {
				callInvalid(p, "CallOption", "zero value")
				continue
			}
			co.apply(p)
		}
	}
	if ours == 0 {
		return opts
	}
	rest := make([]grpc.CallOption, 0, len(opts)-ours)
	for _, o := range opts {
		if _, ok := o.(CallOption); !ok {
			rest = append(rest, o)
		}
	}
	return rest
}

// Breakers returns the circuit breakers of m, keyed by target (or by target
// and method, see WithBreakerPerMethod), to read a key's state; nil when
// breakers are off.
func (m *Middleware) Breakers() *breaker.Set { return m.breakers }

// transition returns a channel closed at the next state change of the
// breaker of key.
func (m *Middleware) transition(key string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.transitions[key]
	if ch == nil {
		if m.transitions == nil {
			m.transitions = make(map[string]chan struct{})
		}
		ch = make(chan struct{})
		m.transitions[key] = ch
	}
	return ch
}

// transitioned wakes the calls waiting for a state change of key.
func (m *Middleware) transitioned(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.transitions[key]; ch != nil {
		close(ch)
		delete(m.transitions, key)
	}
}
