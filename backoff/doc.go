// Package backoff provides pure delay policies for retry loops: a capped
// exponential backoff with jitter, and a constant delay. It has no
// dependency on gRPC and performs no waiting itself; callers ask a [Policy]
// how long to wait and sleep (or arm a timer) themselves.
//
// # Model
//
// Retries are numbered from 1: retry n is the wait before attempt n+1, so
// retry 1 is the delay between the first and the second attempt. For an
// [Exponential] policy built from a [Config] the delay before retry n is
//
//	d(n)  = min(MaxDelay, BaseDelay × Multiplier^(n−1))
//	delay = d(n) × (1 − Jitter × r)
//
// where r is drawn uniformly from [0, 1) by the random source (see
// [WithRandom]). Jitter therefore only ever shortens a delay: with Jitter 0
// the delay is exactly d(n), with Jitter 0.2 it lies in (0.8·d(n), d(n)], and
// with Jitter 1 ("full jitter") it lies in (0, d(n)]. A delay never exceeds
// MaxDelay. The computation is done in float64 and saturates at MaxDelay
// before converting back to a [time.Duration] (truncated to whole
// nanoseconds), so huge retry numbers, up to math.MaxInt, and a
// Multiplier^(n−1) that overflows to +Inf still yield MaxDelay rather than
// an overflowed or negative duration. Retry numbers below 1 are treated as 1.
//
// # Configuration convention
//
// The configuration structs of this module (backoff.Config, budget.Config,
// breaker.Config) share one convention:
//
//   - a zero field means the documented default, so Config{} is the default
//     backoff and a Config names only what it changes;
//   - a negative, NaN, ±Inf or out-of-range value is an error naming the
//     field and the value, never silently replaced;
//   - [Config.Validate] reports every such error at once, joined with
//     errors.Join, each wrapping [ErrInvalidConfig];
//   - [DefaultConfig] returns, as a fresh value, the configuration a zero
//     Config stands for; it is the one place the defaults live.
//
// [NewExponential] applies the same rule: zero fields take their defaults,
// and [Exponential.Config] reports the values in use.
//
// # Defaults
//
// BaseDelay 50ms, Multiplier 2, MaxDelay 2s and Jitter 0.2, giving roughly
// 50ms, 100ms, 200ms, 400ms, 800ms, 1.6s, 2s, 2s, ... (each reduced by up to
// 20% at random). The default random source is math/rand/v2's top-level
// Float64.
//
// Because zero means the default, two settings whose natural spelling
// would be a zero have their own: [NoJitter] turns jitter off (a valid
// Jitter so small that the formula leaves every delay unchanged, not a
// negative sentinel, which would be an invalid value), and retrying with no
// delay at all is the policy [Constant](0), since an Exponential whose
// BaseDelay or MaxDelay is 0 would only ever return 0.
//
// # Not grpc-go's backoff.Config
//
// [Config] has the field names of google.golang.org/grpc/backoff.Config,
// the reconnect backoff grpc.WithConnectParams takes, but not its jitter
// model, so values copied from one to the other do not behave the same:
//
//   - here Jitter only shortens a delay, to within (d×(1−Jitter), d], and no
//     delay exceeds MaxDelay; Jitter 0.2 gives delays averaging 0.9·d;
//   - grpc-go multiplies the capped delay by a factor uniform in
//     [1−Jitter, 1+Jitter], so Jitter 0.2 spreads it ±20% around d and a
//     delay may reach 1.2×MaxDelay;
//   - grpc-go's zero Jitter is no jitter; here a zero Jitter is the default
//     (0.2) and no jitter is [NoJitter];
//   - grpc-go's first reconnect waits BaseDelay unjittered and its n-th
//     BaseDelay×Multiplier^n; here retry n waits BaseDelay×Multiplier^(n−1),
//     jittered from the first.
//
// # Concurrency
//
// An [Exponential] is immutable after construction and safe for concurrent
// use by multiple goroutines, provided its random source is (the default
// one is). [Constant] is a plain value and equally safe. Delay does not
// allocate.
package backoff
