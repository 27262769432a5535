package engine

import (
	"context"

	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"google.golang.org/grpc/connectivity"
)

// breakerGate asks the circuit breaker of the call's key (its target, or
// target and method) for every attempt and reports the attempt's outcome
// to it. Only server failures that reached a server count against it: the
// caller giving up, a refusal by another gate and a connection found down
// before a whole ready wait passed are handed over as excluded.
type breakerGate struct {
	set *breaker.Set // nil: no breaker for this call
	key string
}

func (g *breakerGate) start(c *call) {
	set := c.e.cfg.Breakers
	if set == nil || c.p.NoBreaker || c.cc == nil {
		return
	}
	g.set, g.key = set, c.cc.Target()
	if c.e.cfg.BreakerPerMethod {
		g.key += c.method
	}
}

// before asks the breaker. When a half-open breaker has all its probes in
// flight, it waits (within the ready wait, the call deadline and the
// connection's life) for a probe to end instead of failing at once: after
// an outage, the calls that waited for the connection would otherwise all
// be refused in the moment the probes take to close the breaker.
func (g *breakerGate) before(c *call, a *attempt) error {
	if g.set == nil {
		return nil
	}
	done, err := g.set.Allow(g.key)
	if oe, ok := err.(*breaker.OpenError); ok && oe.State == breaker.StateOpen {
		back, end := g.reconnected(c, a)
		if end != nil {
			return waitError(end, "waiting for a ready connection", a.lastErr)
		}
		if back {
			// The connection that was down is back: probe now rather
			// than at the end of the open period.
			g.set.Ready(g.key)
			done, err = g.set.Allow(g.key)
		}
	}
	if err != nil && c.e.cfg.ReadyWait > 0 {
		if oe, ok := err.(*breaker.OpenError); ok && oe.State == breaker.StateHalfOpen {
			end := c.wait(a.ctx, c.e.cfg.ReadyWait, false, func(wctx context.Context) {
				done, err = g.set.AllowWait(wctx, g.key)
			})
			if end != nil {
				if done != nil {
					done(context.Canceled) // admitted as the wait ended: give the slot back
				}
				return waitError(end, "waiting for a breaker probe slot", a.lastErr)
			}
		}
	}
	if err != nil {
		return err
	}
	a.breakerDone = done
	if c.g.telemetry.call.Enabled() || c.g.throttle.thr != nil {
		// Only telemetry and the throttle (which lets probes through)
		// want the state: skip the lookup otherwise.
		a.breakerState = int8(g.set.State(g.key))
	}
	return nil
}

// reconnected reports, for an attempt an open breaker refused, whether the
// target's connection was down and is ready again. An attempt that finds
// it down waits for it, as the ready gate does (until it has been down for
// the ready wait, within the call's deadline, while the reconnect probe
// cuts grpc-go's backoff short): what opened the breaker may be a
// restart, and a call that can wait for it then succeeds instead of
// failing at once; once the connection has been down longer, the refusal
// is at once.
// Nothing reaches the downstream meanwhile. end is set when the caller's
// context or the connection ended the wait.
func (g *breakerGate) reconnected(c *call, a *attempt) (back bool, end error) {
	t := c.g.target.t
	if t == nil || c.e.cfg.ReadyWait <= 0 {
		return false, nil
	}
	if s := c.cc.GetState(); s != connectivity.Ready {
		if s == connectivity.Shutdown {
			return false, nil
		}
		ready, end := c.waitConn(a.ctx) // records the connection lost
		if !ready || end != nil {
			return false, end
		}
	}
	return t.connDown.CompareAndSwap(true, false), nil
}

func (g *breakerGate) after(_ *call, a *attempt, o *outcome) {
	done := a.breakerDone
	if done == nil {
		return
	}
	a.breakerDone = nil
	switch {
	case o.kind == oc.CallerGone || o.kind == oc.Refused:
		// Says nothing about the server.
		done(context.Canceled)
	case o.noConn && !a.afterWait:
		// The attempt found no connection: the next one waits for it.
		// It counts only once a whole ready wait has passed, so that a
		// restart is ridden out, not turned into an open breaker that
		// refuses calls once the server is back.
		done(context.Canceled)
	default:
		done(o.err)
	}
}
