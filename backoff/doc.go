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
// # Defaults
//
// [DefaultConfig] returns the recommended values: BaseDelay 50ms, Multiplier 2,
// MaxDelay 2s and Jitter 0.2, giving roughly 50ms, 100ms, 200ms, 400ms,
// 800ms, 1.6s, 2s, 2s, ... (each reduced by up to 20% at random). There are
// no silent defaults for the fields of a Config passed to [NewExponential]:
// every field is used as given and invalid values are rejected by
// [Config.Validate] with an error wrapping [ErrInvalidConfig] that names the
// field and the offending value. The default random source is
// math/rand/v2's top-level Float64.
//
// # Concurrency
//
// An [Exponential] is immutable after construction and safe for concurrent
// use by multiple goroutines, provided its random source is (the default
// one is). [Constant] is a plain value and equally safe. Delay does not
// allocate.
package backoff
