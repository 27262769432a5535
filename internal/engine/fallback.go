package engine

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/fallback"
)

// armFallback prepares a call with a fallback: when the call has a
// deadline, a timer fires Margin before it (by default 10 % of the time
// left) and cancels the call, so that the fallback answers in time instead
// of the caller running into its deadline. It returns the context the call
// runs under.
func (c *call) armFallback(ctx context.Context) context.Context {
	fb := c.fb
	fb.h = c.p.Fallback
	fb.callerCtx = ctx
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	left := dl.Sub(time.Now())
	margin := fb.h.Margin
	if margin == 0 {
		margin = left / 10
	}
	if left-margin <= 0 {
		return ctx // no time for a margin: the call runs to its deadline
	}
	ctx, fb.cancel = context.WithCancel(ctx)
	fb.margin = time.AfterFunc(left-margin, func() {
		fb.hit.Store(true)
		fb.cancel()
	})
	return ctx
}

// fallback runs when a call with a fallback ends with err: a success is
// saved, a failure the downstream is to blame for is answered, if the
// fallback can. It returns the error the call ends with.
func (c *call) fallback(err error) error {
	fb := c.fb
	if fb.margin != nil {
		fb.margin.Stop()
		fb.cancel()
	}
	out := c.p.FallbackOut
	if out != nil {
		*out = fallback.Info{}
	}
	if err == nil {
		if fb.h.Save != nil {
			fb.h.Save(c.method, c.unary.req, c.unary.reply)
		}
		return nil
	}
	if fb.hit.Load() {
		err = status.Errorf(codes.DeadlineExceeded, "interceptors: no answer %v before the call deadline; last attempt: %v", fb.h.Margin, err)
		if c.lastErr == nil {
			err = status.Error(codes.DeadlineExceeded, "interceptors: no answer before the fallback margin of the call deadline")
		}
	} else if !c.downstreamFailed(err) {
		return err
	}
	info, ferr := fb.h.Answer(fb.callerCtx, c.method, c.unary.req, c.unary.reply, err)
	if ferr != nil {
		c.tel.Fallback(false, false, 0)
		return ferr
	}
	info.Used = true
	if out != nil {
		*out = info
	}
	c.tel.Fallback(true, info.Stale, info.Age)
	return nil
}

// downstreamFailed reports whether a call that ended with err failed in a
// way the downstream is to blame for: Unavailable, an attempt's
// DeadlineExceeded (not the caller's), a breaker's refusal, or retries
// stopped by the budget or the server's pushback. The caller's own cancel
// and deadline, and errors that describe the request (InvalidArgument,
// NotFound, PermissionDenied, ...), are not.
func (c *call) downstreamFailed(err error) bool {
	if c.fb.callerCtx.Err() != nil {
		return false
	}
	if errors.Is(err, breaker.ErrOpen) || c.reason == ErrBudgetExhausted || c.reason == ErrPushback {
		return true
	}
	var oe *breaker.OpenError
	if errors.As(c.reason, &oe) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.DeadlineExceeded:
		return !c.callerDeadline(err)
	}
	return false
}
