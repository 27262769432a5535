package interceptors

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/internal/engine"
	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// AttemptMetadataKey is the outgoing metadata key that carries the attempt
// number (2, 3, ...) to the server on retries and hedges. The first attempt
// does not carry it. The caller's metadata is never modified: the key is
// added to a copy.
const AttemptMetadataKey = engine.AttemptMetadataKey

// PushbackMetadataKey is the trailer a server sends to tell clients when
// to retry (gRFC A6): a non-negative number of milliseconds replaces the
// next backoff delay (or delays the next hedge); a negative or malformed
// value stops retrying and hedging.
//
// Reading a trailer makes grpc-go copy it, on every call. So unary calls
// read it on retries and hedges, and on first attempts only while the
// target is troubled (it failed within its last 100 successful attempts);
// the first failure of a healthy target is retried by the backoff policy.
// Streams always read it.
const PushbackMetadataKey = engine.PushbackMetadataKey

// ErrPushback is the Reason of an *Error when the server's pushback
// trailer asked the client not to retry.
var ErrPushback = engine.ErrPushback

// ErrBudgetExhausted is the Reason of an *Error when the retry budget of
// the target refused a retry or hedge. It wraps budget.ErrExhausted.
var ErrBudgetExhausted = engine.ErrBudgetExhausted

// DefaultStreamReplayBuffer is the default cap, in bytes, on the client
// messages a stream keeps for replay before it is committed (as grpc-go's
// own retry: 256 KiB per stream).
const DefaultStreamReplayBuffer = 256 << 10

// Middleware holds the configuration and the shared state (breakers,
// budgets) of a set of interceptors. The unary and stream interceptors of
// one Middleware share that state, so use one Middleware per client
// connection or per group of connections that should share it.
//
// A Middleware is safe for concurrent use and holds no goroutines.
type Middleware struct {
	cfg      config
	tel      telemetry.Recorder
	eng      *engine.Engine
	breakers *breaker.Set    // nil when breakers are off
	lb       grpc.DialOption // the endpoint policy; nil when off
	ejection ejectionCheck   // finds connections whose own service config replaced the policy
	mu       sync.Mutex      // serializes SetServiceConfig
}

// New returns a Middleware configured by opts, or an error that wraps
// ErrInvalidConfig and names every invalid option.
func New(opts ...Option) (*Middleware, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if o == nil {
			errs = append(errs, invalid("Option", "nil option"))
			continue
		}
		if err := o.applyOption(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkResolved(&cfg, cfg.serviceConfig); err != nil {
		return nil, err
	}
	m := &Middleware{cfg: cfg, tel: telemetry.New(cfg.telemetry)}
	if cfg.breaker != nil {
		bc := *cfg.breaker
		user := bc.OnStateChange
		bc.OnStateChange = func(key string, from, to breaker.State) {
			// Runs outside the breaker's lock (package breaker queues
			// transitions), so the gauge may be set and the log written
			// from here.
			m.tel.BreakerTransition(key, int(from), int(to))
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
	if cfg.endpoint != nil {
		lb, err := m.endpointDialOption(*cfg.endpoint)
		if err != nil {
			return nil, invalid("WithEndpointEjection", "%v", err)
		}
		m.lb = lb
	}
	m.eng = engine.New(engine.Config{
		ReadyWait:        cfg.readyWait,
		ProbeInterval:    cfg.probeInterval,
		Random:           cfg.random,
		Limiter:          cfg.limiter,
		LimiterPerMethod: cfg.limiterMethod,
		Throttle:         cfg.throttle,
		ReplayBuffer:     cfg.replayBuffer,
		Budget:           effectiveBudget(&cfg, cfg.serviceConfig),
		Breakers:         m.breakers,
		BreakerPerMethod: cfg.breakerMethod,
		CallRecords:      cfg.endpoint != nil,
		Telemetry:        m.tel,
	}, layers(&m.cfg, cfg.serviceConfig))
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

// DialOptions returns everything a client needs in one go:
//   - the unary and stream interceptors of m (chained after any
//     interceptors added earlier with grpc.WithChainUnaryInterceptor),
//   - grpc.WithDisableRetry(), so grpc-go's own retries do not multiply
//     the attempts (3 of ours × 4 of theirs would be 12 hits),
//   - grpc.WithConnectParams with a short connect timeout and reconnect
//     backoff (see WithConnectParams),
//   - with WithEndpointEjection, the endpoint policy as the default service
//     config (see there for how a service config of one's own combines).
//
// Transport credentials are the caller's to add.
func (m *Middleware) DialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(m.StreamClientInterceptor()),
		grpc.WithDisableRetry(),
		grpc.WithConnectParams(m.cfg.connectParams),
	}
	if m.lb != nil {
		opts = append(opts, m.lb)
	}
	return opts
}

// UnaryClientInterceptor returns m's unary interceptor. It runs the attempt
// loop described in the package documentation.
func (m *Middleware) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return m.unary
}

// StreamClientInterceptor returns m's stream interceptor.
//
// A stream is retried only before it is committed: until the first response
// header or message arrives, the caller reads the headers, or the messages
// sent exceed the replay buffer (WithStreamReplayBuffer). Until then the
// messages the caller sent are kept and replayed, in order, on the next
// attempt. After commit, errors reach the caller unchanged: the application
// never sees a duplicated or lost message. Attempts are counted per stream,
// never per message. The per-attempt timeout bounds the time to commit, not
// the life of a committed stream.
func (m *Middleware) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return m.stream
}

func (m *Middleware) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m.lb != nil {
		invoker = m.ejection.unary(m, cc, method, invoker)
	}
	return m.eng.Unary(ctx, method, req, reply, cc, invoker, opts)
}

func (m *Middleware) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if m.lb != nil {
		streamer = m.ejection.stream(m, cc, method, streamer)
	}
	return m.eng.Stream(ctx, desc, cc, method, streamer, opts)
}

// Breakers returns the circuit breakers of m, keyed by target (or by target
// and method, see WithBreakerPerMethod), to read a key's state; nil when
// breakers are off.
func (m *Middleware) Breakers() *breaker.Set { return m.breakers }
