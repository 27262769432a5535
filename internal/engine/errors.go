package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/budget"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/limiter"
)

// The errors of the engine, built here and nowhere else.

// Error is returned when a call fails. It keeps the error that ended the
// call — the last attempt's, or the one that stopped the call before
// another attempt (a breaker, the budget, the caller's context) — and the
// number of attempts made.
//
// status.Code(err) and status.Convert(err) see the status of Err unchanged,
// and errors.Is / errors.As reach Err (and Reason) through Unwrap.
type Error struct {
	// Attempts is the number of attempts that reached the transport.
	Attempts int
	// Err is the error that ended the call.
	Err error
	// Reason says why the call stopped before using all its attempts,
	// when a policy stopped it: ErrBudgetExhausted, ErrPushback, or a
	// breaker's refusal (matching breaker.ErrOpen) of a retry or hedge. It
	// is nil otherwise.
	Reason error

	st *status.Status // Err's status, marked as the downstream's; nil: Err's own
}

// Error returns Err's message, followed by the number of attempts when
// there was more than one and by Reason, if any.
func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Attempts > 1 {
		s += " (after " + strconv.Itoa(e.Attempts) + " attempts)"
	}
	if e.Reason != nil {
		s += "; retries stopped: " + e.Reason.Error()
	}
	return s
}

// Unwrap returns Err and, if set, Reason, so that errors.Is(err,
// ErrBudgetExhausted) works as well as errors.Is on the status error.
func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Reason}
}

// GRPCStatus returns the status of Err, so that status.Code and
// status.Convert report the last attempt's code and message. A call that
// failed for its downstream's sake (a server failure, a refusal) has it
// marked as such (a google.rpc.ErrorInfo detail, see internal/outcome):
// a service that returns the error to its own caller passes the mark on,
// and a caller using this library counts it against nobody and does not
// retry it, so that only the hop next to the trouble does.
func (e *Error) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.Convert(e.Err)
}

// newError is the error of a call that ended as d says with err (after
// the fallback, if any).
func newError(attempts int, err error, d *decision) *Error {
	e := &Error{Attempts: attempts, Err: err, Reason: d.reason}
	if d.kind == oc.ServerFailure || d.kind == oc.Refused {
		e.st = oc.MarkDownstream(status.Convert(err))
	}
	return e
}

// ErrPushback is the Reason of a call the server's pushback trailer asked
// the client not to retry.
var ErrPushback = errors.New("engine: server pushback: do not retry")

// ErrBudgetExhausted is the Reason of a call whose retry budget refused a
// retry or hedge. It wraps budget.ErrExhausted.
var ErrBudgetExhausted = fmt.Errorf("engine: %w", budget.ErrExhausted)

// errInvalidCall is the status of a call with an invalid call option.
func errInvalidCall(err error) error {
	return status.Error(codes.InvalidArgument, "engine: invalid call option: "+err.Error())
}

// errConnClosing is what a wait ends with when the connection shuts down:
// grpc-go's own status for calls on a closing connection.
var errConnClosing = status.Error(codes.Canceled, "grpc: the client connection is closing")

// errHedgeLost ends a hedge that was ready to start when the call ended.
var errHedgeLost = status.Error(codes.Canceled, "engine: another attempt answered first")

// errHedgeNoPermit refuses a hedge that found the concurrency limit
// reached: a hedge never waits in the limiter's queue.
var errHedgeNoPermit = oc.Refusal("engine: concurrency limit reached; a hedge does not wait for a place", limiter.ErrLimited)

// errAttemptTimeout is the cause given to a stream attempt cancelled by the
// per-attempt timeout before it committed.
var errAttemptTimeout = errors.New("engine: per-attempt timeout before the stream committed")

// errAttemptTimeoutStatus is what such an attempt ends with.
var errAttemptTimeoutStatus = status.Error(codes.DeadlineExceeded, errAttemptTimeout.Error())

// waitEnded is the error a call ends with when a wait before an attempt
// was cut short by the caller's context or the connection: it keeps the
// code of what ended it and the latest attempt's error.
type waitEnded struct{ st *status.Status }

func (w *waitEnded) Error() string              { return w.st.Err().Error() }
func (w *waitEnded) GRPCStatus() *status.Status { return w.st }

// waitError returns the error of a wait for what (e.g. "waiting to retry")
// cut short by end.
func waitError(end error, what string, lastErr error) error {
	code := status.Code(end)
	if end == context.Canceled || end == context.DeadlineExceeded {
		code = status.FromContextError(end).Code()
	}
	if lastErr == nil {
		return &waitEnded{status.Newf(code, "engine: call ended while %s: %v", what, end)}
	}
	return &waitEnded{status.Newf(code, "engine: call ended while %s: %v; last attempt: %v", what, end, lastErr)}
}

// fallbackMarginError is what a call whose fallback margin cut it short
// ends with before the fallback answers (or fails to): err is the error
// the call ended with, attempted whether any attempt was made.
func fallbackMarginError(margin time.Duration, err error, attempted bool) error {
	if !attempted {
		return status.Error(codes.DeadlineExceeded, "engine: no answer before the fallback margin of the call deadline")
	}
	return status.Errorf(codes.DeadlineExceeded, "engine: no answer %v before the call deadline; last attempt: %v", margin, err)
}
