package breaker

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/outcome"
)

// ErrOpen is the sentinel every rejection by a [Set] matches:
// errors.Is(err, ErrOpen) reports whether an attempt was refused by a breaker
// without touching the network.
var ErrOpen = errors.New("breaker: circuit open")

// ErrInvalidConfig is wrapped by every error [Config.Validate] and [NewSet]
// return.
var ErrInvalidConfig = errors.New("breaker: invalid config")

// OpenError is the error [Set.Allow] returns when the key's breaker rejects an
// attempt: the breaker is open, or it is half-open and all its probe slots are
// taken.
//
// It matches [ErrOpen] (errors.Is), carries the gRPC status
// codes.Unavailable (status.Code(err) == codes.Unavailable, also when
// wrapped), and its message names the key and the state, e.g.
//
//	breaker: circuit open for "dns:///orders:443" (state open)
//
// Use errors.As with a *OpenError to read the fields. A Set hands out one
// shared *OpenError per key and state, so rejections do not allocate; treat it
// as read-only.
type OpenError struct {
	// Key is the key the caller passed to Allow (by default the target).
	Key string
	// State is StateOpen, or StateHalfOpen when all probe slots were taken.
	State State

	st *status.Status // cached GRPCStatus; nil for OpenErrors built by users
}

func newOpenError(key string, s State) *OpenError {
	e := &OpenError{Key: key, State: s}
	e.st = outcome.RefusalStatus(e.Error())
	return e
}

// Error implements error.
func (e *OpenError) Error() string {
	if e.State == StateHalfOpen {
		return fmt.Sprintf("%s for %q (state half-open, all probes in flight)", ErrOpen.Error(), e.Key)
	}
	return fmt.Sprintf("%s for %q (state %s)", ErrOpen.Error(), e.Key, e.State)
}

// Unwrap returns [ErrOpen], so errors.Is(err, ErrOpen) holds.
func (e *OpenError) Unwrap() error { return ErrOpen }

// GRPCStatus returns an Unavailable status with the error's message; it lets
// status.Code and status.FromError see the error as codes.Unavailable.
func (e *OpenError) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.New(codes.Unavailable, e.Error())
}

// DefaultIsFailure is the classification used when [Config.IsFailure] is nil,
// the library's one classification of outcomes (the interceptors' engine
// and package endpoint use the same). It reports whether an attempt's error
// means the server (or the path to it) is in trouble:
//
//   - failures: codes Unavailable, DeadlineExceeded (an attempt timeout or a
//     server-sent deadline, as a gRPC status), ResourceExhausted, Internal,
//     Unknown, DataLoss, and any error that carries no gRPC status (it would
//     surface as Unknown);
//   - not failures, the server answered and is healthy: OK, InvalidArgument,
//     NotFound, AlreadyExists, PermissionDenied, Unauthenticated,
//     FailedPrecondition, Aborted (a concurrency conflict the server detected
//     correctly), OutOfRange, Unimplemented, and io.EOF (the clean end of a
//     stream);
//   - nil is not a failure.
//
// Outcomes that [DefaultIsExcluded] excludes (the caller's own cancellation or
// deadline, codes.Canceled) are decided before IsFailure is consulted, so
// DefaultIsFailure returns false for them too.
func DefaultIsFailure(err error) bool { return defaultKind(err) == outcome.ServerFailure }

// DefaultIsExcluded is the exclusion rule used when [Config.IsExcluded] is nil.
// It reports whether an outcome says nothing about the server because the
// caller gave up: a plain context.Canceled or context.DeadlineExceeded (the
// interceptor passes ctx.Err() when the caller's context ended), or a gRPC
// status with codes.Canceled. Excluded outcomes count neither as success nor
// as failure, and a half-open probe that ends excluded frees its slot.
//
// A refusal passed on by the server (a status its own client marked as its
// downstream's, see the interceptors' Error) is excluded too: the server
// that answered is not the one in trouble.
//
// A gRPC status with codes.DeadlineExceeded is not excluded: it is an attempt
// timeout or a deadline sent by the server, and counts as a failure.
func DefaultIsExcluded(err error) bool { return defaultKind(err) == outcome.CallerGone }

// defaultKind sorts err as DefaultIsFailure and DefaultIsExcluded do, in
// one pass: outcome.ServerFailure, outcome.CallerGone (excluded) or
// outcome.Success. A Set with both defaults classifies by it directly.
func defaultKind(err error) outcome.Kind {
	switch k := outcome.Of(err); k {
	case outcome.ServerFailure:
		return k
	case outcome.CallerGone, outcome.Refused:
		return outcome.CallerGone
	}
	return outcome.Success
}
