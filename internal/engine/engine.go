package engine

import (
	"cmp"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/latency"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
	"google.golang.org/grpc/connectivity"
)

// AttemptMetadataKey is the outgoing metadata key that carries the attempt
// number (2, 3, ...) to the server on retries and hedges.
const AttemptMetadataKey = "resilience-attempt"

// PushbackMetadataKey is the trailer a server sends to tell clients when
// to retry (gRFC A6).
const PushbackMetadataKey = "grpc-retry-pushback-ms"

// Config is what an Engine is made of. The interceptors validate it.
type Config struct {
	ReadyWait     time.Duration // 0: attempts never wait for a connection
	ProbeInterval time.Duration // mean reconnect probe wait while calls wait; 0: none
	// Random returns numbers in [0, 1): the engine's one random source
	// (the probe's jitter, the throttle's draws); nil: math/rand/v2's
	// Float64. It must be safe for concurrent use.
	Random       func() float64
	ReplayBuffer int // bytes a stream keeps for replay before commit
	Budget       *budget.Config
	Breakers     *breaker.Set // nil: no breakers
	// Limiter configures each target's concurrency limiter; nil: none.
	Limiter *limiter.Config
	// LimiterPerMethod keys limiters by target and method.
	LimiterPerMethod bool
	// Throttle configures each target's client-side throttling; nil: none.
	Throttle         *throttle.Config
	BreakerPerMethod bool
	// CallRecords gives every call a record of the endpoints its attempts
	// went to (endpoint.NewCall), which the endpoint policy reads.
	CallRecords bool
	Telemetry   telemetry.Recorder
}

// Engine runs calls: it holds the state shared by every call of one
// Middleware (budgets per target, latency histograms per method, the
// connection watchers). It is safe for concurrent use and holds no
// goroutine of its own.
type Engine struct {
	cfg    Config
	epoch  time.Time // the origin of the targets' clock readings (target.now)
	conns  conns
	budget atomic.Pointer[budget.Config] // nil: budgets off
	layers atomic.Pointer[policies]      // the policy layers of new calls

	mu        sync.RWMutex
	targets   map[string]*target
	latencies map[string]*latency.Histogram
}

// New returns an Engine for cfg whose calls resolve their policy from l.
func New(cfg Config, l Layers) *Engine {
	e := &Engine{cfg: cfg, epoch: time.Now()}
	e.SetLayers(l)
	if e.cfg.Random == nil {
		e.cfg.Random = rand.Float64
	}
	e.conns = conns{interval: cfg.ProbeInterval, rand: e.cfg.Random}
	e.budget.Store(cfg.Budget)
	if cfg.Limiter != nil || cfg.Throttle != nil {
		telemetry.ObserveGates(e.cfg.Telemetry, e, (*Engine).gateStates)
	}
	return e
}

// Budget returns the retry budget configuration in force; nil: off.
func (e *Engine) Budget() *budget.Config { return e.budget.Load() }

// SetBudget changes the retry budget of every target to c (nil: off).
// Targets whose budget had another size get a new, full budget of the new
// size; calls in flight keep using the budget they started with.
func (e *Engine) SetBudget(c *budget.Config) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.budget.Load()
	if (old == nil && c == nil) || (old != nil && c != nil && *old == *c) {
		return
	}
	e.budget.Store(c)
	for _, t := range e.targets {
		t.budget.Store(newBudget(c))
	}
}

func newBudget(c *budget.Config) *budget.Budget {
	if c == nil {
		return nil
	}
	b, _ := budget.New(*c) // validated by the interceptors
	return b
}

