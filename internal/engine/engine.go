package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/endpoint"
	"github.com/grpc-resilience/resilience/fallback"
	"github.com/grpc-resilience/resilience/internal/latency"
	"github.com/grpc-resilience/resilience/internal/telemetry"
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
	// ProbeRand returns numbers in [0, 1) that jitter the probe's waits;
	// nil: math/rand/v2's Float64.
	ProbeRand        func() float64
	ReplayBuffer     int // bytes a stream keeps for replay before commit
	Budget           *budget.Config
	Breakers         *breaker.Set // nil: no breakers
	BreakerPerMethod bool
	// CallRecords gives every call a record of the endpoints its attempts
	// went to (endpoint.NewCall), which the endpoint policy reads.
	CallRecords bool
	Telemetry   telemetry.Recorder
	// NewError builds the error a failed call returns from the attempts
	// made, the error that ended it and why it stopped early (nil if it
	// did not).
	NewError func(attempts int, err, reason error) error
}

// Engine runs calls: it holds the state shared by every call of one
// Middleware (budgets per target, latency histograms per method, the
// connection watchers). It is safe for concurrent use and holds no
// goroutine of its own.
type Engine struct {
	cfg    Config
	conns  conns
	budget atomic.Pointer[budget.Config] // nil: budgets off

	mu        sync.RWMutex
	targets   map[string]*target
	latencies map[string]*latency.Histogram
}

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg}
	if cfg.ProbeRand == nil {
		cfg.ProbeRand = rand.Float64
	}
	e.conns = conns{interval: cfg.ProbeInterval, rand: cfg.ProbeRand}
	e.budget.Store(cfg.Budget)
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
	budget atomic.Pointer[budget.Budget] // nil when budgets are off
	// troubled counts down the successful attempts since the target last
	// failed: while it is above zero, first attempts ask for the trailer
	// to read server pushback from. A healthy target's calls skip it,
	// which saves grpc-go copying every trailer.
	troubled atomic.Int32
}

// troubledCalls is how many successful attempts after a failure keep
// first attempts reading trailers.
const troubledCalls = 100

func (t *target) failed() { t.troubled.Store(troubledCalls) }

func (t *target) succeeded() {
	if v := t.troubled.Load(); v > 0 {
		t.troubled.CompareAndSwap(v, v-1)
	}
}

// wantsTrailer reports whether attempt n should read the trailer for
// server pushback: retries always do, first attempts while the target is
// troubled.
func (t *target) wantsTrailer(n int) bool {
	return n > 1 || t == nil || t.troubled.Load() > 0
}

func (e *Engine) target(name string) *target {
	return loadOrCreate(&e.mu, &e.targets, name, func() *target {
		t := &target{}
		t.budget.Store(newBudget(e.budget.Load()))
		if e.cfg.Breakers != nil && !e.cfg.BreakerPerMethod {
			// Give the breaker state gauge its first point: closed.
			e.cfg.Telemetry.BreakerState(name, telemetry.BreakerClosed)
		}
		return t
	})
}

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

// call is the state of one logical call, shared by the drivers. Unary
// calls use it from the caller's goroutine only; streams under their
// mutex; hedged calls under theirs.
type call struct {
	e        *Engine
	p        Policy
	onFinish []func(error)
	ctx      context.Context // the caller's context, with the call deadline
	cc       *grpc.ClientConn
	method   string
	target   string
	t        *target
	budget   *budget.Budget // the target's, when the call started; nil: none
	// attempts counts the attempts made (refused ones are taken back).
	attempts int
	// notReady is set when the latest attempt found no ready connection:
	// the next one waits for it.
	notReady bool
	// pushStopped is set once a server asked the call not to retry.
	pushStopped bool
	// pushedAt is the attempt after which a server's pushback delay was
	// last used: the backoff counts retries from there (as grpc-go does).
	pushedAt int
	// reason explains why attempts stopped early, if they did.
	reason error
	// lastErr is the latest attempt's error.
	lastErr error
	tel     telemetry.Call
	fb      *fallbackState // unary calls with a fallback only
	unary   *unaryCall     // set for unary calls; nil for streams
	// ejSeen marks the attempts (by pick order, the first 64) whose
	// ejection of their endpoint was recorded (CallRecords only).
	ejSeen uint64
}

