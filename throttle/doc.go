// Package throttle implements client-side adaptive throttling (Google SRE
// book, "Handling Overload"): a client that sees a downstream accept too
// few of its requests refuses some of them itself, so that the downstream
// gets the load it can serve and the client stops spending its own work,
// and the downstream's, on requests that would fail.
//
// # Model
//
// Over a rolling window (by default 2 seconds, in 20 steps) the Throttle
// counts requests (every request asked of it, those it refused included)
// and accepts (requests the downstream answered). A request it refused
// counts at once, one it let through when it ends ([Throttle.Done]): a
// burst of requests in flight, such as the calls released when a
// restarted downstream is back, is not read as requests not accepted.
// [Throttle.Allow] refuses
// a request with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// (K = 2 by default): nothing is refused while the downstream accepts at
// least half of the requests; when it accepts none, nearly everything is.
// Because the window is seconds long, not minutes, the share let through
// rises as soon as accepts come back (they count K times) and failures
// leave the window within its length.
//
// Refused requests count as requests, so a downstream that accepted
// nothing for a while would be let through again only as fast as the few
// requests still let through come back accepted. The probability is
// therefore capped (MaxProbability, 0.8 by default, as Envoy's admission
// control): throttling is for a downstream that partly fails. One that is
// gone is the circuit breaker's, which the requests still let through
// open: the interceptors ask the breaker first (an open breaker's refusals
// never reach the Throttle), let a half-open breaker's probes through, and
// [Throttle.Reset] the Throttle when a probe succeeds or when the target's
// connection, found down, is ready again (a restart).
//
// The interceptors count as accepted every attempt a server answered (a
// success, an error about the request, or a failure or refusal of its own
// downstream passed on: in a chain, only the hop next to the trouble
// throttles), as not accepted a server's own failure, and neither an
// attempt whose caller gave up, one that found no connection, or one a
// breaker or limiter refused before it. A refusal matches
// [ErrThrottled] and carries codes.Unavailable; it is nobody's failure.
//
// # Defaults
//
// [DefaultConfig]: K 2, a 2 s window, at most 0.8. Configuration follows the module's
// convention (see package breaker).
//
// # Concurrency
//
// A Throttle is safe for concurrent use; one mutex guards its counts. It
// reads time through the time package only (a testing/synctest bubble
// drives it in tests) and takes its random draws from the caller.
package throttle
