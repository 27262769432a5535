package interceptors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
)

// PushbackMetadataKey is the trailer a server sends to tell clients when
// to retry (gRFC A6): a non-negative number of milliseconds replaces the
// next backoff delay; a negative or malformed value stops retrying.
//
// Reading a trailer makes grpc-go copy it, on every call. So unary calls
// read it on retries, and on first attempts only while the target is
// troubled (it failed within its last 100 successful attempts); the first
// failure of a healthy target is retried by the backoff policy. Streams
// and hedged calls always read it.
const PushbackMetadataKey = "grpc-retry-pushback-ms"

// ErrPushback is the Reason of an *Error when the server's pushback
// trailer asked the client not to retry.
var ErrPushback = errors.New("interceptors: server pushback: do not retry")

// ErrBudgetExhausted is the Reason of an *Error when the retry budget of
// the target refused a retry. It wraps budget.ErrExhausted.
var ErrBudgetExhausted = fmt.Errorf("interceptors: %w", budget.ErrExhausted)

// call is the state of one logical call, shared by the unary and stream
// attempt loops. It lives on the caller's goroutine.
type call struct {
	m      *Middleware
	p      policy
	ctx    context.Context // the caller's context, with the call deadline
	cc     *grpc.ClientConn
	method string
	target string
	ts     *targetState
	// attempts counts the attempts made.
	attempts int
	// streaming calls bound only the time to commit by the per-attempt
	// timeout; the stream interceptor arms that timer itself.
	streaming bool
	// notReady is set when the latest attempt failed because the
	// connection was not ready: the next attempt waits for it.
	notReady bool
	// pushback is the server's requested delay before the next attempt,
	// when hasPushback.
	pushback    time.Duration
	hasPushback bool
	// reason explains why retries stopped early, if they did.
	reason error
	// lastErr is the latest attempt's error.
	lastErr error
	tel     callTelemetry
}

// attempt is one try of a call.
type attempt struct {
	n      int
	ctx    context.Context
	cancel context.CancelFunc // nil when no timeout was set
	done   func(error)        // reports the outcome to the breaker, if any
	// afterWait is set when the connection was still down after a whole
	// ready wait: a connection failure of this attempt then counts against
	// the breaker (before that, it is a restart being ridden out).
	afterWait bool
	tel       attemptTelemetry
}

// waitReady waits, for at most the ready wait and within the call
// deadline, until the connection is ready, while the reconnect probe
// shortens grpc-go's reconnect backoff. It returns an error only when the
// caller's context ended; a connection still down after the wait is left
// to the attempt, which then fails fast.
func (c *call) waitReady() (waitedOut bool, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.m.cfg.readyWait)
	defer cancel()
	if release := c.m.probes.acquire(c.cc); release != nil {
		defer release()
	}
	for s := c.cc.GetState(); s != connectivity.Ready; s = c.cc.GetState() {
		if s == connectivity.Idle {
			c.cc.Connect()
		}
		if !c.cc.WaitForStateChange(ctx, s) {
			break
		}
	}
	if err := c.ctx.Err(); err != nil {
		if c.lastErr == nil {
			return false, status.FromContextError(err).Err()
		}
		return false, status.Errorf(status.FromContextError(err).Code(),
			"interceptors: call ended while waiting for a ready connection: %v; last attempt: %v", err, c.lastErr)
	}
	return c.cc.GetState() != connectivity.Ready, nil
}

