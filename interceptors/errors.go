package interceptors

import "github.com/grpc-resilience/resilience/internal/engine"

// Error is returned when a call made through the interceptors fails. It
// keeps the error that ended the call — the last attempt's, or the one
// that stopped the call before another attempt (breaker, budget, the
// caller's context) — and the number of attempts made:
//
//	type Error struct {
//		// Attempts is the number of attempts that reached the transport.
//		Attempts int
//		// Err is the error that ended the call.
//		Err error
//		// Reason says why the call stopped before using all its attempts,
//		// when a policy stopped it: ErrBudgetExhausted, ErrPushback, or a
//		// breaker's refusal (matching breaker.ErrOpen) of a retry or
//		// hedge. It is nil otherwise.
//		Reason error
//	}
//
// Its message is Err's, followed by the number of attempts when there was
// more than one and by Reason, if any. status.Code(err) and
// status.Convert(err) see the status of Err unchanged, and errors.Is /
// errors.As reach Err and Reason through Unwrap:
//
//	var ie *interceptors.Error
//	if errors.As(err, &ie) {
//		log.Printf("gave up after %d attempts: %v", ie.Attempts, status.Code(err))
//	}
type Error = engine.Error
