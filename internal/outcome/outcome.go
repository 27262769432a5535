package outcome

import (
	"context"
	"errors"
	"io"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	// Refused: the call could not reach a server that would serve it: a
	// gate of this client refused it (a breaker, a concurrency limit, a
	// throttle, a retry budget), or the server answered with its own
	// downstream's failure or refusal, passed on (MarkDownstream).
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
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Of classifies an attempt's error. A bare gRPC status error, as grpc-go
// returns it, is classified without allocating unless it is a server
// failure (whose details are read for MarkDownstream's).
func Of(err error) Kind {
	if err == nil {
		return Success
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return CallerGone
	}
	// Fast path: a bare gRPC status error.
	if gs, ok := err.(grpcStatuser); ok && !wraps(err) {
		return OfStatus(gs.GRPCStatus())
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
	return OfStatus(gs.GRPCStatus()) // a nil *Status is OK
}

// OfStatus classifies a gRPC status as OfCode does its code, except that
// a status marked as passed on (MarkDownstream) is Refused: the service
// that answered is fine; what failed, or refused, was its own downstream
// call, and the caller counts it against nobody.
func OfStatus(st *status.Status) Kind {
	k := OfCode(st.Code()) // a nil *Status is OK
	if k == ServerFailure && IsDownstream(st) {
		return Refused
	}
	return k
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

// DownstreamDomain and DownstreamReason identify the google.rpc.ErrorInfo
// detail of MarkDownstream.
const (
	DownstreamDomain = "github.com/grpc-resilience/resilience"
	DownstreamReason = "DOWNSTREAM_UNAVAILABLE"
)

// downstreamInfo is the detail, marshalled once.
var downstreamInfo = &errdetails.ErrorInfo{Reason: DownstreamReason, Domain: DownstreamDomain}

// MarkDownstream returns st with an ErrorInfo detail saying that the
// failure is not the answering service's own but its downstream's: a
// client refused the call itself (a breaker, a concurrency limit, a
// throttle), or the call failed at the server after the client's own
// retries. A service that passes such an error on to its caller (returns
// it from its handler as it is) passes the detail on, and a caller using
// this library classifies it as Refused: through a chain of services, only
// the hop next to the trouble counts it in its breaker and retries; the
// hops above neither open their breakers on a healthy service nor multiply
// the retries. st is returned as it is if it has the detail, or is OK.
func MarkDownstream(st *status.Status) *status.Status {
	if st.Code() == codes.OK || IsDownstream(st) {
		return st
	}
	marked, err := st.WithDetails(downstreamInfo)
	if err != nil {
		return st // only a status that cannot be marshalled
	}
	return marked
}

// IsDownstream reports whether st has the detail of MarkDownstream.
func IsDownstream(st *status.Status) bool {
	if st == nil || st.Code() == codes.OK {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == DownstreamReason && ei.GetDomain() == DownstreamDomain {
			return true
		}
	}
	return false
}

// RefusalStatus is an Unavailable status with msg, marked as the
// downstream's (MarkDownstream): the status of a client's own refusal.
func RefusalStatus(msg string) *status.Status {
	return MarkDownstream(status.New(codes.Unavailable, msg))
}

// Refusal returns the error of a request this client refused: its status
// is RefusalStatus(msg), its message msg, and it matches (errors.Is) each
// of is, the refusing package's sentinels.
func Refusal(msg string, is ...error) error { return &refusal{RefusalStatus(msg), is} }

type refusal struct {
	st *status.Status
	is []error
}

func (e *refusal) Error() string              { return e.st.Message() }
func (e *refusal) GRPCStatus() *status.Status { return e.st }
func (e *refusal) Unwrap() []error            { return e.is }
