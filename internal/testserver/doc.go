// Package testserver provides the fault-injecting EchoService server that the
// project's tests, benchmarks and demos share.
//
// A Server implements testingv1.EchoServiceServer:
//
//   - Echo returns the request's message.
//   - ServerStream sends Count responses numbered from 0, each carrying the
//     request's message.
//   - ClientStream collects every message until the client half-closes and
//     replies with all of them in order.
//   - BidiStream echoes every message with its sequence number, from 0.
//
// # Serving
//
// ListenBufconn serves over an in-memory google.golang.org/grpc/test/bufconn
// listener; ListenTCP serves on 127.0.0.1 with a kernel-chosen port. NewClient
// returns a *grpc.ClientConn for whichever transport is in use, and Dialer a
// dialer for grpc.WithContextDialer. Stop is a hard stop: listener and
// connections are closed and running RPCs are cancelled, so clients see
// Unavailable (over TCP, "connection refused" while stopped). Restart serves
// again on the same address (the same TCP port) with a fresh grpc.Server;
// clients reconnect to it. Close stops for good and waits for every goroutine
// the Server started, including running handlers, to end.
//
// A Server can also be registered on a grpc.Server of the caller's own with
// testingv1.RegisterEchoServiceServer: faults and observation live in the
// handlers, not in interceptors.
//
// # Faults
//
// Faults can be set and cleared at any time, also while RPCs are running. Each
// attempt that reaches a handler goes through these steps, in order:
//
//  1. It is recorded and counted (see Calls, Attempts, MethodAttempts).
//  2. The hook set by SetHook, if any, runs; an error from it ends the attempt.
//  3. The latency set by SetLatency or SetTailLatency is waited out; if the
//     attempt's context ends first, the attempt ends with the context's status
//     (Canceled or DeadlineExceeded).
//  4. The first queued fault (FailNext, FailNextAfterSent,
//     FailNextAfterReceived) that matches the attempt's method and kind of RPC
//     is taken and consumed; if none matches, the fraction set by FailFraction
//     decides whether the attempt fails at once.
//
// A fault that fails an attempt "at once" ends it before the handler sends a
// header or a message (the server answers trailers-only), so a client sees
// it as not committed. FailNextAfterSent ends a stream after it has sent some
// messages, that is after commit; FailNextAfterReceived ends a stream after it
// has received some messages but before it responds to the last of them.
//
// # Randomness
//
// Fractions (FailFraction, SetTailLatency) draw from a math/rand/v2 source,
// seeded with 0 unless WithSeed or WithRandSource says otherwise. A draw is
// made only when a fraction is strictly between 0 and 1: first one for the
// latency, then one for the failure. Sequential calls therefore see a
// reproducible pattern; concurrent calls see the same draws in arrival order.
//
// # Concurrency
//
// All methods of Server are safe for concurrent use, including while it is
// serving. A hook runs on the handler's goroutine and may be called
// concurrently with itself; it must return once its context is done, or Stop,
// Restart and Close, which wait for running handlers, will wait for it.
package testserver
