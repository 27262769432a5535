package engine

import (
	"errors"
	"time"

	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

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

// decision is what decide returns. The reason belongs to this decision
// alone: a call that ends reports the reason of the decision that ended it.
type decision struct {
	op     op
	delay  time.Duration
	err    error   // opStop: the error the call ends with
	reason error   // why attempts stopped early: ErrPushback, ErrBudgetExhausted, a refusal
	kind   oc.Kind // opStop: the kind of the outcome the call ends with
}

// situation is what decide knows of the call besides its policy.
type situation struct {
	attempts    int  // attempts made so far, the one that just ended included
	retries     int  // of them, retries since the last pushback delay: the backoff's exponent
	inFlight    int  // other attempts still running or starting (hedged calls)
	hedged      bool // the call is hedged: retryable failures go again at once
	callerDone  bool // the caller's context is done
	budgetOK    bool // the retry budget lets another attempt go
	pushStopped bool // a server already asked this call not to retry
	hasDeadline bool
	remaining   time.Duration // until the call deadline
	last        outcome       // the latest attempt's outcome (for refusals)
	callerErr   error         // the caller's context's status, once it is done
}

// event is what decide reacts to: an attempt's outcome, or (hedged calls)
// the hedge delay elapsing with attempts in flight.
type event struct {
	outcome
	hedgeTimer bool
}

// decide is the one retry decision of the engine, for unary calls, streams
// before commit and hedged calls alike. It never waits and changes nothing:
// the drivers act on what it returns. Rules, in order:
//
//   - a success ends the call; the caller gone (its context done, or the
//     outcome its deadline) stops new attempts;
//   - an attempt refused by a gate ends the call with the latest attempt's
//     error and the refusal as the reason (with attempts in flight, a
//     refusal only stops new ones); so does an attempt a service refused
//     with its own client's refusal, which the call passes on as it is;
//   - a non-retryable code, or a breaker error from further down, ends the
//     call;
//   - a negative pushback, MaxAttempts reached or an exhausted budget stop
//     new attempts: the call ends with the latest error, or, hedged, waits
//     for the attempts in flight;
//   - otherwise another attempt follows after the pushback delay if the
//     server sent one, at once if the connection was down (the attempt
//     waits for it) or the call is hedged, else after the backoff delay —
//     unless that delay would not end before the call's deadline.
func decide(p *Policy, s situation, ev event) decision {
	o := &ev.outcome
	// noMore is the decision when no further attempt may start.
	noMore := func(err, reason error, kind oc.Kind) decision {
		if s.inFlight > 0 {
			return decision{op: opWait, reason: reason}
		}
		return decision{op: opStop, err: err, reason: reason, kind: kind}
	}
	switch {
	case ev.hedgeTimer:
		switch {
		case s.callerDone, s.pushStopped, s.attempts >= p.MaxAttempts, p.Hedge == nil, s.inFlight >= p.Hedge.MaxInFlight:
			return decision{op: opWait}
		case !s.budgetOK:
			return decision{op: opWait, reason: ErrBudgetExhausted}
		}
		return decision{op: opAttempt}
	case o.kind == oc.Success:
		return decision{op: opStop, kind: oc.Success}
	case s.callerDone || o.kind == oc.CallerGone:
		// The caller is gone: nothing new starts, and attempts in flight
		// end with its context. A hedged call ends with the caller's
		// status even when a hedge's failure is the last to arrive. A
		// refusal of the next attempt is no attempt's error: the last
		// attempt's stays.
		last := o
		if o.kind == oc.Refused && s.last.err != nil {
			last = &s.last
		}
		err := last.err
		if s.hedged && s.callerErr != nil && last.code != status.Code(s.callerErr) {
			err = status.Errorf(status.Code(s.callerErr), "%s; last attempt: %v", status.Convert(s.callerErr).Message(), last.err)
		}
		return noMore(err, nil, oc.CallerGone)
	case o.kind == oc.Refused:
		// A gate's refusal keeps the latest attempt's error, with the
		// refusal as the reason; an attempt that a service refused (its
		// own client's refusal, passed on) is its own error.
		if !o.gate || s.last.err == nil {
			return noMore(o.err, nil, oc.Refused)
		}
		return noMore(s.last.err, o.err, oc.Refused)
	case !p.RetryCodes.Has(o.code) || errors.Is(o.err, breaker.ErrOpen):
		return decision{op: opStop, err: o.err, kind: o.kind}
	case o.hasPushback && o.pushback < 0, s.pushStopped:
		return noMore(o.err, ErrPushback, o.kind)
	case s.attempts >= p.MaxAttempts:
		return noMore(o.err, nil, o.kind)
	case !o.noConn && !s.budgetOK:
		return noMore(o.err, ErrBudgetExhausted, o.kind)
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
		return noMore(o.err, nil, o.kind)
	}
	return decision{op: opAttempt, delay: delay}
}
