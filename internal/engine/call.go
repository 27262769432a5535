package engine

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
)

// call is the state of one logical call, shared by the drivers. Unary
// calls use it from the caller's goroutine only; streams under their
// mutex; hedged calls under theirs (before steps excepted, see gate).
type call struct {
	e      *Engine
	p      Policy
	ctx    context.Context // the caller's, with the call deadline and what the gates added
	cc     *grpc.ClientConn
	method string
	unary  *unaryCall // nil for streams
	count  counts
	last   outcome // the latest attempt's outcome
	g      gates
}

// counts is what decide reads of the call's history.
type counts struct {
	// attempts counts the attempts made (refused ones are taken back).
	attempts int
	// pushedAt is the attempt after which a server's pushback delay was
	// last used: the backoff counts retries from there (as grpc-go does).
	pushedAt int
	// pushStopped is set once a server asked the call not to retry.
	pushStopped bool
}

// attempt is one try of a call.
type attempt struct {
	n      int
	ctx    context.Context
	cancel context.CancelFunc // nil when no timeout was set
	// lastErr is the call's latest error when the attempt was prepared,
	// for the error of a wait the attempt's gates cut short.
	lastErr error
	// waitReady: the ready gate waits for the connection first.
	waitReady bool
	// hedge: the attempt is a hedge, started while another runs.
	hedge bool
	// afterWait: the connection was down for a whole ready wait, so a
	// connection failure of this attempt counts against the breaker.
	afterWait bool
	// throttled: the throttle counted the attempt as a request.
	throttled    bool
	breakerState int8 // the breaker's state when it admitted the attempt
	// breakerDone reports the outcome to the breaker that admitted it.
	breakerDone func(error)
	// permit is the concurrency limiter's, if the attempt holds one.
	permit limiter.Permit
	tel    telemetry.Attempt
}

// init prepares c for a call: the policy, the call deadline, the gates'
// start steps. The returned cancel is never nil; on error (an invalid call
// option) the call has ended.
func (e *Engine) init(c *call, ctx context.Context, method string, cc *grpc.ClientConn, opts []grpc.CallOption) ([]grpc.CallOption, context.CancelFunc, error) {
	c.e, c.method, c.cc = e, method, cc
	opts = e.resolveCall(&c.p, method, opts, c.unary == nil)
	if c.p.Err != nil {
		err := errInvalidCall(c.p.Err)
		for _, f := range c.p.OnFinish {
			f(err)
		}
		return nil, nil, err
	}
	if c.p.Hedge != nil && c.unary == nil {
		// The method's policy hedges, and streams never are: say so.
		e.cfg.Telemetry.PolicyIgnored(method, c.targetName(), telemetry.IgnoredHedgingStream)
	}
	cancel := context.CancelFunc(noop)
	if c.p.CallTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			ctx, cancel = context.WithTimeout(ctx, c.p.CallTimeout)
		}
	}
	c.ctx = ctx
	c.startGates()
	return opts, cancel, nil
}

func noop() {}

// targetName is the call's target as dialled; "" without a connection.
func (c *call) targetName() string {
	if c.cc == nil {
		return ""
	}
	return c.cc.Target()
}

// newAttempt counts the call's next attempt and prepares it in a,
// deriving from parent; call it with the call to oneself. The attempts of
// a call live in its own state (or a hedge's), never on the stack: the
// gates see them through an interface.
func (c *call) newAttempt(a *attempt, parent context.Context) {
	c.count.attempts++
	*a = attempt{n: c.count.attempts, ctx: parent, lastErr: c.last.err, waitReady: c.g.ready.needed(c)}
	if a.n > 1 {
		// AppendToOutgoingContext never modifies the caller's metadata:
		// the addition lives in the returned context only.
		a.ctx = metadata.AppendToOutgoingContext(a.ctx, AttemptMetadataKey, strconv.Itoa(a.n))
	}
}

// startAttempt runs the gates' before steps for a (waiting as they say)
// and bounds it by the per-attempt timeout. It returns the outcome of a
// refused attempt, or nil. It may run concurrently with other attempts of
// a hedged call.
func (c *call) startAttempt(a *attempt) *outcome {
	if o := c.admit(a); o != nil {
		return o
	}
	// A stream bounds only the time to commit by the per-attempt
	// timeout; its driver arms that timer itself.
	if c.p.PerAttemptTimeout > 0 && c.unary != nil {
		a.ctx, a.cancel = context.WithTimeout(a.ctx, c.p.PerAttemptTimeout)
	}
	return nil
}

// nextAttempt starts, in a, the next attempt of a call that has none in
// flight. If no attempt starts (a gate refused it, or the caller's context
// or the connection ended a wait), it returns the decision that ends the
// call.
func (c *call) nextAttempt(a *attempt, hedged bool) *decision {
	c.newAttempt(a, c.ctx)
	if o := c.startAttempt(a); o != nil {
		c.count.attempts--
		d := c.decide(event{outcome: *o}, 0, hedged)
		return &d
	}
	return nil
}

// endAttempt classifies how a ended — with err and, if known, its trailer
// — hands the outcome to every gate and returns it for decide.
func (c *call) endAttempt(a *attempt, err error, trailer metadata.MD) outcome {
	c.last = c.classify(a, err, trailer)
	c.settle(a, &c.last)
	if a.cancel != nil {
		a.cancel()
	}
	return c.last
}

// decide runs the engine's decision for c and keeps what it says for the
// call: a pushback stop, where the backoff restarts, telemetry.
func (c *call) decide(ev event, inFlight int, hedged bool) decision {
	if !ev.hedgeTimer && ev.kind == oc.Success {
		// A success ends the call whatever the situation: skip reading
		// the clock and the budget on the happy path.
		return decision{op: opStop}
	}
	ctxErr := c.ctx.Err()
	s := situation{
		attempts:    c.count.attempts,
		retries:     c.count.attempts - c.count.pushedAt,
		inFlight:    inFlight,
		hedged:      hedged,
		callerDone:  ctxErr != nil,
		budgetOK:    c.g.target.allowsRetry(),
		pushStopped: c.count.pushStopped,
		last:        c.last,
	}
	if dl, ok := c.ctx.Deadline(); ok {
		s.hasDeadline, s.remaining = true, time.Until(dl)
	}
	if s.callerDone {
		s.callerErr = contextStatus(ctxErr)
	}
	d := decide(&c.p, s, ev)
	if d.reason == ErrPushback {
		c.count.pushStopped = true
	}
	if d.op == opAttempt && !ev.hedgeTimer && ev.hasPushback {
		c.count.pushedAt = c.count.attempts
	}
	c.g.telemetry.decided(c, &ev, &d)
	return d
}

// finish ends the call as d says (d.err nil: success) and returns what the
// caller gets: nil, or an *Error.
func (c *call) finish(d decision) error {
	err := c.g.fallback.end(c, &d)
	if c.p.AttemptsOut != nil {
		*c.p.AttemptsOut = c.count.attempts
	}
	if err != nil {
		err = newError(c.count.attempts, err, &d)
	}
	c.g.telemetry.end(err)
	for _, f := range c.p.OnFinish {
		f(err)
	}
	return err
}

// stop is the decision that ends a call with err, which no decide made
// (a committed stream's end): its kind is the error's own.
func stop(err error) decision {
	return decision{op: opStop, err: err, kind: oc.Of(err)}
}
