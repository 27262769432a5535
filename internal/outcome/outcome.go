// Package outcome classifies how an attempt of a gRPC call ended: the one
// place the library decides whose failure an error is. The engine, the
// breaker, the endpoint detector and the fallback all read it.
//
// # Model
//
// An attempt ends in one of five ways ([Kind]): the server answered
// ([Success]), the server or the path to it failed ([ServerFailure]), the
// server answered and the request was at fault ([RequestFault]), the caller
// gave up ([CallerGone]), or the attempt was refused locally before it
// reached a server ([Refused]). [Of] decides the first four from an error
// alone; only the engine knows of refusals and of a caller's deadline that
// surfaced as a server's DeadlineExceeded, and says so itself.
//
// # Concurrency
//
// Everything here is a pure function of its arguments.
package outcome

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kind is how an attempt ended.
type Kind uint8

// The kinds of outcome.
const (
	// Success: the server answered (nil, io.EOF).
	Success Kind = iota
	// ServerFailure: the server, or the path to it, is in trouble:
	// Unavailable, DeadlineExceeded as a gRPC status (an attempt timeout,
	// or a deadline the server sent), ResourceExhausted, Internal,
	// Unknown, DataLoss, and errors that carry no gRPC status.
	ServerFailure
	// RequestFault: the server answered, and the request was at fault:
	// InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
	// Unauthenticated, FailedPrecondition, Aborted, OutOfRange,
	// Unimplemented.
	RequestFault
	// CallerGone: the caller gave up: a plain context.Canceled or
	// context.DeadlineExceeded, or codes.Canceled.
	CallerGone
	// Refused: refused locally before it reached a server (a breaker, a
	// concurrency limit, a throttle, a retry budget). Of never returns it.
	Refused
)

// String returns the kind's name, e.g. "server failure".
func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case ServerFailure:
		return "server failure"
	case RequestFault:
		return "request fault"
	case CallerGone:
		return "caller gone"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Of classifies an attempt's error. A bare gRPC status error, as grpc-go
// returns it, is classified without allocating.
func Of(err error) Kind {
	if err == nil {
		return Success
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return CallerGone
	}
	// Fast path: a bare gRPC status error.
	if gs, ok := err.(grpcStatuser); ok && !wraps(err) {
		return OfCode(gs.GRPCStatus().Code())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CallerGone
	}
	if errors.Is(err, io.EOF) {
		return Success
	}
	var gs grpcStatuser
	if !errors.As(err, &gs) {
		return ServerFailure // no status: it would surface as Unknown
	}
	return OfCode(gs.GRPCStatus().Code())
}

// OfCode classifies a gRPC status code: OK is a success, Canceled the
// caller gone, the codes that describe the server's trouble a server
// failure, every other code a request fault.
func OfCode(c codes.Code) Kind {
	switch c {
	case codes.OK:
		return Success
	case codes.Canceled:
		return CallerGone
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unknown, codes.DataLoss:
		return ServerFailure
	}
	return RequestFault
}

type grpcStatuser interface{ GRPCStatus() *status.Status }

func wraps(err error) bool {
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		return true
	}
	return false
}
