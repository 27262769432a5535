package engine

import (
	"context"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// sleep waits d before the next attempt. It returns the error the call ends
// with if the caller's context or the connection ended first.
func (c *call) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if end := c.wait(ctx, d, false, func(wctx context.Context) { <-wctx.Done() }); end != nil {
		return waitError(end, "waiting to retry", c.last.err)
	}
	return nil
}

// wait runs f with a context that ends after d, when ctx ends, or when the
// connection shuts down. ready marks waits for the connection to be ready
// (they turn the reconnect probe on). It returns nil if the wait ran its
// course (d elapsed, or f returned by itself), else the error that ended
// it: ctx's, or errConnClosing.
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

// contextStatus is the status error of a context's error.
func contextStatus(err error) error { return status.FromContextError(err).Err() }
