package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/grpc-resilience/resilience/internal/outcome"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// DefaultIsFailure is the classification used when [Config.IsFailure] is nil.
// It reports whether an attempt's error means the server (or the path to it)
// is in trouble:
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
func DefaultIsFailure(err error) bool {
	excluded, failure := defaultClassify(err)
	return failure && !excluded
}

// DefaultIsExcluded is the exclusion rule used when [Config.IsExcluded] is nil.
// It reports whether an outcome says nothing about the server because the
// caller gave up: a plain context.Canceled or context.DeadlineExceeded (the
// interceptor passes ctx.Err() when the caller's context ended), or a gRPC
// status with codes.Canceled. Excluded outcomes count neither as success nor
// as failure, and a half-open probe that ends excluded frees its slot.
//
// A gRPC status with codes.DeadlineExceeded is not excluded: it is an attempt
// timeout or a deadline sent by the server, and counts as a failure.
func DefaultIsExcluded(err error) bool {
	excluded, _ := defaultClassify(err)
	return excluded
}

// defaultClassify decides DefaultIsExcluded and DefaultIsFailure together.
func defaultClassify(err error) (excluded, failure bool) {
	if err == nil {
		return false, false
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return true, false
	}
	// Fast path: a bare gRPC status error, as grpc-go returns.
	if gs, ok := err.(grpcStatuser); ok && !wraps(err) {
		return classifyCode(gs.GRPCStatus())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true, false
	}
	if errors.Is(err, io.EOF) {
		return false, false
	}
	var gs grpcStatuser
	if !errors.As(err, &gs) {
		return false, true // no status: it would surface as Unknown
	}
	return classifyCode(gs.GRPCStatus())
}

func classifyCode(st *status.Status) (excluded, failure bool) {
	switch st.Code() { // a nil *Status is OK
	case codes.Canceled:
		return true, false
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unknown, codes.DataLoss:
		return false, true
	}
	return false, false
}

type grpcStatuser interface{ GRPCStatus() *status.Status }

func wraps(err error) bool {
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		return true
	}
	return false
}
