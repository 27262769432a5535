package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/grpc-resilience/resilience/fallback"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// fallbackGate lets a unary call whose policy has a fallback (package
// fallback) answer from it: successful replies are saved; a call that ends
// with a failure the downstream is to blame for is answered by the
// fallback; and a call still waiting Margin before its deadline is cut
// short and answered, so that the caller gets its answer in time. Its
// state exists only for calls whose policy has one.
type fallbackGate struct{ s *fallbackState }

// fallbackState is what a call with a fallback keeps.
type fallbackState struct {
	h         *fallback.Handler
	callerCtx context.Context // the call's context before the margin
	margin    *time.Timer     // nil: no deadline, or too short for a margin
	cancel    context.CancelFunc
	hit       atomic.Bool // the margin timer fired
}

// start arms the margin: when the call has a deadline, a timer fires
// Margin before it (by default 10 % of the time left) and cancels the
// call.
func (g *fallbackGate) start(c *call) {
	if c.p.Fallback == nil || c.unary == nil {
		return
	}
	s := &fallbackState{h: c.p.Fallback, callerCtx: c.ctx}
	g.s = s
	dl, ok := c.ctx.Deadline()
	if !ok {
		return
	}
	left := time.Until(dl)
	margin := s.h.Margin
	if margin == 0 {
		margin = left / 10
	}
	if left-margin <= 0 {
		return // no time for a margin: the call runs to its deadline
	}
	c.ctx, s.cancel = context.WithCancel(c.ctx)
	s.margin = time.AfterFunc(left-margin, func() {
		s.hit.Store(true)
		s.cancel()
	})
}

func (g *fallbackGate) before(*call, *attempt) error    { return nil }
func (g *fallbackGate) after(*call, *attempt, *outcome) {}

// end runs when the call ends as d says: a success is saved; a call the
// margin cut short, or one that ended with a server failure or a local
// refusal, is answered by the fallback if it can. The caller's own cancel
// and deadline, and errors that describe the request, are not. It returns
// the error the call ends with.
func (g *fallbackGate) end(c *call, d *decision) error {
	s := g.s
	if s == nil {
		return d.err
	}
	if s.margin != nil {
		s.margin.Stop()
		s.cancel()
	}
	out := c.p.FallbackOut
	if out != nil {
		*out = fallback.Info{}
	}
	u := c.unary
	if d.err == nil {
		if s.h.Save != nil {
			s.h.Save(c.method, u.req, u.reply)
		}
		return nil
	}
	err := d.err
	switch {
	case s.hit.Load():
		err = fallbackMarginError(s.h.Margin, err, c.last.err != nil)
	case s.callerCtx.Err() != nil:
		return err
	case d.kind != oc.ServerFailure && d.kind != oc.Refused:
		return err
	}
	info, ferr := s.h.Answer(s.callerCtx, c.method, u.req, u.reply, err)
	if ferr != nil {
		c.g.telemetry.call.Fallback(false, false, 0)
		return ferr
	}
	info.Used = true
	if out != nil {
		*out = info
	}
	c.g.telemetry.call.Fallback(true, info.Stale, info.Age)
	return nil
}