// target is what an Engine keeps per target.
type target struct {
	name     string                        // as dialled: the connection's Target()
	budget   atomic.Pointer[budget.Budget] // nil when budgets are off
	limiter  *limiter.Limiter              // nil: no concurrency limit
	throttle *throttle.Throttle            // nil: no client-side throttling
	// The limiters per method, with Config.LimiterPerMethod.
	mu       sync.RWMutex
	limiters map[string]*limiter.Limiter
	// troubled counts down the successful attempts since the target last
	// failed: while it is above zero, first attempts ask for the trailer
	// to read server pushback from. A healthy target's calls skip it,
	// which saves grpc-go copying every trailer.
	troubled atomic.Int32
	// connErr is the error of the latest attempt that found no connection
	// (a dial refused, say), until an attempt succeeds: a ready wait that
	// a call's deadline ends before its first attempt reports it.
	connErr atomic.Pointer[error]
	// connDown is set when an attempt, or a breaker's refusal, found the
	// connection down, and cleared when a refusal finds it ready again:
	// the breaker then probes at once.
	connDown atomic.Bool
	// stale is set with connDown and cleared by the first attempt that
	// finds the connection ready again, which resets the target's
	// limiters and throttle (renew).
	stale atomic.Bool
	// downSince is when the connection was first found down (target.now),
	// 0 once an attempt reached the server or a call found it ready: calls
	// wait for it only until the ready wait after that (waitConn).
	downSince atomic.Int64
	// lastDown is when a call last found the connection down: a call that
	// finds it down more than a ready wait later cannot tell whether it
	// came back meanwhile, and counts a new outage from then.
	lastDown atomic.Int64
	// nextKick is the earliest target.now at which a call that does not
	// wait for the connection may make it reconnect again (kickPaced).
	nextKick  atomic.Int64
	epoch     time.Time     // the Engine's
	readyWait time.Duration // the Engine's ReadyWait
}

// now is the time on the target's clock: nanoseconds since the Engine
// started, plus 1 so that it is never 0 ("not set" in downSince).
func (t *target) now() int64 { return int64(time.Since(t.epoch)) + 1 }

// connLost records that an attempt, or a breaker's refusal, found the
// target's connection down.
func (t *target) connLost() {
	t.connDown.Store(true)
	t.stale.Store(true)
	now := t.now()
	last := t.lastDown.Swap(now)
	if t.downSince.Load() == 0 || now-last > int64(t.readyWait) {
		t.downSince.Store(now)
	}
}

// connUp records that an attempt reached the server, or a wait found the
// connection ready: the outage, if there was one, is over.
func (t *target) connUp() {
	if t.downSince.Load() != 0 {
		t.downSince.Store(0)
	}
}

// downFor returns how long the connection has been down as this client
// saw it; 0 if it is not known to be down.
func (t *target) downFor() time.Duration {
	since := t.downSince.Load()
	if since == 0 {
		return 0
	}
	return time.Duration(t.now() - since)
}