// fallbackState is what a call with a fallback keeps.
type fallbackState struct {
	h         *fallback.Handler
	callerCtx context.Context // the call's context before the margin
	margin    *time.Timer     // nil: no deadline, or too short for a margin
	cancel    context.CancelFunc
	hit       atomic.Bool // the margin timer fired
}

// attempt is one try of a call.
type attempt struct {
	n      int
	ctx    context.Context
	cancel context.CancelFunc // nil when no timeout was set
	done   func(error)        // reports the outcome to the breaker, if any
	// afterWait is set when the connection was still down after a whole
	// ready wait: a connection failure of this attempt then counts against
	// the breaker (before that, it is a restart being ridden out).
	afterWait bool
	tel       telemetry.Attempt
}

// errInvalidCall is the status of a call with an invalid call option.
func errInvalidCall(err error) error {
	return status.Error(codes.InvalidArgument, "interceptors: invalid call option: "+err.Error())
}

// init prepares c for a call: the policy, resolved in place by r, the call
// deadline and the call span. The returned cancel is never nil; on error
// (an invalid call option) the call has ended.
func (e *Engine) init(c *call, r Resolver, ctx context.Context, method string, cc *grpc.ClientConn, opts []grpc.CallOption) ([]grpc.CallOption, context.CancelFunc, error) {
	c.e, c.method, c.cc = e, method, cc
	opts, c.onFinish = r.Resolve(&c.p, method, opts)
	if c.p.Err != nil {
		err := errInvalidCall(c.p.Err)
		for _, f := range c.onFinish {
			f(err)
		}
		return nil, nil, err
	}
	if cc != nil {
		c.target = cc.Target()
		c.t = e.target(c.target)
		c.budget = c.t.budget.Load()
	}
	cancel := context.CancelFunc(noop)
	if c.p.CallTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			ctx, cancel = context.WithTimeout(ctx, c.p.CallTimeout)
		}
	}
	if c.p.Fallback != nil && c.unary != nil {
		// Only calls whose policy has a fallback pay for its state.
		c.fb = &fallbackState{}
		ctx = c.armFallback(ctx)
	}
	if e.cfg.CallRecords {
		// After the call deadline, so that the policy sees when the
		// call, not only an attempt, has run out of time.
		ctx = endpoint.NewCall(ctx)
	}
	c.ctx, c.tel = e.cfg.Telemetry.StartCall(ctx, method, c.target)
	return opts, cancel, nil
}

func noop() {}

// waitsReady reports whether the next attempt should first wait for the
// connection: it is known to be down, or the previous attempt failed with
// Unavailable and the connection is not (or not yet again) ready.
func (c *call) waitsReady() bool {
	if c.e.cfg.ReadyWait <= 0 || c.cc == nil {
		return false
	}
	if c.notReady {
		return true
	}
	s := c.cc.GetState()
	if s == connectivity.TransientFailure || s == connectivity.Shutdown {
		return true
	}
	return s != connectivity.Ready && c.lastErr != nil && status.Code(c.lastErr) == codes.Unavailable
}

