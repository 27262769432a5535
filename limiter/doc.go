// Package limiter bounds the attempts a client has in flight to one
// downstream: an adaptive concurrency limit that follows the downstream's
// latency, or a fixed one (a bulkhead), with a short queue in front of it
// that never keeps a call past the point where its attempt could still
// finish.
//
// # Model
//
// [Limiter.Acquire] hands out a [Permit] while fewer than the limit are in
// flight; [Permit.Done] gives it back with the attempt's [Outcome]. Over
// the limit a call waits, first come first served, until a permit frees,
// its context ends, or its deadline less the expected round trip (the
// latest moment its attempt could still finish); a call that finds the
// queue full (by default as long as the limit) or no time to wait is
// refused at once. A refusal matches [ErrLimited] (and, after a wait,
// [ErrQueueTimeout]) and carries codes.Unavailable: the caller, or its own
// caller, may try again later.
// A refused call never reached the downstream, so it is nobody's failure:
// the interceptors count it against neither the breaker, nor the retry
// budget, nor the endpoint detector.
//
// # How the limit adapts
//
// The limiter is a client-side Vegas limiter (the delay-based family of
// TCP Vegas and Netflix's concurrency-limits, which recommends a gentle,
// loss- and delay-based limiter on clients). Round trips of answered
// attempts are grouped in windows (at least 20 round trips and twice the
// no-load round trip, at most a second). At the end of each window:
//
//   - the queue this client keeps at the downstream is estimated from
//     Little's law: of the attempts in flight, the share 1 − noLoad/rtt is
//     waiting, not being served. rtt is the window's median round trip and
//     noLoad the least of the windows' lower quartiles over the last 10
//     seconds: a loaded client's own scheduling delays inflate the mean of
//     round trips, and one early answer would pass for the downstream's
//     speed, so neither is used;
//   - above beta = max(10, 6·log10(limit)) queued, the limit takes back
//     half the excess from what was in flight (from no higher than the
//     most that was, and by at most half in one window);
//   - below alpha = max(5, 3·log10(limit)) it rises — by a quarter while
//     nothing queues at all, else by max(1, log10(limit)) — but only if
//     the window used the limit, so that a client below its limit never
//     inflates it — or once the limit last fell 10 seconds ago or more:
//     what the downstream could serve then says little now (it may have
//     restarted, or scaled out);
//   - an attempt that timed out or that the server refused for want of
//     resources (Overloaded) cuts the limit by 10 %, at most once per
//     round trip.
//
// The thresholds keep a short queue at the downstream on purpose: a
// server whose workers never wait for work serves at its capacity, and a
// queue of five to ten costs its callers a few service times, far less
// than the deadlines that make queueing without a limit fatal.
//
// The limit starts at its maximum: nothing is limited until a queue is
// measured, so a client that fans out a hundred calls at once to an idle
// downstream is never held back by a guess. [Limiter.Reset] starts over:
// the interceptors reset a target's limiters when its connection, found
// down, is ready again, since a restarted server is a new one.
//
// Against a server that serves c requests at once, the limit settles near
// c plus a queue of alpha to beta: the server stays busy (goodput at its
// capacity) while its queue, and so the latency of the calls it serves,
// stays short; the excess is refused at the client in microseconds instead
// of queueing at the server until its callers have given up. Failures that
// say nothing about latency (the connection down, a server failing at
// once, the caller gone) are Dropped: measured neither way.
//
// # Watching the limit
//
// [Limiter.Limit], [Limiter.InFlight] and [Limiter.Queued] read the state
// at any time; [Config.OnLimitChange] is told each change of the limit,
// outside the limiter's lock and never concurrently with itself (changes
// made while it runs are merged into one). The interceptors read the
// former for their gauges and log the changes worth knowing through the
// latter.
//
// # Why written here
//
// failsafe-go's adaptivelimiter and platinummonkey/go-concurrency-limits
// are the Go limiters worth using, and both were read for this one. Neither
// fits the engine: failsafe-go's panics on invalid settings, allocates a
// permit per execution and adapts at most once a second (its recent
// window is at least 1 s and 50 samples); go-concurrency-limits allocates
// a listener per acquire and also windows at least a second by default;
// and neither queues with the caller's deadline in mind. A spike is over
// in the seconds those windows take. This limiter adapts every few round
// trips, costs no allocation unless a call has to wait, reads time only
// through the time package (a testing/synctest bubble drives it in tests)
// and is a few hundred lines.
//
// # Defaults
//
// [DefaultConfig]: between 1 and 1000, starting at 1000 (nothing is
// limited until a queue is measured), a queue as long
// as the limit. Config{Fixed: n} is a bulkhead of n with the same queue.
// Configuration follows the module's convention (see package breaker): a
// zero field means its default, an invalid one is an error naming it.
//
// # Concurrency
//
// A Limiter is safe for concurrent use; its state is guarded by one
// mutex, held for a few hundred nanoseconds per permit.
package limiter
