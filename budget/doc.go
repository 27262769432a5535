// Package budget implements a retry budget: a token bucket, one per
// downstream, that lets retries through only while enough recent attempts
// succeeded, so that retries cannot turn an outage into a retry storm.
//
// # Model
//
// The semantics are those of gRPC's retry throttling (gRFC A6,
// "retryThrottling" in the service config), so the numbers mean what they
// mean there: the bucket starts full with MaxTokens tokens; every attempt
// that fails with a retryable code (or with server pushback) takes one
// token, every successful attempt adds TokenRatio tokens, and the count
// stays within [0, MaxTokens]. A retry is allowed only while the count is
// above MaxTokens/2. First attempts are never throttled.
//
// # Configuration convention
//
// The configuration structs of this module (backoff.Config, budget.Config,
// breaker.Config) share one convention:
//
//   - a zero field means the documented default, so Config{} is the default
//     budget and a Config names only what it changes;
//   - a negative, NaN, ±Inf or out-of-range value is an error naming the
//     field and the value, never silently replaced;
//   - [Config.Validate] reports every such error at once, joined with
//     errors.Join, each wrapping [ErrInvalidConfig];
//   - [DefaultConfig] returns, as a fresh value, the configuration a zero
//     Config stands for; it is the one place the defaults live.
//
// [New] applies the same rule: zero fields take their defaults. Neither
// field has a meaningful zero of its own (an empty bucket or a ratio of 0
// would stop retries for good), so the rule costs no setting. A Config that
// mirrors gRFC A6's retryThrottling always sets both fields, as A6 requires.
//
// # Defaults and why
//
// The default (a zero Config, or [DefaultConfig]) is MaxTokens 100,
// TokenRatio 1: each retry must be paid for
// by a success. Under independent 30 % failures with 3 attempts, a call
// fails about 0.42 attempts and succeeds 0.97 times on average, so the
// bucket stays near full: over 20 seeds × 20,000 simulated calls it never
// fell below 85 tokens, far from the threshold of 50, and no retry was
// throttled (TestDefaultNeverThrottlesUnder30PercentNoise). Under a full
// outage nothing refills it: after 50 failed attempts retries stop, and from
// then on every call makes exactly one attempt (1.0 attempts per call
// instead of MaxAttempts; 1.03 averaged over the first 1,000 calls), until
// successes refill the bucket. A smaller bucket (20) did throttle now and
// then under the same noise. gRPC's own example values (10, 0.1) throttle
// retries already under 30 % noise, since they let only one retry through
// per ten successes.
//
// # Concurrency
//
// A Budget is safe for concurrent use; its operations are lock-free and do
// not allocate.
package budget