// startAttempt prepares attempt n: its context (attempt metadata,
// per-attempt timeout, ready wait, breaker) and telemetry. ctx is the
// context attempts derive from; waitReady says whether it first waits for
// the connection. It returns refused for a breaker's refusal, and another
// error when the call must end without another attempt (the caller's
// context or the connection ended during a wait).
func (c *call) startAttempt(ctx context.Context, n int, waitReady bool, lastErr error) (a attempt, refused bool, err error) {
	a = attempt{n: n, ctx: ctx}
	if n > 1 {
		// AppendToOutgoingContext never modifies the caller's metadata:
		// the addition lives in the returned context only.
		a.ctx = metadata.AppendToOutgoingContext(a.ctx, AttemptMetadataKey, strconv.Itoa(n))
	}
	if waitReady {
		waitedOut, err := c.waitReady(ctx, lastErr)
		if err != nil {
			return a, false, err
		}
		a.afterWait = waitedOut
	}
	state := telemetry.BreakerClosed
	if set := c.e.cfg.Breakers; set != nil && !c.p.NoBreaker && c.cc != nil {
		key := c.target
		if c.e.cfg.BreakerPerMethod {
			key = c.target + c.method
		}
		done, err, end := c.allow(ctx, set, key)
		if end != nil {
			return a, false, waitError(end, "waiting for a breaker probe slot", lastErr)
		}
		if err != nil {
			c.tel.BreakerRejected(err)
			return a, true, err
		}
		a.done = done
		if c.tel.Enabled() {
			// Only telemetry wants the state: skip the lookup otherwise.
			if st := set.State(key); st != breaker.StateClosed {
				state = int(st)
			}
		}
	}
	// A stream bounds only the time to commit by the per-attempt
	// timeout; its driver arms that timer itself.
	if c.p.PerAttemptTimeout > 0 && c.unary != nil {
		a.ctx, a.cancel = context.WithTimeout(a.ctx, c.p.PerAttemptTimeout)
	}
	a.ctx, a.tel = c.tel.StartAttempt(a.ctx, a.n)
	if state != telemetry.BreakerClosed {
		a.tel.BreakerState(state)
	}
	return a, false, nil
}

// nextAttempt starts the next attempt of a call that has none in flight.
// An error ends the call: the caller's context or the connection ended a
// wait, or a breaker refused the attempt (decided as such: the error keeps
// the last attempt's, with the refusal as the reason).
func (c *call) nextAttempt(hedged bool) (attempt, error) {
	c.attempts++
	a, refused, err := c.startAttempt(c.ctx, c.attempts, c.waitsReady(), c.lastErr)
	if err != nil {
		c.attempts--
		if refused {
			err = c.decide(outcome{err: err, refused: true}, 0, hedged).err
		}
	}
	return a, err
}

// allow asks the breaker of key for an attempt. When a half-open breaker
// has all its probes in flight, it waits (within the ready wait, the call
// deadline and the connection's life) for a probe to end instead of
// failing at once: after an outage, the calls that waited for the
// connection would otherwise all be refused in the moment the probes take
// to close the breaker. end is set when the caller's context or the
// connection ended the wait.
func (c *call) allow(ctx context.Context, set *breaker.Set, key string) (done func(error), err, end error) {
	done, err = set.Allow(key)
	if err == nil || c.e.cfg.ReadyWait <= 0 {
		return done, err, nil
	}
	if oe, ok := err.(*breaker.OpenError); !ok || oe.State != breaker.StateHalfOpen {
		return done, err, nil
	}
	end = c.wait(ctx, c.e.cfg.ReadyWait, false, func(wctx context.Context) {
		done, err = set.AllowWait(wctx, key)
	})
	if end != nil && done != nil {
		done(context.Canceled) // admitted as the wait ended: give the slot back
		done = nil
	}
	return done, err, end
}

// waitReady waits, for at most the ready wait, until the connection is
// ready, while the reconnect probe shortens grpc-go's reconnect backoff. It
// returns an error only when the wait ended with the caller's context or
// the connection; a connection still down after the wait is left to the
// attempt, which then fails fast.
func (c *call) waitReady(ctx context.Context, lastErr error) (waitedOut bool, err error) {
	ready := false
	end := c.wait(ctx, c.e.cfg.ReadyWait, true, func(wctx context.Context) {
		for s := c.cc.GetState(); ; s = c.cc.GetState() {
			switch s {
			case connectivity.Ready:
				ready = true
				return
			case connectivity.Shutdown:
				return
			case connectivity.Idle:
				c.cc.Connect()
			}
			if !c.cc.WaitForStateChange(wctx, s) {
				return
			}
		}
	})
	if ready {
		return false, nil
	}
	if end != nil {
		return false, waitError(end, "waiting for a ready connection", lastErr)
	}
	return true, nil
}

