// Package engine is the attempt engine behind package interceptors: one
// retry decision and the three drivers that act on it.
//
// # Model
//
//   - decide(policy, situation, outcome) is the only place a retry rule
//     lives: it returns "attempt after d", "wait for the attempts in
//     flight" (hedged calls) or "stop with this error and reason". It is
//     pure and never waits. Caller deadline, max attempts, retryable codes,
//     breaker refusals, the retry budget and server pushback (>= 0 delays,
//     < 0 stops) apply identically to unary calls, streams before commit
//     and hedges.
//   - call.startAttempt and call.endAttempt surround every attempt: the
//     ready wait, the breaker (breaker.Set.AllowWait), the per-attempt
//     context and telemetry before; breaker, budget, target health and
//     pushback after.
//   - The drivers only run attempts and wait: Unary on the caller's
//     goroutine; Stream until the stream commits, replaying what the
//     caller sent; the hedger, whose first attempt also runs on the
//     caller's goroutine with the hedge delay armed as a timer, so that a
//     call answered in time starts no goroutine, and whose events are
//     handled under one mutex by the goroutine they happen on.
//   - Every wait (backoff, ready wait, breaker wait) is a timer and ends
//     when the caller's context ends or the connection
//     shuts down; a watcher goroutine per connection exists only while
//     calls wait on it, and also runs the reconnect probe.
//   - A unary call with a fallback (package fallback) saves successful
//     replies and lets the fallback answer failures the downstream is to
//     blame for, Margin before the deadline at the latest.
//
// # Defaults
//
// None of its own: the interceptors hand it a Config and resolve each
// call's Policy (through a Resolver, in place, so that the happy path costs
// one allocation).
//
// # Concurrency
//
// An Engine is safe for concurrent use and holds no goroutine of its own.
// A call's state is used by one goroutine at a time: the caller's, the
// stream's under its mutex, or the hedger's under its mutex.
package engine
