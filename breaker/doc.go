// Package breaker keeps one circuit breaker per key (by default the gRPC
// client's target; the interceptors can key by target and method), with a
// two-step API (Allow, then done with the outcome) so that unary and stream
// attempts report their outcome when they end.
//
// The state machine is the package's own. It was built on
// github.com/sony/gobreaker/v2 until it had to do what gobreaker cannot:
// gobreaker's open Timeout is fixed for a breaker's life, and a breaker
// moves only on its own calls, with no way to open or close it from
// outside, while a Set opens and closes breakers on another member's word
// ([Member.Open], [Member.Close]) for fleets sharing state through Redis,
// grows the open period while probes fail, and ends it at once when a
// connection comes back ([Set.Ready]).
// What was left of gobreaker was a mirror of its state, a 1ns timeout and a
// faked failure to force it open; the package no longer depends on it. Its
// two-step API and its Settings' zero-value convention are kept.
//
// # Model
//
// A [Set] creates a breaker on a key's first [Set.Allow]. Allow either admits
// an attempt, returning a done func the caller must call exactly once with the
// attempt's outcome, or rejects it with an [*OpenError] without touching the
// network: status codes.Unavailable, a message naming the key, and
// errors.Is(err, [ErrOpen]).
//
//   - Closed: every attempt is admitted; outcomes are counted.
//   - Open: every attempt is rejected for the open period: OpenTimeout
//     (default 25ms) after a trip, growing while probes fail (see "Open
//     period and recovery").
//   - Half-open: the first probe goes alone; once it succeeds, up to
//     HalfOpenProbes (default 3) probe attempts are admitted at once,
//     further ones rejected. HalfOpenProbes successes close the
//     breaker; one failed probe reopens it for the next open period. A
//     probe whose outcome is excluded frees its slot (a probe that succeeds
//     does not: a half-open period admits at most HalfOpenProbes probes
//     that count).
//
// Every transition starts a new generation. Outcomes of attempts admitted
// in an earlier generation are ignored: an attempt that began while closed
// and ends while half-open does not decide the probe, and a stale probe that
// ends excluded frees no slot of a later half-open period.
//
// # What counts
//
// Each outcome is a success, a failure or excluded ([DefaultIsFailure],
// [DefaultIsExcluded]; replace them with [Config.IsFailure] and
// [Config.IsExcluded]):
//
//   - failure (the server or the path to it is in trouble): Unavailable,
//     DeadlineExceeded as a gRPC status (an attempt timeout, or a deadline the
//     server sent), ResourceExhausted, Internal, Unknown, DataLoss, and errors
//     without a gRPC status;
//   - success (the server answered): nil, io.EOF, and the codes that describe
//     the request rather than the server: InvalidArgument, NotFound,
//     AlreadyExists, PermissionDenied, Unauthenticated, FailedPrecondition,
//     Aborted, OutOfRange, Unimplemented;
//   - excluded (the caller gave up; says nothing about the server): a plain
//     context.Canceled or context.DeadlineExceeded, which the interceptor
//     passes (ctx.Err()) when the caller's context ended, and codes.Canceled.
//     Excluded outcomes count neither way: they add no volume to the window
//     and neither extend nor break a run of failures.
//
// A half-open breaker counts the probes it admitted less those that ended
// excluded, so a cancelled probe's slot is given back.
//
// # Trip rule
//
// A closed breaker opens when, after a failure, either rule holds:
//
//   - window rule: in the rolling window of Window (10s) kept in Buckets (10)
//     one-second buckets there are at least MinRequests (50) counted outcomes
//     and at least FailureRatio (70%) of them are failures;
//   - consecutive rule: ConsecutiveFailures (25) failures in a row.
//
// Under independent 30% noise (every attempt fails with probability 0.3) the
// default never opens in practice:
//
//   - the window rule is most exposed when the window just reaches
//     MinRequests, about 5 attempts/s: P(at least 35 of 50 fail) = 6.5e-9, and
//     a union bound over every evaluation gives at most 1.6e-5 false trips per
//     hour of sustained noise at 5/s, 4e-6 at 6/s, 2e-11 at 10/s and below
//     1e-24 from 20/s up (the window then holds 180 or more outcomes);
//     below 5/s the window never holds 50 outcomes and the rule cannot fire;
//   - the consecutive rule has, per attempt, probability 0.7 x 0.3^25 = 5.9e-14
//     of completing a run of 25: one false trip per ~500 years at a sustained
//     1000 attempts/s.
//
// For comparison, gobreaker's own default (more than 5 consecutive failures)
// trips with probability 0.7 x 0.3^6 = 5e-4 per attempt, within minutes at
// 10 attempts/s, and a 50%-of-20 window rule trips in 4.8% of full windows;
// the tests show both opening under the noise the default survives.
//
// Under a full outage (every attempt fails) a closed breaker opens after at
// most ConsecutiveFailures = 25 failed attempts, whatever the rate and
// whatever the window held before: 25s at 1 attempt/s, 2.5s at 10/s, 0.25s at
// 100/s. A partial outage with 70% or more of attempts failing opens through
// the window rule within about a Window once the rate is 5 attempts/s or more
// (the tests check 90% failing at 20/s opens within 10s). Failure rates below
// 70% are left to retries: a breaker is for outages, not for degradation.
//
// Set MinRequests or ConsecutiveFailures to math.MaxUint32 to switch a rule
// off.
//
// # Open period and recovery
//
// A breaker that trips stays open for OpenTimeout (25ms); each probe that
// fails reopens it for OpenMultiplier (2) times longer, up to
// MaxOpenTimeout (100ms): 25, 50, 100, 100, ... ms. Every period is
// shortened at random by up to OpenJitter (10%) of itself, drawn from Rand
// (a source of the Set's own unless given), so that breakers that opened
// together drift apart instead of probing in lockstep; the cap is never
// exceeded. Closing starts the schedule over. An opening on the fleet's
// word ([Member.Open]) lasts what the fleet says and counts as one of the
// schedule's openings. A Config that sets only a long OpenTimeout (above
// MaxOpenTimeout) keeps it as a fixed period, as before the schedule.
//
// [Set.Ready] ends an open period at once, for the code that sees a
// connection that was down become ready: a restarted server then gets its
// probe as soon as it accepts connections. The schedule's growth is kept:
// if that probe fails, the next period is the longer one.
//
// Why these defaults:
//
//   - A dead downstream gets one probe per open period when it fails at
//     once (a refused connection, Unavailable): at the cap about 1/95ms =
//     10.5 attempts/s per client, whatever the client's call rate, after
//     the ConsecutiveFailures that opened the breaker and the 3 probes of
//     the ramp (the tests count 10 to 11 attempts in every second at 50,
//     100 and 1000 calls/s). A downstream that fails slowly, each probe
//     taking L to fail while calls keep coming, still gets one probe per
//     period, as the first probe goes alone: at most 1/(95ms + L). Through
//     redisbreaker only the lease holder probes, so a fleet sends about
//     10 attempts/s in all (its tests: 9.5/s for 5 members at 100 calls/s
//     each, where 5 local breakers send about 50).
//   - A downstream that heals gets a probe at most one period later: within
//     100ms plus the wait for the next call, 50ms on average (the tests,
//     200 random healing times at 1000 calls/s: mean 46ms, max 96ms; a
//     fleet through Redis: 77 to 97ms).
//   - A longer cap trades the one for the other: MaxOpenTimeout 1s sends a
//     dead downstream about 1 attempt/s and notices recovery within 1s.
//   - The trip rule is unchanged, so 30% noise opens the breaker no more
//     often than computed above. Should it open falsely, it costs little: a
//     half-open period closes only if its 3 probes succeed (0.7^3 = 34%),
//     so a false opening lasts 1/0.34 = 2.9 open periods on average, about
//     0.18s of refusals with these defaults (the tests: 0.18s over 300
//     runs) against about 15s with the fixed 5s OpenTimeout this package
//     had before.
//
// Chains of services pay the probe delay once per hop. When caller → A → B
// and B's downstream fails, A's breaker for B opens too (B's refusals are
// Unavailable), and a probe reaches the downstream only when every breaker
// on the way is past its open period at that moment: the outer probe may
// find the inner breaker still in the period its last refusal began. With
// the defaults (calls every millisecond, 200 random healing times) the
// caller's first success after the downstream heals comes: through one
// breaker, mean 46ms, max 96ms; through two, mean 75ms, 90th percentile
// 163ms, max 189ms. Each further hop can add up to one more period. Longer
// inner periods would lengthen this; shorter ones would cost more attempts
// on a dead downstream.
//
// # Configuration convention
//
// The configuration structs of this module (backoff.Config, budget.Config,
// breaker.Config) share one convention:
//
//   - a zero field means the documented default, so Config{} is the default
//     breaker and a Config names only what it changes (a nil func field
//     means the default func: DefaultIsFailure, DefaultIsExcluded, no hook);
//   - a negative, NaN, ±Inf or out-of-range value is an error naming the
//     field and the value, never silently replaced;
//   - [Config.Validate] reports every such error at once, joined with
//     errors.Join, each wrapping [ErrInvalidConfig];
//   - [DefaultConfig] returns, as a fresh value, the configuration a zero
//     Config stands for; it is the one place the defaults live.
//
// [NewSet] applies the same rule: zero fields take their defaults. No field
// loses a setting to it: a zero Window, OpenTimeout or probe count would
// make no working breaker, and "never" is math.MaxUint32 (for the counts)
// rather than 0. A jitter of zero is spelled backoff.NoJitter, as in
// package backoff.
//
// # Eviction
//
// A Set holds at most MaxKeys (10,000) breakers, about 0.4 KB each (with a
// key like "dns:///svc-1.example:443"; TestEvictionBoundsMemory logs it).
// When a new key would exceed the cap, the Set samples 8 breakers (Go
// randomises map iteration) and evicts the least recently used one that has no attempt in
// flight and is not inside its open period; if up to 64 samples find none,
// it evicts the least recently used one sampled anyway, so the cap is a hard
// bound. Breakers unused for IdleTimeout (10 minutes) with nothing in flight
// and no open period running are removed lazily, when a new key is added (at
// most every IdleTimeout/4, one pass over the Set). An evicted breaker that
// was not closed reports a transition to closed, the state its key's next
// breaker starts in. Attempts still in flight on an evicted breaker may call
// done safely; their outcomes are dropped.
//
// # Waiting for a probe slot
//
// [Set.AllowWait] is Allow for callers that can wait: a half-open breaker
// whose probe slots are all taken makes it wait, within its context, until a
// probe ends or the breaker changes state, then ask again. No goroutine is
// started; the waiter blocks on a channel the breaker closes.
//
// # State hook and reading state
//
// [Set.State] returns a key's state (closed for keys the Set does not hold).
// [Config.OnStateChange] is told (key, from, to) for every transition. A
// transition happens under the breaker's lock, so the Set only queues it
// there and delivers it once the locks are released; the hook may therefore
// call back into the Set. Hooks are delivered in the order the
// transitions happened and never concurrently with each other: the Allow, done
// or State call that caused a transition delivers it before returning, unless
// another goroutine is delivering at that moment, in which case that goroutine
// delivers it too (no goroutine is started per call). Transitions the hook
// itself causes are delivered after it returns. A panic in the hook reaches
// the caller that was delivering it; later transitions are still delivered.
//
// # Time
//
// The open period and the rolling window run on time.Now's monotonic clock;
// nothing is injected. Tests run the Set in a testing/synctest bubble, whose
// fake clock time.Now and time.Sleep follow (the package's own tests do).
// No timer or goroutine runs: an open period ends for the first Allow or
// State that finds it over, or for Ready.
//
// # Sharing breakers across a fleet
//
// [Config.Shared] connects the Set to a [Shared], which shares its breakers
// with other processes' Sets (module
// github.com/grpc-resilience/resilience/redisbreaker does it on Redis). The
// call path stays local: Allow and done never wait for the Shared; it
// reads the Set's votes and hands back the fleet's from its own goroutines,
// through a [Member]. A degraded Shared (its store unreachable) leaves
// every breaker purely local, as without one.
//
// The fleet opens a key on its members' votes, not on the sum of their
// outcomes. Summed, a member that calls ten times as often counts ten
// times, and one member whose own path is broken (a bad route, a dead
// sidecar, its own server failing) opens the breaker for every member:
// a shared breaker would be less safe than local ones. Each member votes
// on each key it calls ([Vote]):
//
//   - failing, while its own outcomes meet the trip rule with the
//     thresholds shared out over the quorum Q: ceil(ConsecutiveFailures/Q)
//     failures in a row, at least 4, or ceil(MinRequests/Q) outcomes in its
//     own window, at least 25, FailureRatio of them failures (never more
//     than the whole rule);
//   - abstain, while its breaker is open on its own trouble (below): its
//     path failing where the others' did not says nothing about theirs;
//   - healthy otherwise.
//
// Among the n members that called the key recently (redisbreaker: within
// the last one to two buckets of Window, 1-2s; abstaining members not
// counted), the fleet opens when more than Quorum x n vote failing, and
// all n at most: with the default Quorum 0.5, a majority (1 of 1, 2 of 2,
// 2 of 3, 3 of 4 or 5, 11 of 20). Each member counts once, whatever its
// call rate. A member whose vote changes has it published at once and reads
// the others' in the same round trip; the member that completes the quorum
// opens its breaker for its open period and the Shared tells the others,
// which open for the same. A lone caller is its own quorum: the whole rule,
// as before sharing.
//
// A member whose own outcomes meet the whole trip rule without a quorum
// behind it opens its own breaker only ([Transition.Own], [Local.Own]). It
// protects itself as a local breaker does, on its own schedule: its probes
// take no lease, a failed probe reopens only itself, the fleet's closing
// leaves it to its own probes. If the downstream then fails for the others
// too, the fleet opens around it; it stays on its own schedule. Without a
// view of the fleet (none yet for a new key, none within one bucket, the
// Shared degraded), every trip is the member's own.
//
// On the fleet's schedule a half-open breaker admits probes only while it
// holds the fleet's lease, which members on their own trouble never take:
// the fleet's probes come from members whose path worked when the fleet
// opened, HalfOpenProbes at a time, and a failed one reopens the fleet.
//
// Why these defaults, for fleets of 2, 5 and 20 members (every member at
// the same rate; the outage figures are also what redisbreaker's tests
// measure on a real Redis, at 100 attempts/s for the whole fleet):
//
//	members  quorum  each member's share    outage: attempts (time)     false openings per hour,
//	                 (in a row / window)    shared         local         30% noise, 1-1000 calls/s each
//	   1       1       25 / 50              25 (0.25s)     25 (0.25s)    2e-7 (one local breaker)
//	   2       2       13 / 25              26 (0.26s)     50 (0.50s)    below 2e-7
//	   5       3        9 / 25              45 (0.45s)    125 (1.25s)    below 6e-7
//	  20      11        4 / 25              80 (0.80s)    500 (5.0s)     below 5e-11
//
// In detail:
//
//   - Under a full outage every member reaches its share after share/rate,
//     and the fleet opens then, plus a round trip to the store: n x share
//     attempts in all (every member fails at once), against 25 per member
//     for local breakers. The share falls as the quorum grows, to 4 from
//     fleets of 12 up: 20 members pay 80 attempts, where summing the
//     fleet's failures opened after about 25, at the price of opening for
//     any one member's trouble.
//   - A false opening needs Q members in runs of their share at once.
//     Under independent 30% noise a member's last share outcomes all
//     failed with probability 0.3^share (1.6e-7 for 13, 2e-5 for 9, 8e-3
//     for 4); the fleet looks at the quorum at each member's round (every
//     redisbreaker Interval, 100ms) and at each change of vote, and the
//     window's part adds P(at least 70% of 25 outcomes fail) = 2.6e-4 at
//     the rate where a member's window holds 25. A union bound over every
//     such moment gives the last column, the worst over 1 to 1000 calls/s
//     per member: below local breakers' rate for the same fleet (each
//     breaker 0.7 x 0.3^25 per attempt, 2e-7 per hour at 1000 calls/s).
//   - The floors (4 in a row, 25 in the window) keep large fleets from
//     voting on noise: a share of 1 would have 30% noise make a third of
//     any fleet vote failing, and a majority of 50 members would form about
//     a thousand times an hour; with 4, a member votes on noise with
//     probability 0.008 and a majority of 20 or more stays out of reach.
//   - A majority tells the downstream's trouble from a member's: a fault
//     on fewer than half of the paths opens only those members' breakers;
//     one on more than half opens the fleet. A smaller Quorum opens sooner
//     on fewer votes (0.2 in a fleet of 5: any 2 members, 13 failures each)
//     and lets fewer broken paths open everyone; 1 waits for every member,
//     so one member's healthy path keeps the fleet closed. The rule cannot
//     tell a failing downstream from a majority of paths failing together
//     (a shared proxy, a zone): then the fleet opens, as it should for
//     that majority.
//   - One member broken, the others under noise: it abstains once its own
//     breaker opens, and the rest form a fleet of n-1, with the figures of
//     that size (a pair's healthy member needs the whole rule again).
//     Until it opens (its 25 failures, 0.32s after its vote at 50 calls/s),
//     its failing vote counts: one vote less for the others to find.
//
// # Concurrency and cost
//
// A Set is safe for concurrent use. Each key has its own lock; the key map is
// read-locked for lookups and write-locked only to add or evict keys.
// A closed breaker's Allow plus done(nil) reads the clock once (in done)
// and allocates nothing (the done func is shared by all attempts of one
// breaker state); a rejection allocates nothing either (the *OpenError is
// shared per key and state; treat it as read-only). On a shared 2-vCPU VM,
// 10 runs interleaved with the gobreaker-based version this package
// replaced, Allow plus done(nil) took 99ns against 229ns (0.43) and a
// rejection 93ns against 117ns (go test -run '^$' -bench . -benchmem
// -count 10 ./breaker/, compared with benchstat; the figures vary by 30%
// or more between runs there).
package breaker