// renew, for an attempt about to be measured by the throttle and the
// concurrency limiter, resets them once the target's connection, found
// down, is ready again: what they learned of the server that went away
// (a limit cut while it drained, refusals while it was gone) says nothing
// of the one that restarted, and would refuse the calls released by the
// ready wait. A downstream that is still overloaded is measured again
// within a few round trips.
func (t *target) renew(c *call) {
	if !t.stale.Load() || c.cc.GetState() != connectivity.Ready || !t.stale.CompareAndSwap(true, false) {
		return
	}
	if t.throttle != nil {
		t.throttle.Reset()
	}
	if t.limiter != nil {
		t.limiter.Reset()
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, l := range t.limiters {
		l.Reset()
	}
}

// troubledCalls is how many successful attempts after a failure keep
// first attempts reading trailers.
const troubledCalls = 100

func (t *target) failed() { t.troubled.Store(troubledCalls) }

func (t *target) succeeded() {
	if v := t.troubled.Load(); v > 0 {
		t.troubled.CompareAndSwap(v, v-1)
	}
	if t.connErr.Load() != nil {
		t.connErr.Store(nil)
	}
}

func (e *Engine) target(name string) *target {
	return loadOrCreate(&e.mu, &e.targets, name, func() *target {
		t := &target{name: name, epoch: e.epoch, readyWait: e.cfg.ReadyWait}
		t.budget.Store(newBudget(e.budget.Load()))
		if e.cfg.Limiter != nil && !e.cfg.LimiterPerMethod {
			t.limiter = e.newLimiter(name, "")
		}
		if c := e.cfg.Throttle; c != nil {
			t.throttle, _ = throttle.New(*c) // validated by the interceptors
		}
		if e.cfg.Breakers != nil && !e.cfg.BreakerPerMethod {
			// Give the breaker state gauge its first point: closed.
			e.cfg.Telemetry.BreakerState(name, telemetry.BreakerClosed)
		}
		return t
	})
}

// limiterFor returns the concurrency limiter of the calls of method to t;
// nil: none.
func (e *Engine) limiterFor(t *target, method string) *limiter.Limiter {
	c := e.cfg.Limiter
	if c == nil || !e.cfg.LimiterPerMethod {
		return t.limiter
	}
	return loadOrCreate(&t.mu, &t.limiters, method, func() *limiter.Limiter {
		return e.newLimiter(t.name, method)
	})
}

// newLimiter returns a concurrency limiter for the calls to target (of
// method, for limiters keyed by method), whose changes worth knowing are
// logged.
func (e *Engine) newLimiter(target, method string) *limiter.Limiter {
	c := *e.cfg.Limiter
	least := cmp.Or(c.MinLimit, limiter.DefaultConfig().MinLimit)
	c.OnLimitChange = e.cfg.Telemetry.LimitLog(target, method, least)
	l, _ := limiter.New(c) // validated by the interceptors
	return l
}

// gateStates reports the state of every target's concurrency limiters
// and throttle to the gauges (telemetry.ObserveGates): it runs when they
// are collected, never on the call path, and holds the engine's locks
// only to list the targets and limiters.
func (e *Engine) gateStates(report func(telemetry.GateState)) {
	e.mu.RLock()
	targets := make([]*target, 0, len(e.targets))
	for _, t := range e.targets {
		targets = append(targets, t)
	}
	e.mu.RUnlock()
	for _, t := range targets {
		g := telemetry.GateState{Target: t.name}
		if t.limiter != nil {
			limiterState(&g, t.limiter)
		}
		if t.throttle != nil {
			g.Throttle, g.Probability = true, t.throttle.Probability()
		}
		if g.Limiter || g.Throttle {
			report(g)
		}
		t.mu.RLock()
		methods := make([]string, 0, len(t.limiters))
		limiters := make([]*limiter.Limiter, 0, len(t.limiters))
		for m, l := range t.limiters {
			methods, limiters = append(methods, m), append(limiters, l)
		}
		t.mu.RUnlock()
		for i, l := range limiters {
			g := telemetry.GateState{Target: t.name, Method: methods[i]}
			limiterState(&g, l)
			report(g)
		}
	}
}

func limiterState(g *telemetry.GateState, l *limiter.Limiter) {
	g.Limiter, g.Limit, g.InFlight, g.Queued = true, l.Limit(), l.InFlight(), l.Queued()
}

// random returns a number in [0, 1) from the engine's random source.
func (e *Engine) random() float64 { return e.cfg.Random() }

func (e *Engine) latency(method string) *latency.Histogram {
	return loadOrCreate(&e.mu, &e.latencies, method, func() *latency.Histogram { return &latency.Histogram{} })
}

// loadOrCreate returns (*mp)[key], creating it with create, under mu's
// write lock, on first use; lookups of existing keys take the read lock
// only.
func loadOrCreate[V any](mu *sync.RWMutex, mp *map[string]*V, key string, create func() *V) *V {
	mu.RLock()
	v := (*mp)[key]
	mu.RUnlock()
	if v != nil {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	if v = (*mp)[key]; v == nil {
		if *mp == nil {
			*mp = make(map[string]*V)
		}
		v = create()
		(*mp)[key] = v
	}
	return v
}
