package engine

import (
	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/throttle"
)

// throttleGate is client-side adaptive throttling (package throttle) of
// the unary attempts to the call's target: while the target accepts fewer
// than 1/K of the attempts, the client refuses the excess itself. A
// half-open breaker's probes are let through (finding the downstream back
// is the breaker's job), and a successful probe resets the throttle: the
// outage its counts describe is over. It starts over when the target's
// connection, found down, is back (renew).
type throttleGate struct {
	thr *throttle.Throttle // nil: no throttling for this call
}

func (g *throttleGate) start(c *call) {
	if c.unary != nil && c.g.target.t != nil {
		g.thr = c.g.target.t.throttle
	}
}

func (g *throttleGate) before(c *call, a *attempt) error {
	if c.unary != nil && c.g.target.t != nil {
		// The first of the gates that measure the downstream: both are
		// reset here when its connection is back.
		c.g.target.t.renew(c)
	}
	if g.thr == nil || a.breakerState == int8(breaker.StateHalfOpen) {
		return nil
	}
	a.throttled = true
	if !g.thr.Allow(c.e.random()) {
		return throttle.Refusal
	}
	return nil
}

func (g *throttleGate) after(_ *call, a *attempt, o *outcome) {
	switch {
	case g.thr == nil:
	case a.breakerState == int8(breaker.StateHalfOpen):
		if o.kind == oc.Success {
			g.thr.Reset()
		}
	case !a.throttled:
	case o.kind == oc.Success || o.kind == oc.RequestFault || (o.kind == oc.Refused && !o.gate):
		// The downstream answered: with its reply, an error about the
		// request, or a refusal or failure of its own downstream passed
		// on, which that hop's own gates deal with. Counting the latter
		// as not accepted would throttle every hop of a chain above the
		// trouble, each refusing its caller's requests and so keeping
		// the throttle above it high long after the trouble ends.
		g.thr.Done(true)
	case o.kind == oc.ServerFailure && !o.noConn:
		g.thr.Done(false)
	default:
		// The caller gone, a later refusal, no connection: not the
		// downstream's answer either way, and not counted.
	}
	a.throttled = false
}
