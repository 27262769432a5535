package outcome

import (
	"context"
	"errors"
	"io"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kind is how an attempt ended. The zero Kind is Success.
type Kind uint8

// The kinds of outcome, see the package documentation.
const (
	// Success: the server answered (nil, io.EOF, codes.OK).
	Success Kind = iota
	// ServerFailure: the server or the path to it is in trouble.
	ServerFailure
	// RequestFault: the server answered and the request was at fault.
	RequestFault
	// CallerGone: the caller gave up; it says nothing about the server.
	CallerGone
	// Refused: refused locally before reaching a server (breaker, limiter,
	// throttler, budget). Never returned by Of.
	Refused
)

// String returns the kind's name: "success", "server failure", "request
// fault", "caller gone" or "refused".
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
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Of classifies an attempt's error; see the package documentation for the
// rules. It never returns Refused.
func Of(err error) Kind {
	if err == nil {
		return Success
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return CallerGone
	}
	// Fast path: a bare gRPC status error, as grpc-go returns.
	if gs, ok := err.(grpcStatuser); ok && !wraps(err) {
		return ofCode(gs.GRPCStatus().Code())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CallerGone
	}
	if errors.Is(err, io.EOF) {
		return Success
	}
	gs, ok := errors.AsType[statusError](err)
	if !ok {
		return ServerFailure // no status: it would surface as Unknown
	}
	return ofCode(gs.GRPCStatus().Code()) // a nil *Status is OK
}

func ofCode(c codes.Code) Kind {
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

// statusError is an error that carries a gRPC status, as status.FromError
// finds it in an error's tree.
type statusError interface {
	error
	grpcStatuser
}

func wraps(err error) bool {
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		return true
	}
	return false
}
