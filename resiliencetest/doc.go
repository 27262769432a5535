// Package resiliencetest is a kit to check how a gRPC client, with or
// without the resilience interceptors, copes with a flaky, slow,
// restarting, hung or overloaded server: in the spirit of
// net/http/httptest, for the tests of your own services, and for staging
// and game days.
//
// It has three parts, independent of each other:
//
//   - Faults: unary and stream server interceptors that you add to your own
//     grpc.Server in tests (grpc.NewServer(faults.ServerOptions()...)). Per
//     method, or for AllMethods, they fail the next n attempts or a seeded
//     fraction of them (InjectNext, InjectFraction) with a Fault: Fail with
//     a code, optionally with a pushback trailer (Fault.WithPushback) or
//     after a delay (Fault.WithDelay); Hang until the attempt's deadline;
//     FailAfterSent or FailAfterReceived to fail a stream after k messages.
//     SetLatency adds a fixed latency or a slow tail; Pause holds attempts
//     until Resume, as a stalled server does; SetCapacity makes the server
//     one of finite capacity (a few workers, a service time, a bounded FIFO
//     queue whose work is done even for callers who gave up, as most
//     servers do), and Work says how much of that work was for nobody.
//     Attempts and AttemptNumbers count the attempts that arrived, by the
//     attempt number the resilience client sends (AttemptMetadataKey);
//     Records tells what each of them carried (metadata, deadline) and how
//     it ended; WaitAttempts waits for them instead of a sleep.
//   - Listener: a net.Listener for that server, on a loopback TCP port
//     (Listen) or in memory (ListenMemory), that Stop and Restart close and
//     reopen on the same address, and whose mode (SetMode) serves, refuses
//     connections, accepts and closes them at once, or accepts them and
//     stays silent (Blackhole).
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
//  1. counted, under its method and its attempt number, and recorded;
//  2. held while its method is paused (Pause), until Resume;
//  3. delayed by the method's latency, if SetLatency set one and the draw
//     says so;
//  4. given the first fault queued by InjectNext that it can take (unary
//     attempts skip FailAfterSent and FailAfterReceived), which uses up one
//     of its n; if none, the fraction set by InjectFraction decides; a
//     fault with a delay (Fault.WithDelay) waits it out first;
//  5. unless the fault ended it (Fail, Hang), served within the method's
//     Capacity, if SetCapacity set one: it waits in the queue for a worker
//     (or, the queue full, ends at once with codes.Unavailable) and takes
//     the service time, whether or not its caller is still there;
//  6. handed to your handler, unless its caller had gone when its work in
//     step 5 ended.
//
// An attempt whose context ends while it waits (steps 2 to 4) ends with
// codes.DeadlineExceeded or codes.Canceled; its record says so. One whose
// context ends in step 5 ends the same way, but only once its work is
// done.
//
// An attempt on a method uses the rules set for that method if any were
// set (and not removed by Clear or Reset), otherwise those set for
// AllMethods.
//
// # Defaults
//
// NewFaults starts with no rules (no faults, no latency, no capacity limit)
// and NewChaos switched off: neither does anything until told to. Randomness
// is a math/rand/v2 PCG source seeded with 0 unless WithSeed says otherwise,
// drawn only when a fraction is strictly between 0 and 1, first for the
// latency, then for the fault, so a sequence of calls sees the same pattern
// on every run. A Fault's status message is "resiliencetest: injected fault"
// unless Fault.WithMessage says otherwise.
// Faults keeps the records of the latest 1000 attempts, so that a server
// injecting faults for hours keeps bounded memory; counts are exact.
//
// # Tests in a testing/synctest bubble
//
// Latency, delays and Chaos wait on timers, and the resilience client's
// backoff, hedge delays and deadlines do too. In a testing/synctest bubble
// those timers use fake time, which jumps ahead whenever every goroutine of
// the bubble waits: an hour of latency passes at once and elapsed times are
// exact, so a test can assert that a retry came exactly 250 ms later.
// Real sockets do not work in a bubble; serve on ListenMemory instead of
// Listen, and create the Listener, the server and the client inside the
// bubble:
//
//	synctest.Test(t, func(t *testing.T) {
//		lis := resiliencetest.ListenMemory()
//		srv := grpc.NewServer(faults.ServerOptions()...)
//		// register your service, go srv.Serve(lis), t.Cleanup(srv.Stop)
//		conn, err := grpc.NewClient(lis.Target(),
//			grpc.WithContextDialer(lis.DialContext),
//			grpc.WithTransportCredentials(insecure.NewCredentials()))
//		…
//	})
//
// WaitAttempts and synctest.Wait then replace every sleep a test would
// otherwise need.
//
// # Errors
//
// Bad arguments (a negative count, latency or message count, a fraction
// that is NaN or outside [0, 1], codes.OK as a fault code, a malformed
// method name) are reported when they are given, by an error that wraps
// ErrInvalidConfig and names the function and the field. Nothing panics later.
//
// # Concurrency
//
// Faults, Listener and Chaos are safe for concurrent use, and
// can be reconfigured while calls run; a change applies to the attempts
// that reach the changed step afterwards. Counts are exact under concurrent
// calls.
package resiliencetest
