package engine

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
)

// ErrPushback is the Reason of a call the server's pushback trailer asked
// the client not to retry.
var ErrPushback = errors.New("interceptors: server pushback: do not retry")

// ErrBudgetExhausted is the Reason of a call whose retry budget refused a
// retry or hedge. It wraps budget.ErrExhausted.
var ErrBudgetExhausted = fmt.Errorf("interceptors: %w", budget.ErrExhausted)

// op is what a call does next.
type op uint8

const (
	// opStop ends the call with decision.err (nil: success).
	opStop op = iota
	// opAttempt starts another attempt after decision.delay.
	opAttempt
	// opWait (hedged calls) starts nothing and waits for the attempts in
	// flight.
	opWait
)

// decision is what decide returns.
type decision struct {
	op     op
	delay  time.Duration
	err    error // opStop: the error the call ends with
	reason error // why attempts stopped early: ErrPushback, ErrBudgetExhausted, a breaker refusal
}

// situation is what decide knows of the call besides its policy.
type situation struct {
	attempts    int  // attempts made so far, the one that just ended included
	retries     int  // of them, retries since the last pushback delay: the backoff's exponent
	inFlight    int  // other attempts still running or starting (hedged calls)
	hedged      bool // the call is hedged: retryable failures go again at once
	callerDone  bool // the caller's context is done, or the outcome is its deadline
	budgetOK    bool // the retry budget lets another attempt go
	pushStopped bool // a server already asked this call not to retry
	hasDeadline bool
	remaining   time.Duration // until the call deadline
	lastErr     error         // the latest attempt's error (for refusals)
	callerErr   error         // the caller's context's status, once it is done
}

// outcome is the event decide reacts to: an attempt's end, a breaker's
// refusal to let one start, or (hedged calls) the hedge delay elapsing.
type outcome struct {
	err         error
	code        codes.Code
	hasPushback bool
	pushback    time.Duration // < 0: do not retry
	noConn      bool          // no connection was ready: the next attempt waits for one
	refused     bool          // err is a breaker's refusal; no attempt was made
	hedgeTimer  bool          // the hedge delay elapsed with attempts in flight
}

// decide is the one retry decision of the engine, for unary calls, streams
// before commit and hedged calls alike. It never waits and changes nothing:
// the drivers act on what it returns. Rules, in order:
//
//   - a success ends the call; the caller's context ending stops new
//     attempts;
//   - a breaker's refusal, a non-retryable code or a breaker error from
//     further down end the call (with attempts in flight, a refusal only
//     stops new ones);
//   - a negative pushback, MaxAttempts reached or an exhausted budget stop
//     new attempts: the call ends with the latest error, or, hedged, waits
//     for the attempts in flight;
//   - otherwise another attempt follows after the pushback delay if the
//     server sent one, at once if the connection was down (the attempt
//     waits for it) or the call is hedged, else after the backoff delay —
//     unless that delay would not end before the call's deadline.
func decide(p *Policy, s situation, o outcome) decision {
	// noMore is the decision when no further attempt may start.
	noMore := func(err, reason error) decision {
		if s.inFlight > 0 {
			return decision{op: opWait, reason: reason}
		}
		return decision{op: opStop, err: err, reason: reason}
	}
	switch {
	case o.hedgeTimer:
		switch {
		case s.callerDone, s.pushStopped, s.attempts >= p.MaxAttempts, p.Hedge == nil, s.inFlight >= p.Hedge.MaxInFlight:
			return decision{op: opWait}
		case !s.budgetOK:
			return decision{op: opWait, reason: ErrBudgetExhausted}
		}
		return decision{op: opAttempt}
	case o.refused:
		if s.lastErr == nil {
			return noMore(o.err, nil)
		}
		return noMore(s.lastErr, o.err)
	case o.err == nil:
		return decision{op: opStop}
	case s.callerDone:
		// The caller is gone: nothing new starts, and attempts in flight
		// end with its context. A hedged call ends with the caller's
		// status even when a hedge's failure is the last to arrive.
		err := o.err
		if s.hedged && s.callerErr != nil && o.code != status.Code(s.callerErr) {
			err = status.Errorf(status.Code(s.callerErr), "%s; last attempt: %v", status.Convert(s.callerErr).Message(), o.err)
		}
		return noMore(err, nil)
	case !p.RetryCodes.Has(o.code) || errors.Is(o.err, breaker.ErrOpen):
		return decision{op: opStop, err: o.err}
	case o.hasPushback && o.pushback < 0, s.pushStopped:
		return noMore(o.err, ErrPushback)
	case s.attempts >= p.MaxAttempts:
		return noMore(o.err, nil)
	case !o.noConn && !s.budgetOK:
		return noMore(o.err, ErrBudgetExhausted)
	}
	var delay time.Duration
	switch {
	case o.hasPushback:
		delay = o.pushback
	case o.noConn, s.hedged:
	default:
		delay = p.Backoff.Delay(s.retries)
	}
	if s.hasDeadline && delay > 0 && delay >= s.remaining {
		// The next attempt could not start before the deadline: give up
		// now with the latest error rather than sleep into the deadline.
		return noMore(o.err, nil)
	}
	return decision{op: opAttempt, delay: delay}
}
