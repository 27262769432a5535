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
// [Refused] (the attempt was refused locally, by a breaker, limiter,
// throttler or budget, and never reached a server) is never returned by Of:
// the refusing code knows it refused and sets it.
//
// A DeadlineExceeded status is a server failure to Of; whether it was in
// fact the caller's own deadline running out depends on the call's context,
// which only the caller of Of has (package endpoint refines it to
// CallerGone when the call's context is done; the engine decides the
// caller's deadline from its own context too).
//
// # Cost and concurrency
//
// Of is a pure function, safe for concurrent use. It allocates nothing and,
// for a bare gRPC status error (what grpc-go returns) or a plain context
// error, walks no error chain.
package outcome
