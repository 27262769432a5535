// Package engine is the attempt engine behind package interceptors: one
// retry decision, the gates every attempt passes, and the three drivers
// that act on them.
//
// # Layout
//
// A reader finds each concept in one file:
//
//   - resolve.go and policy.go: a call's Policy, resolved from the layers
//     (defaults, New's settings, the service config entry, the method
//     layers, the call's own settings), cached per method and version.
//   - gates.go: the gates and their one fixed order — ready wait, breaker,
//     target (retry budget and health), fallback, telemetry, endpoint
//     record — each in a gate_*.go file with a start step (per call), a
//     before step (admit, refuse, or wait for a time or an event) and an
//     after step (take the outcome).
//   - outcome.go: how an attempt ended, classified once (internal/outcome:
//     success, server failure, request fault, caller gone, refused); every
//     gate, decide, the fallback and the returned error see that value.
//   - decide.go: decide(policy, situation, event), the only place a retry
//     rule lives: attempt after d, wait for the attempts in flight (hedged
//     calls), or stop with an error, a reason and a kind. The reason
//     belongs to that decision alone.
//   - call.go, unary.go, stream.go, hedge.go: the call's state and the
//     drivers: Unary on the caller's goroutine; Stream until the stream
//     commits, replaying what the caller sent; the hedger, whose first
//     attempt also runs on the caller's goroutine with the hedge delay
//     armed as a timer, so that a call answered in time starts no
//     goroutine, and whose events are handled under one mutex by the
//     goroutine they happen on.
//   - wait.go and conns.go: every wait (backoff, ready wait, breaker wait)
//     is a timer and ends when the caller's context ends or the connection
//     shuts down; a watcher goroutine per connection exists only while
//     calls wait on it, and also runs the reconnect probe.
//   - errors.go: every error the engine builds, and the *Error a failed
//     call returns.
//
// # Defaults
//
// None of its own: the interceptors hand it a Config and the policy
// Layers.
//
// # Concurrency
//
// An Engine is safe for concurrent use and holds no goroutine of its own.
// A call's state is used by one goroutine at a time: the caller's, the
// stream's under its mutex, or the hedger's under its mutex; only the
// gates' before steps of a hedge run outside it, reading the call and
// writing their own attempt.
package engine
