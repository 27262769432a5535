package engine

import (
	"errors"

	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

// telemetryGate records the call span, a span per attempt that every gate
// admitted, refusals, pushback and the call's end.
type telemetryGate struct {
	call telemetry.Call
	// budgetNoted: the call span already has its budget-exhausted event.
	budgetNoted bool
}

func (g *telemetryGate) start(c *call) {
	c.ctx, g.call = c.e.cfg.Telemetry.StartCall(c.ctx, c.method, c.targetName())
}

func (g *telemetryGate) before(_ *call, a *attempt) error {
	a.ctx, a.tel = g.call.StartAttempt(a.ctx, a.n)
	if a.breakerState != 0 {
		a.tel.BreakerState(int(a.breakerState))
	}
	return nil
}

func (g *telemetryGate) after(_ *call, a *attempt, o *outcome) {
	a.tel.End(o.err)
	if o.hasPushback {
		g.call.Pushback(o.pushback)
	}
}

// refused records a gate's refusal of an attempt on the call span.
func (g *telemetryGate) refused(_ *call, o *outcome) {
	switch {
	case o.kind != oc.Refused:
	case errors.Is(o.err, breaker.ErrOpen):
		g.call.BreakerRejected(o.err)
	case errors.Is(o.err, limiter.ErrLimited):
		g.call.Refused(telemetry.RefusalLimiter, o.err)
	case errors.Is(o.err, throttle.ErrThrottled):
		g.call.Refused(telemetry.RefusalThrottle, o.err)
	}
}

// decided records what a decision means for the call span: a scheduled
// retry, the budget's first refusal.
func (g *telemetryGate) decided(c *call, ev *event, d *decision) {
	if d.reason == ErrBudgetExhausted && !g.budgetNoted {
		g.budgetNoted = true
		g.call.BudgetExhausted()
	}
	if d.op == opAttempt && !ev.hedgeTimer {
		g.call.RetryScheduled(c.count.attempts+1, d.delay, ev.code)
	}
}

// end records the call's end; err is what the caller gets.
func (g *telemetryGate) end(err error) { g.call.End(err) }
