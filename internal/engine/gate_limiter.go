package engine

import (
	"context"
	"errors"
	"math"
	"time"

	"google.golang.org/grpc/codes"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/limiter"
)

// limiterGate bounds the unary attempts in flight to the call's target
// (or target and method) by its concurrency limiter (package limiter): an
// attempt over the
// limit waits in the limiter's short, deadline-aware queue or is refused
// at once. A refused attempt never reached the server: no gate counts it.
// Streams are not limited: one may stay open for hours.
type limiterGate struct {
	lim *limiter.Limiter // nil: no limit for this call
}

func (g *limiterGate) start(c *call) {
	if c.unary != nil && c.g.target.t != nil {
		g.lim = c.e.limiterFor(c.g.target.t, c.method)
	}
}

func (g *limiterGate) before(c *call, a *attempt) error {
	if g.lim == nil {
		return nil
	}
	if p, ok := g.lim.TryAcquire(); ok {
		a.permit = p
		return nil
	}
	if a.hedge {
		// A hedge takes a free place or none: one that waited would add
		// load to a downstream whose queue made the call slow enough to
		// hedge. Refused, it is not fatal to the call.
		return errHedgeNoPermit
	}
	// Over the limit: wait in the queue, within the call's deadline and
	// the connection's life.
	var err error
	queued := time.Now()
	end := c.wait(a.ctx, math.MaxInt64, false, func(wctx context.Context) {
		a.permit, err = g.lim.Acquire(wctx)
	})
	// A refusal at once (the queue full, no time to wait) did not wait:
	// it is recorded as a refusal only.
	if end != nil || err == nil || !errors.Is(err, limiter.ErrLimited) || errors.Is(err, limiter.ErrQueueTimeout) {
		c.g.telemetry.call.LimiterWait(time.Since(queued), err == nil && end == nil)
	}
	if end != nil {
		a.permit.Done(limiter.Dropped) // a permit granted as the wait ended goes back
		a.permit = limiter.Permit{}
		return waitError(end, "waiting for a concurrency limit permit", a.lastErr)
	}
	return err
}

func (g *limiterGate) after(_ *call, a *attempt, o *outcome) {
	if g.lim == nil {
		return
	}
	a.permit.Done(limiterOutcome(o))
	a.permit = limiter.Permit{}
}

// limiterOutcome is how the limiter counts an attempt's outcome: answered
// (a latency sample), overloaded (an attempt timeout, the server out of
// resources) or neither.
func limiterOutcome(o *outcome) limiter.Outcome {
	switch {
	case o.kind == oc.Success || o.kind == oc.RequestFault:
		return limiter.Answered
	case o.kind == oc.ServerFailure && !o.noConn &&
		(o.code == codes.DeadlineExceeded || o.code == codes.ResourceExhausted):
		return limiter.Overloaded
	}
	return limiter.Dropped
}
