package interceptors

import (
	"strconv"

	"google.golang.org/grpc/status"
)

// Error is returned when a call made through the interceptors fails. It
// keeps the error that ended the call — the last attempt's, or the one
// that stopped the call before another attempt (breaker, budget, the
// caller's context) — and the number of attempts made.
//
// status.Code(err) and status.Convert(err) see the status of Err unchanged,
// and errors.Is / errors.As reach Err through Unwrap:
//
//	var ie *interceptors.Error
//	if errors.As(err, &ie) {
//		log.Printf("gave up after %d attempts: %v", ie.Attempts, status.Code(err))
//	}
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

// newError is the engine's constructor of the error a failed call returns.
func newError(attempts int, err, reason error) error {
	return &Error{Attempts: attempts, Err: err, Reason: reason}
}

// GRPCStatus returns the status of Err, so that status.Code and
// status.Convert report the last attempt's code and message.
func (e *Error) GRPCStatus() *status.Status { return status.Convert(e.Err) }
