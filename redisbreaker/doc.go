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
// (the Set counts, as it does without sharing). The fleet opens a key on a
// quorum of its members' votes (see package breaker, "Sharing breakers
// across a fleet", for the rule and its defaults): each member votes
// healthy, failing (its own outcomes meet its share of the trip rule) or
// abstain (its breaker open on its own trouble), and the fleet opens when
// a majority of the members that called the key recently vote failing,
// each counted once whatever its call rate. One member's broken path opens
// only that member's breaker.
//
// One background goroutine runs a round every Interval (100ms): one
// pipeline that writes this member's vote on every key it called since
// the last round into the current bucket (Window/Buckets, 1s by default)
// and reads the fleet's votes back from the current and the previous
// bucket. A vote that changes is written at once, in a round of its own
// that reads the others' too, so the vote completing a quorum opens the
// fleet within a round trip to Redis. The member that sees the quorum
// opens its breaker, sets the key's open key and publishes the opening on
// the prefix's pub/sub channel, which a second goroutine listens to: the
// other members open for the rest of the open period within milliseconds
// (about 3ms measured on loopback). A member that missed the message (its
// subscription was down) reads the open key in its next round, for every
// key it called within the last two buckets.
//
// When the open period ends, a half-open breaker admits probes only while
// it holds the fleet's probe lease (SET NX with expiry); the first member
// to ask gets it and runs the HalfOpenProbes probes a local breaker would.
// If they succeed it closes, deletes the open key and publishes the
// closing, and the others close; if one fails it reopens and publishes
// that. A member gives the lease back as soon as it leaves half-open, also
// when another member's opening reopened it. A member on its own trouble
// never asks for the lease: it probes on its own schedule, its failures
// reopen only itself, and nothing it does is published. With the
// breaker's default open period (25ms growing to 100ms) the fleet probes a
// dead downstream about 10 times a second in all, not per member, and
// finds it healed within about a period (the tests: 9.5 attempts/s for 5
// members, first success 77-97ms after healing, also with one member's
// path still broken). A member without the lease answers as a half-open
// breaker whose probes are all out (AllowWait waits for a slot). The lease
// is asked for in the background right after the breaker turns half-open,
// so the first probe waits one round trip to Redis.
//
// # Defaults
//
// Interval 100ms; Timeout 1s per round; ProbeLease 5s; MaxBackoff 5s. A
// Set whose bucket (Window/Buckets) is not longer than Interval is refused
// at NewSet: a member's view of the fleet holds for one bucket. Under a
// full outage a fleet of 5 opens after 45 attempts in all (9 per member),
// against 125 for five local breakers; see package breaker for fleets of 2
// and 20 and for false openings under noise.
//
// # Redis keys, commands and TTLs
//
// Every key of one breaker carries the hash tag {<Prefix>:<breaker key>}, so
// a Cluster keeps them in one slot. Nothing but votes, instance names and
// timestamps is stored:
//
//	{P:K}:v:<n>    hash, bucket n (unix time / (Window/Buckets)): field
//	               v:<instance> = "<h|f|a> <unix ms>", that member's vote
//	               (healthy, failing, abstain) and when it cast it (HSET);
//	               PEXPIRE 3 buckets
//	{P:K}:open     string, the opener's instance; SET PX the open period; DEL on closing
//	{P:K}:lease    string, the probe holder's instance; SET NX PX ProbeLease;
//	               released by a compare-and-delete EVAL on closing or reopening
//	P:events       pub/sub channel: "o <ms> <instance> <key>" (opened for ms),
//	               "c 0 <instance> <key>" (closed)
//
// A round writes HSET and PEXPIRE for each key called since the last one,
// and reads HGETALL of the current and the previous bucket and PTTL of the
// open key for each key called within two buckets: at most 5 commands per
// key per member per Interval, in one pipeline. A failing vote written
// before the breaker last closed counts as healthy (the last episode's).
//
// # Failure modes
//
// Redis failing is not the users' outage. When a round fails or times out
// (Redis down, slow, unreachable) or the subscription is down, the member
// runs degraded: its Set drops the fleet's votes and acts as a local
// breaker (every trip its own, half-open breakers probing without a
// lease), OnDegraded(true, err)
// is called and the resilience.redisbreaker.degraded gauge reads 1. No call
// ever waits on Redis. The goroutine retries with a jittered backoff (from
// Interval doubling to MaxBackoff, each wait drawn in [w/2, w]); the first
// round that succeeds with the subscription up ends it (OnDegraded(false,
// nil)). Redis restarted with its data lost loses the fleet's votes and
// leases; the members' next rounds write their votes again. Until the
// others' have (about an Interval), a member sees fewer callers, possibly
// none: a smaller quorum of larger shares, down to its own whole rule.
// A vote of a round that failed after Redis executed part of it is written
// again in the next. A lease holder that goes away blocks the fleet's probes
// for at most ProbeLease; two members may then probe once each other's
// lease expired mid-probe, so the fleet sees at most 2 x HalfOpenProbes
// probes in that case, and HalfOpenProbes otherwise (plus any member that
// is degraded at the time, which probes locally).
//
// The round's Timeout is a context deadline, which go-redis honours only
// with ContextTimeoutEnabled set on the client; otherwise the client's read
// and write timeouts bound a round.
//
// The client may be a *redis.Client, a *redis.ClusterClient or a
// Sentinel-backed failover client (redis.NewFailoverClient). The tests run
// the fleet on each: a Cluster of three masters (each breaker's keys in
// one slot, different breakers on different masters), and a primary with
// a replica and three Sentinels, the primary killed mid-run: the members
// run degraded until the replica is promoted (about 2s) and the client
// finds it, then share again.
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
