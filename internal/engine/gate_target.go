package engine

import (
	"github.com/grpc-resilience/resilience/budget"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// targetGate keeps what the engine learns of a target from the attempts
// that reached it: the retry budget (gRFC A6: every retry must be paid for
// by successes) and whether the target failed lately (first attempts then
// read the pushback trailer). Its before step admits everything: the
// budget is consulted when a retry is decided (allowsRetry), so that a
// retry it refuses is never waited for.
type targetGate struct {
	t      *target
	budget *budget.Budget // the target's, when the call started; nil: none
}

func (g *targetGate) start(c *call) {
	if c.cc == nil {
		return
	}
	g.t = c.e.target(c.cc.Target())
	g.budget = g.t.budget.Load()
}

func (g *targetGate) before(*call, *attempt) error { return nil }

// after counts attempts that reached the target. The caller giving up and
// refusals say nothing about it; neither does an attempt that found no
// connection, as far as the budget (which guards servers against retry
// load) is concerned.
func (g *targetGate) after(c *call, _ *attempt, o *outcome) {
	if g.t == nil || o.kind == oc.Refused || o.kind == oc.CallerGone {
		return
	}
	if !o.noConn {
		g.t.connUp()
	}
	if o.err == nil {
		g.t.succeeded()
		if g.budget != nil {
			g.budget.Success()
		}
		return
	}
	g.t.failed()
	if o.noConn {
		err := o.err // a copy: o is the call's, rewritten by its next attempt
		g.t.connErr.Store(&err)
		g.t.connLost()
	}
	if !o.noConn && g.budget != nil && (o.hasPushback || c.p.RetryCodes.Has(o.code)) {
		g.budget.Failure()
	}
}

// allowsRetry reports whether the budget lets another attempt go.
func (g *targetGate) allowsRetry() bool { return g.budget == nil || g.budget.AllowRetry() }

// wantsTrailer reports whether attempt n should read the trailer for
// server pushback: retries always do, first attempts while the target is
// troubled.
func (g *targetGate) wantsTrailer(n int) bool {
	return n > 1 || g.t == nil || g.t.troubled.Load() > 0
}