// sleep waits d before the next attempt. It returns the error the call ends
// with if the caller's context or the connection ended first.
func (c *call) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if end := c.wait(ctx, d, false, func(wctx context.Context) { <-wctx.Done() }); end != nil {
		return waitError(end, "waiting to retry", c.lastErr)
	}
	return nil
}

// errConnClosing is what a wait ends with when the connection shuts down:
// grpc-go's own status for calls on a closing connection.
var errConnClosing = status.Error(codes.Canceled, "grpc: the client connection is closing")

// wait runs f with a context that ends after d when
// ctx ends, or when the connection shuts down. ready marks waits for the
// connection to be ready (they turn the reconnect probe on). It returns nil
// if the wait ran its course (d elapsed, or f returned by itself), else the
// error that ended it: ctx's, or errConnClosing.
func (c *call) wait(ctx context.Context, d time.Duration, ready bool, f func(wctx context.Context)) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := time.AfterFunc(d, cancel)
	defer t.Stop()
	var w *waiter
	if c.cc != nil {
		w = c.e.conns.register(c.cc, cancel, ready)
	}
	f(wctx)
	closed := w != nil && c.e.conns.release(c.cc, w, ready)
	switch {
	case closed || (c.cc != nil && c.cc.GetState() == connectivity.Shutdown):
		return errConnClosing
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return nil
}

// waitError is the error a call ends with when a wait was cut short by
// end; it keeps the code of what ended it and the latest attempt's error.
func waitError(end error, what string, lastErr error) error {
	code := status.Code(end)
	if end == context.Canceled || end == context.DeadlineExceeded {
		code = status.FromContextError(end).Code()
	}
	if lastErr == nil {
		return status.Errorf(code, "interceptors: call ended while %s: %v", what, end)
	}
	return status.Errorf(code, "interceptors: call ended while %s: %v; last attempt: %v", what, end, lastErr)
}

// notReady reports whether a connection in state s has lost its
// transport: it failed to connect, or it went idle after a connection loss.
// CONNECTING is not counted: grpc-go can still publish it for a moment
// after the first RPC on a new connection has completed.
func notReady(s connectivity.State) bool {
	return s == connectivity.TransientFailure || s == connectivity.Idle
}

// endAttempt records the outcome of a — breaker, budget, target health,
// telemetry — and returns it as decide sees it. trailer is the attempt's
// trailer metadata, if known.
func (c *call) endAttempt(a *attempt, err error, trailer metadata.MD) outcome {
	if err != nil && c.e.cfg.CallRecords {
		c.recordEjections(&a.tel)
	}
	a.tel.End(err)
	if a.cancel != nil {
		a.cancel()
	}
	o := outcome{err: err, code: status.Code(err)}
	// noConn: the connection is down, so the attempt never reached a
	// server. The next attempt waits for the connection.
	o.noConn = o.code == codes.Unavailable && c.cc != nil && c.e.cfg.ReadyWait > 0 && notReady(c.cc.GetState())
	if a.done != nil {
		switch {
		case err != nil && c.callerDeadline(err):
			// The caller gave up: that says nothing about the server.
			a.done(context.DeadlineExceeded)
		case err != nil && c.ctx.Err() != nil:
			a.done(c.ctx.Err())
		case o.noConn && !a.afterWait:
			// The attempt found no connection: the next one waits for
			// it. Count it only once a whole ready wait has passed, so
			// that a restart is ridden out, not turned into an open
			// breaker that refuses calls once the server is back.
			a.done(context.Canceled)
		default:
			a.done(err)
		}
		a.done = nil
	}
	c.notReady = o.noConn
	c.lastErr = err
	if err == nil {
		if c.t != nil {
			c.t.succeeded()
			if c.budget != nil {
				c.budget.Success()
			}
		}
		return o
	}
	if c.t != nil {
		c.t.failed()
	}
	if vals := trailer.Get(PushbackMetadataKey); len(vals) > 0 {
		o.hasPushback = true
		ms, perr := strconv.Atoi(vals[0])
		if perr != nil || ms < 0 || len(vals) > 1 {
			o.pushback = -1
		} else {
			o.pushback = time.Duration(ms) * time.Millisecond
		}
		c.tel.Pushback(o.pushback)
	}
	// The budget guards servers against retry load: an attempt that
	// reached none is not counted.
	if !o.noConn && c.budget != nil && (o.hasPushback || c.p.RetryCodes.Has(o.code)) {
		c.budget.Failure()
	}
	return o
}

