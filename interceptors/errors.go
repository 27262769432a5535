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
}

// Error returns Err's message, followed by the number of attempts when
// there was more than one.
func (e *Error) Error() string {
	if e.Attempts <= 1 {
		return e.Err.Error()
	}
	return e.Err.Error() + " (after " + strconv.Itoa(e.Attempts) + " attempts)"
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus returns the status of Err, so that status.Code and
// status.Convert report the last attempt's code and message.
func (e *Error) GRPCStatus() *status.Status { return status.Convert(e.Err) }
