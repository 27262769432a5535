// Package outcome classifies how an attempt ended, once, for every part of
// the library that counts outcomes: the circuit breaker (package breaker's
// default classification), the endpoint ejection policy (package endpoint)
// and the engine's gates, retry decision and fallback. It is the one place
// the set of codes that mean "the server is in trouble" lives.
//
// # Model
//
// [Of] maps an attempt's error to a [Kind]:
//
//   - [Success]: nil, io.EOF (the clean end of a stream), a status with
//     codes.OK;
//   - [ServerFailure]: the server or the path to it is in trouble:
//     Unavailable, DeadlineExceeded as a gRPC status (an attempt timeout or
//     a deadline the server sent), ResourceExhausted, Internal, Unknown,
//     DataLoss, and errors that carry no gRPC status (they would surface as
//     Unknown);
//   - [RequestFault]: the server answered and the request was at fault:
//     InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
//     Unauthenticated, FailedPrecondition, Aborted (a conflict the server
//     detected correctly), OutOfRange, Unimplemented, and any code not
//     listed here;
//   - [CallerGone]: the caller gave up, which says nothing about the
//     server: a plain context.Canceled or context.DeadlineExceeded (what
//     ctx.Err() returns, also wrapped) and codes.Canceled.
//
// [Refused]: the attempt could not reach a server that would serve it.
// Of returns it only for a status marked by [MarkDownstream] (below); a
// gate of this client that refuses an attempt knows it refused and says so
// itself.
//
// A DeadlineExceeded status is a server failure to Of; whether it was in
// fact the caller's own deadline running out depends on the call's context,
// which only the caller of Of has (package endpoint refines it to
// CallerGone when the call's context is done; the engine decides the
// caller's deadline from its own context too).
//
// # Passing failures on
//
// [MarkDownstream] adds a google.rpc.ErrorInfo detail (domain
// [DownstreamDomain], reason [DownstreamReason]) to the status of a call
// that failed for its downstream's sake: a client's own refusal
// ([RefusalStatus]), or a server failure after the client's retries. A
// service that returns such an error from its handler passes the detail on
// to its caller, and a caller using this library classifies the answer as
// Refused: in a chain of services only the hop next to the trouble counts
// the failure in its breaker and retries it; the hops above neither open
// their breakers on a healthy service nor multiply the retries.
//
// # Cost and concurrency
//
// Of is a pure function, safe for concurrent use. It allocates nothing for
// an error without status details and, for a bare gRPC status error (what
// grpc-go returns) or a plain context error, walks no error chain; a server
// failure's details are read for MarkDownstream's.
package outcome