// recordEjections records on at every ejection in the call record that is
// not recorded yet: the policy marks an attempt's pick as it ends, before
// the RPC returns, so the ending attempt finds its own (a hedge ending at
// the same moment may find another's).
func (c *call) recordEjections(at *telemetry.Attempt) {
	if !c.tel.Enabled() {
		return
	}
	for i, p := range endpoint.Attempts(c.ctx) {
		if i < 64 && p.Ejected && c.ejSeen&(1<<i) == 0 {
			c.ejSeen |= 1 << i
			at.EndpointEjected(p.Addr)
		}
	}
}

// situation describes c for decide; inFlight counts the other attempts
// still running (hedged calls).
func (c *call) situation(err error, inFlight int, hedged bool) situation {
	s := situation{
		attempts:    c.attempts,
		retries:     c.attempts - c.pushedAt,
		inFlight:    inFlight,
		hedged:      hedged,
		callerDone:  c.ctx.Err() != nil || (err != nil && c.callerDeadline(err)),
		budgetOK:    c.budget == nil || c.budget.AllowRetry(),
		pushStopped: c.pushStopped,
		lastErr:     c.lastErr,
	}
	if dl, ok := c.ctx.Deadline(); ok {
		s.hasDeadline, s.remaining = true, dl.Sub(time.Now())
	}
	if err := c.ctx.Err(); err != nil {
		s.callerErr = status.FromContextError(err).Err()
	}
	return s
}

// decide runs the engine's decision for c and keeps what it says for the
// call: the reason attempts stopped, a pushback stop, telemetry.
func (c *call) decide(o outcome, inFlight int, hedged bool) decision {
	if o.err == nil && !o.refused && !o.hedgeTimer {
		// A success ends the call whatever the situation: skip reading
		// the clock and the budget on the happy path.
		return decision{op: opStop}
	}
	d := decide(&c.p, c.situation(o.err, inFlight, hedged), o)
	if d.reason != nil {
		if d.reason == ErrBudgetExhausted && c.reason != ErrBudgetExhausted {
			c.tel.BudgetExhausted()
		}
		if d.reason == ErrPushback {
			c.pushStopped = true
		}
		c.reason = d.reason
	}
	if d.op == opAttempt && !o.hedgeTimer {
		if o.hasPushback {
			c.pushedAt = c.attempts
		}
		c.tel.RetryScheduled(c.attempts+1, d.delay, o.code)
	}
	return d
}

// deadlineSlack is how close to the call deadline a DeadlineExceeded must
// come to be the caller's own: the server, which learns the deadline from
// the grpc-timeout header, can time out a moment before the client does.
const deadlineSlack = 5 * time.Millisecond

// callerDeadline reports whether err is the caller's deadline running out
// (as seen by the client, or by the server just before the client).
func (c *call) callerDeadline(err error) bool {
	if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	if status.Code(err) != codes.DeadlineExceeded {
		return false
	}
	dl, ok := c.ctx.Deadline()
	return ok && dl.Sub(time.Now()) < deadlineSlack
}

// finish ends the call with err (nil: success) and returns what the caller
// gets: nil, or the error built by Config.NewError.
func (c *call) finish(err error) error {
	if c.fb != nil {
		err = c.fallback(err)
	}
	if c.p.AttemptsOut != nil {
		*c.p.AttemptsOut = c.attempts
	}
	if err != nil {
		err = c.e.cfg.NewError(c.attempts, err, c.reason)
	}
	c.tel.End(err)
	for _, f := range c.onFinish {
		f(err)
	}
	return err
}
