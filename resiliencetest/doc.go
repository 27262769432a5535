// Package resiliencetest is a kit to check how a gRPC client, with or
// without the resilience interceptors, copes with a flaky, slow, restarting
// or hung server: in the spirit of net/http/httptest, for the tests of your
// own services, and for staging and game days.
//
// It has three parts, independent of each other:
//
//   - Faults: unary and stream server interceptors that you add to your own
//     grpc.Server in tests (grpc.NewServer(faults.ServerOptions()...)). Per
//     method, or for AllMethods, they fail the next n attempts or a seeded
//     fraction of them (InjectNext, InjectFraction) with a Fault: Fail with
//     a code, optionally with a pushback trailer (Fault.WithPushback); Hang
//     until the attempt's deadline; FailAfterSent or FailAfterReceived to
//     fail a stream after k messages. SetLatency adds a fixed latency or a
//     slow tail. Attempts and AttemptNumbers count the attempts that arrived,
//     by the attempt number the resilience client sends (AttemptMetadataKey).
//   - Listener: a net.Listener on 127.0.0.1 for that server that Stop and
//     Restart close and reopen on the same port, and whose mode (SetMode)
//     serves, refuses connections, accepts and closes them at once, or
//     accepts them and stays silent (Blackhole).
//   - Chaos: a client interceptor that fails or delays a rate of calls,
//     behind an on/off switch (SetEnabled) that is off until switched on, and
//     that records a ChaosEvent on the call's span whenever it acts.
//
// EchoServer is a plain implementation of the project's EchoService
// (package testingv1) to try all this against.
//
// # How an attempt goes through Faults
//
// Each attempt that reaches the interceptors is, in order:
//
//  1. counted, under its method and its attempt number;
//  2. delayed by the method's latency, if SetLatency set one and the draw
//     says so; if the attempt's context ends first, it ends with
//     codes.DeadlineExceeded or codes.Canceled;
//  3. given the first fault queued by InjectNext that it can take (unary
//     attempts skip FailAfterSent and FailAfterReceived), which uses up one
//     of its n; if none, the fraction set by InjectFraction decides;
//  4. handed to your handler, unless the fault ended it (Fail, Hang).
//
// An attempt on a method uses the rules set for that method if any were
// set (and not removed by Clear or Reset), otherwise those set for
// AllMethods.
//
// # Defaults
//
// NewFaults starts with no rules and NewChaos switched off: neither does
// anything until told to. Randomness is a math/rand/v2 PCG source seeded with
// 0 unless WithSeed says otherwise, drawn only when a fraction is strictly
// between 0 and 1, first for the latency, then for the fault, so a sequence
// of calls sees the same pattern on every run. Latency waits on timers:
// run a test in a testing/synctest bubble (serving over
// google.golang.org/grpc/test/bufconn, which works inside one) and the
// latency passes without the test waiting for it. A Fault's status message is "resiliencetest: injected
// fault" unless Fault.WithMessage says otherwise.
//
// # Errors
//
// Bad arguments (a negative count, latency or message count, a fraction
// that is NaN or outside [0, 1], codes.OK as a fault code, a malformed
// method name) are reported when they are given, by an error that wraps
// ErrInvalid and names the function and the field. Nothing panics later.
//
// # Concurrency
//
// Faults, Listener and Chaos are safe for concurrent use, and
// can be reconfigured while calls run; a change applies to the attempts
// that reach the changed step afterwards. Counts are exact under concurrent
// calls.
package resiliencetest