// startAttempt prepares the next attempt: its number, context (attempt
// metadata, per-attempt timeout, ready wait) and telemetry. It returns an
// error when the call must end without another attempt.
func (c *call) startAttempt() (attempt, error) {
	c.attempts++
	a := attempt{n: c.attempts, ctx: c.ctx}
	if a.n > 1 {
		// AppendToOutgoingContext never modifies the caller's metadata:
		// the addition lives in the returned context only.
		a.ctx = metadata.AppendToOutgoingContext(a.ctx, AttemptMetadataKey, strconv.Itoa(a.n))
	}
	if c.m.cfg.readyWait > 0 && c.cc != nil && c.shouldWaitReady() {
		waitedOut, err := c.waitReady()
		if err != nil {
			c.attempts--
			return a, err
		}
		a.afterWait = waitedOut
	}
	state := breakerClosed
	if set := c.m.breakers; set != nil && !c.p.noBreaker && c.cc != nil {
		key := c.target
		if c.m.cfg.breakerMethod {
			key = c.target + c.method
		}
		done, err := c.allow(set, key)
		if err != nil {
			// Fail fast, and do not retry into an open breaker.
			c.attempts--
			c.tel.breakerRejected(err)
			return a, err
		}
		a.done = done
		if c.tel.c != nil {
			// Only telemetry wants the state: skip the lookup otherwise.
			if st := set.State(key); st != breaker.StateClosed {
				state = int(st)
			}
		}
	}
	if c.p.perAttemptTimeout > 0 && !c.streaming {
		a.ctx, a.cancel = context.WithTimeout(a.ctx, c.p.perAttemptTimeout)
	}
	a.ctx, a.tel = c.tel.startAttempt(a.ctx, a.n)
	if state != breakerClosed {
		a.tel.breakerState(state)
	}
	return a, nil
}

// shouldWaitReady reports whether the next attempt should first wait for
// the connection: it is known to be down, or the previous attempt failed
// with Unavailable and the connection is not (or not yet again) ready.
func (c *call) shouldWaitReady() bool {
	if c.notReady {
		return true
	}
	s := c.cc.GetState()
	if s == connectivity.TransientFailure {
		return true
	}
	return s != connectivity.Ready && c.lastErr != nil && status.Code(c.lastErr) == codes.Unavailable
}

// notReady reports whether a connection in state s has lost its
// transport: it failed to connect, or it went idle after a connection loss.
// CONNECTING is not counted: grpc-go can still publish it for a moment
// after the first RPC on a new connection has completed.
func notReady(s connectivity.State) bool {
	return s == connectivity.TransientFailure || s == connectivity.Idle
}

// endAttempt records the outcome of a and returns the error the attempt
// ended with, as the retry loop should see it. trailer is the attempt's
// trailer metadata, if known.
func (c *call) endAttempt(a *attempt, err error, trailer metadata.MD) error {
	a.tel.end(err)
	if a.cancel != nil {
		a.cancel()
	}
	code := status.Code(err)
	// noConn: the connection is down, so the attempt never reached a
	// server. The next attempt waits for the connection.
	noConn := code == codes.Unavailable && c.cc != nil && c.m.cfg.readyWait > 0 && notReady(c.cc.GetState())
	if a.done != nil {
		switch {
		case err != nil && c.callerDeadline(err):
			// The caller gave up: that says nothing about the server.
			a.done(context.DeadlineExceeded)
		case err != nil && c.ctx.Err() != nil:
			a.done(c.ctx.Err())
		case noConn && !a.afterWait:
			// The attempt found no connection: the next one waits for
			// it. Count it only once a whole ready wait has passed, so
			// that a restart is ridden out, not turned into an open
			// breaker that refuses calls once the server is back.
			a.done(context.Canceled)
		default:
			a.done(err)
		}
		a.done = nil
	}
	c.hasPushback = false
	c.notReady = false
	c.lastErr = err
	if err == nil {
		if c.ts != nil {
			c.ts.succeeded()
			if c.ts.budget != nil {
				c.ts.budget.Success()
			}
		}
		return nil
	}
	if c.ts != nil {
		c.ts.failed()
	}
	if vals := trailer.Get(PushbackMetadataKey); len(vals) > 0 {
		c.hasPushback = true
		ms, perr := strconv.Atoi(vals[0])
		if perr != nil || ms < 0 || len(vals) > 1 {
			c.pushback = -1
		} else {
			c.pushback = time.Duration(ms) * time.Millisecond
		}
	}
	if noConn {
		// The budget guards servers against retry load: an attempt that
		// reached none is not counted.
		c.notReady = true
		return err
	}
	if c.ts != nil && c.ts.budget != nil && (c.hasPushback || c.p.retryCodes.has(code)) {
		c.ts.budget.Failure()
	}
	return err
}

