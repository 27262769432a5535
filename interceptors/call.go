package interceptors

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// call is the state of one logical call, shared by the unary and stream
// attempt loops. It lives on the caller's goroutine.
type call struct {
	m      *Middleware
	p      policy
	ctx    context.Context // the caller's context, with the call deadline
	method string
	target string
	// attempts counts the attempts that reached the transport.
	attempts int
	// streaming calls bound only the time to commit by the per-attempt
	// timeout; the stream interceptor arms that timer itself.
	streaming bool
	tel       callTelemetry
}

// attempt is one try of a call.
type attempt struct {
	n      int
	ctx    context.Context
	cancel context.CancelFunc // nil when no per-attempt timeout was set
	tel    attemptTelemetry
}

// startAttempt prepares the next attempt: its number, context (attempt
// metadata, per-attempt timeout) and telemetry. It returns an error when
// the call must end without another attempt reaching the transport.
func (c *call) startAttempt() (attempt, error) {
	c.attempts++
	a := attempt{n: c.attempts, ctx: c.ctx}
	if a.n > 1 {
		// AppendToOutgoingContext never modifies the caller's metadata:
		// the addition lives in the returned context only.
		a.ctx = metadata.AppendToOutgoingContext(a.ctx, AttemptMetadataKey, strconv.Itoa(a.n))
	}
	if c.p.perAttemptTimeout > 0 && !c.streaming {
		a.ctx, a.cancel = context.WithTimeout(a.ctx, c.p.perAttemptTimeout)
	}
	a.ctx, a.tel = c.tel.startAttempt(a.ctx, a.n)
	return a, nil
}

// endAttempt records the outcome of a.
func (c *call) endAttempt(a *attempt, err error) {
	a.tel.end(err)
	if a.cancel != nil {
		a.cancel()
	}
}

// fail ends the call with err, recording the attempt count.
func (c *call) fail(err error) error {
	if c.p.attemptsOut != nil {
		*c.p.attemptsOut = c.attempts
	}
	e := &Error{Attempts: c.attempts, Err: err}
	c.tel.end(e)
	return e
}

// succeed ends the call successfully.
func (c *call) succeed() {
	if c.p.attemptsOut != nil {
		*c.p.attemptsOut = c.attempts
	}
	c.tel.end(nil)
}

// waitForRetry decides, after the latest attempt failed with err, whether
// another attempt follows. If so it waits for the backoff delay and returns
// nil; otherwise it returns the error the call ends with, without waiting.
func (c *call) waitForRetry(err error) error {
	ctx := c.ctx
	// Never retry once the caller's context is done: its own cancel or
	// deadline. A DeadlineExceeded seen while it is alive came from a
	// per-attempt timeout or from the server, and is retryable.
	if ctx.Err() != nil {
		return err
	}
	code := status.Code(err)
	if c.attempts >= c.p.maxAttempts || !c.p.retryCodes.has(code) {
		return err
	}
	delay := c.p.backoff.Delay(c.attempts)
	if dl, ok := ctx.Deadline(); ok && delay >= time.Until(dl) {
		// The next attempt could not start before the deadline: give up
		// now with the last error rather than sleep into the deadline.
		return err
	}
	c.tel.retryScheduled(c.attempts+1, delay, code)
	if delay <= 0 {
		return nil
	}
	t := c.m.cfg.clock.NewTimer(delay)
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		t.Stop()
		return status.Errorf(status.FromContextError(ctx.Err()).Code(),
			"interceptors: call ended while waiting to retry: %v; last attempt: %v", ctx.Err(), err)
	}
}

// newCall resolves the policy of a call and applies the call deadline. The
// returned cancel is never nil.
func (m *Middleware) newCall(ctx context.Context, method string, cc *grpc.ClientConn, opts []grpc.CallOption) (call, []grpc.CallOption, context.CancelFunc, error) {
	c := call{m: m, method: method}
	c.p, opts = m.resolve(method, opts)
	if c.p.err != nil {
		return c, nil, nil, status.Error(codes.InvalidArgument, "interceptors: invalid call option: "+c.p.err.Error())
	}
	if cc != nil {
		c.target = cc.Target()
	}
	cancel := context.CancelFunc(noop)
	if c.p.callTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			ctx, cancel = context.WithTimeout(ctx, c.p.callTimeout)
		}
	}
	c.ctx, c.tel = m.tel.startCall(ctx, method, c.target)
	return c, opts, cancel, nil
}

func noop() {}
