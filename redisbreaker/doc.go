// Package redisbreaker shares circuit breakers across a fleet through Redis:
// when one instance learns that a downstream is down, the whole fleet stops
// calling it, and when it recovers the fleet sends it a handful of probes,
// not a handful per instance.
//
// It is a module of its own, so that go-redis never enters the root module's
// dependencies. A [Shared] implements [breaker.Shared]: put it in
// breaker.Config.Shared (interceptors.WithBreaker passes the Config on), one
// Shared per Set, every instance of a service with the same Prefix:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379", ContextTimeoutEnabled: true})
//	sh, err := redisbreaker.New(rdb, redisbreaker.Options{Prefix: "checkout"})
//	...
//	defer sh.Close()
//	cfg := breaker.DefaultConfig()
//	cfg.Shared = sh
//	mw, err := interceptors.New(interceptors.WithBreaker(cfg))
//
// # Model
//
// Nothing is on the call path: Allow and done stay local and allocation-free
// (the Set counts, as it does without sharing). One background goroutine
// runs a round every Interval (100ms): one pipeline that adds the counts
// since the last round to the current bucket, publishes this member's
// failure run, and reads the fleet's buckets back. The Set's trip rule then
// sees the fleet: the window rule on the fleet's window, the consecutive
// rule on the fleet's failures since its last success. A breaker that opens
// sets its open key and publishes the opening on the prefix's pub/sub
// channel, which a second goroutine listens to: the other members open for
// the rest of the open period within milliseconds (about 3ms measured on
// loopback). A member that missed the message (its subscription was down)
// reads the open key in its next round, for every key it has used within a
// Window.
//
// When the open period ends, a half-open breaker admits probes only while it
// holds the fleet's probe lease (SET NX with expiry); the first member to
// ask gets it and runs the HalfOpenProbes probes a local breaker would. If
// they succeed it closes, deletes the open key and publishes the closing,
// and the others close; if one fails it reopens and publishes that. A
// member gives the lease back as soon as it leaves half-open, also when
// another member's opening reopened it. With the breaker's default open
// period (25ms growing to 100ms) the fleet probes a dead downstream about
// 10 times a second in all, not per member, and finds it healed within
// about a period (the tests: 9.5 attempts/s for 5 members, first success
// 65-85ms after healing). A member without the lease answers as a
// half-open breaker whose probes are all out (AllowWait waits for a slot).
// The lease is asked for in the background right after the breaker turns
// half-open, so the first probe waits one round trip to Redis.
//
// The fleet's failure run is the sum of the members' runs, where a member's
// run is its failures since the last success it knows of, its own or (seen
// in a round) another member's. Reading a success elsewhere restarts it, so
// the sum undercounts by at most about one Interval of failures and never
// counts failures that a success separated: under noise the fleet trips no
// more readily than one breaker seeing every attempt would.
//
// # Defaults
//
// Interval 100ms; Timeout 1s per round; ProbeLease 5s; MaxBackoff 5s. Under
// a full outage the fleet has opened after about ConsecutiveFailures
// failures plus what the fleet sends in one to two Intervals (the tests: 50
// failed attempts at 100 attempts/s across 5 members, against 125 for five
// local breakers).
//
// # Redis keys, commands and TTLs
//
// Every key of one breaker carries the hash tag {<Prefix>:<breaker key>}, so
// a Cluster keeps them in one slot. Nothing but counts, states, instance
// names and timestamps is stored:
//
//	{P:K}:b:<n>    hash, bucket n (unix time / (Window/Buckets)): fields s and f
//	               (HINCRBY: the fleet's successes and failures), r:<instance>
//	               (HSET: that member's failure run); PEXPIRE Window + 2 buckets
//	{P:K}:open     string, the opener's instance; SET PX the open period; DEL on closing
//	{P:K}:lease    string, the probe holder's instance; SET NX PX ProbeLease;
//	               released by a compare-and-delete EVAL on closing or reopening
//	P:events       pub/sub channel: "o <ms> <instance> <key>" (opened for ms),
//	               "c 0 <instance> <key>" (closed)
//
// A round also reads HGETALL of the current and previous bucket (the older
// ones once each, after they are over) and PTTL of the open key, for each
// closed key used within a Window: about 5 commands per key per member per
// Interval, in one pipeline.
//
// # Failure modes
//
// Redis failing is not the users' outage. When a round fails or times out
// (Redis down, slow, unreachable) or the subscription is down, the member
// runs degraded: its Set drops the fleet's counts and acts as a local
// breaker (half-open breakers probe without a lease), OnDegraded(true, err)
// is called and the resilience.redisbreaker.degraded gauge reads 1. No call
// ever waits on Redis. The goroutine retries with a jittered backoff (from
// Interval doubling to MaxBackoff, each wait drawn in [w/2, w]); the first
// round that succeeds with the subscription up ends it (OnDegraded(false,
// nil)). Redis restarted with its data lost loses the fleet's window and
// leases; the members carry on from their own counts, and the counts they
// subtract as their own are clamped so nothing goes negative. Counts of a
// round that failed after Redis executed part of it may be published again
// (at least once). A lease holder that goes away blocks the fleet's probes
// for at most ProbeLease; two members may then probe once each other's
// lease expired mid-probe, so the fleet sees at most 2 x HalfOpenProbes
// probes in that case, and HalfOpenProbes otherwise (plus any member that
// is degraded at the time, which probes locally).
//
// The round's Timeout is a context deadline, which go-redis honours only
// with ContextTimeoutEnabled set on the client; otherwise the client's read
// and write timeouts bound a round.
//
// # Metrics
//
// With Options.MeterProvider set, under the attribute
// resilience.redisbreaker.prefix:
//
//	resilience.redisbreaker.degraded        gauge      1   1 while running local-only
//	resilience.redisbreaker.errors          counter    {error}    failed rounds
//	resilience.redisbreaker.round.duration  histogram  s   successful rounds
//	resilience.redisbreaker.published       counter    {message}  openings and closings published
//
// # Concurrency and cost
//
// A Shared is safe for concurrent use and serves one Set. Its two
// goroutines start in New and stop in Close, which does not close the Redis
// client. The happy path costs what the local breaker costs (see the
// module's README for figures); a rejection is local too.
package redisbreaker