// allow asks the breaker of key for an attempt. When a half-open breaker
// has all its probes in flight, it waits (within the call deadline and the
// ready wait) for the probes to decide instead of failing at once: after
// an outage, the calls that waited for the connection would otherwise all
// be refused in the moment the probes take to close the breaker.
func (c *call) allow(set *breaker.Set, key string) (func(error), error) {
	done, err := set.Allow(key)
	if err == nil || c.m.cfg.readyWait <= 0 || !probesBusy(err) {
		return done, err
	}
	t := c.m.cfg.clock.NewTimer(c.m.cfg.readyWait)
	defer t.Stop()
	for {
		changed := c.m.transition(key)
		// Ask again now that we listen: the probes may have decided
		// between the refusal and the registration.
		if done, err = set.Allow(key); err == nil || !probesBusy(err) {
			return done, err
		}
		select {
		case <-changed:
		case <-t.C():
			return done, err
		case <-c.ctx.Done():
			return done, err
		}
	}
}

// probesBusy reports whether err is a half-open breaker's refusal.
func probesBusy(err error) bool {
	var oe *breaker.OpenError
	return errors.As(err, &oe) && oe.State == breaker.StateHalfOpen
}

// budgetAllows reports whether the target's retry budget lets another
// attempt (a retry or a hedge) go. A refusal becomes the call's Reason and,
// once per call, a telemetry event.
func (c *call) budgetAllows() bool {
	if c.ts == nil || c.ts.budget == nil || c.ts.budget.AllowRetry() {
		return true
	}
	if c.reason == nil {
		c.tel.budgetExhausted()
	}
	c.reason = ErrBudgetExhausted
	return false
}

// deadlineSlack is how close to the call deadline a DeadlineExceeded must
// come to be the caller's own: the server, which learns the deadline from
// the grpc-timeout header, can time out a moment before the client does.
const deadlineSlack = 5 * time.Millisecond

// callerDeadline reports whether err is the caller's deadline running out
// (as seen by the client, or by the server just before the client).
func (c *call) callerDeadline(err error) bool {
	if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	if status.Code(err) != codes.DeadlineExceeded {
		return false
	}
	dl, ok := c.ctx.Deadline()
	return ok && time.Until(dl) < deadlineSlack
}

// fail ends the call with err, recording the attempt count.
func (c *call) fail(err error) error {
	if c.p.attemptsOut != nil {
		*c.p.attemptsOut = c.attempts
	}
	e := &Error{Attempts: c.attempts, Err: err, Reason: c.reason}
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
	if ctx.Err() != nil || c.callerDeadline(err) {
		return err
	}
	code := status.Code(err)
	if c.attempts >= c.p.maxAttempts || !c.p.retryCodes.has(code) || errors.Is(err, breaker.ErrOpen) {
		return err
	}
	if c.hasPushback {
		c.tel.pushback(c.pushback)
		if c.pushback < 0 {
			c.reason = ErrPushback
			return err
		}
	}
	if !c.notReady && !c.budgetAllows() {
		return err
	}
	var delay time.Duration
	switch {
	case c.hasPushback:
		delay = c.pushback
	case c.notReady:
		// The next attempt waits for the connection itself.
	default:
		delay = c.p.backoff.Delay(c.attempts)
	}
	if dl, ok := ctx.Deadline(); ok && delay > 0 && delay >= time.Until(dl) {
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

// initCall prepares c: it resolves the policy of the call and applies the
// call deadline. The returned cancel is never nil when err is nil.
func (m *Middleware) initCall(c *call, ctx context.Context, method string, cc *grpc.ClientConn, opts []grpc.CallOption) ([]grpc.CallOption, context.CancelFunc, error) {
	c.m, c.method, c.cc = m, method, cc
	opts = m.resolve(&c.p, method, opts)
	if c.p.err != nil {
		return nil, nil, status.Error(codes.InvalidArgument, "interceptors: invalid call option: "+c.p.err.Error())
	}
	if cc != nil {
		c.target = cc.Target()
		c.ts = m.targetState(c.target)
	}
	cancel := context.CancelFunc(noop)
	if c.p.callTimeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			ctx, cancel = context.WithTimeout(ctx, c.p.callTimeout)
		}
	}
	c.ctx, c.tel = m.tel.startCall(ctx, method, c.target)
	return opts, cancel, nil
}

func noop() {}
