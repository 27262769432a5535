package interceptors

import (
	"log/slog"

	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// Log messages written by the Middleware (see WithLogger).
const (
	LogBreakerOpened   = telemetry.MsgBreakerOpened   // Warn
	LogBreakerHalfOpen = telemetry.MsgBreakerHalfOpen // Info
	LogBreakerClosed   = telemetry.MsgBreakerClosed   // Info
	LogCallGaveUp      = telemetry.MsgGaveUp          // Warn
	LogCallStopped     = telemetry.MsgStopped         // Info
	LogPolicyIgnored   = telemetry.MsgPolicyIgnored   // Warn
	LogLimitFell       = telemetry.MsgLimitFell       // Warn
	LogLimitMinimum    = telemetry.MsgLimitMinimum    // Warn
	LogLimitRecovered  = telemetry.MsgLimitRecovered  // Info
)

// Log attribute keys (see WithLogger).
const (
	LogKeyMethod     = telemetry.LogMethod
	LogKeyTarget     = telemetry.LogTarget
	LogKeyAttempts   = telemetry.LogAttempts
	LogKeyCode       = telemetry.LogCode
	LogKeyReason     = telemetry.LogReason
	LogKeySuppressed = telemetry.LogSuppressed
	LogKeyBreaker    = telemetry.LogBreaker
	LogKeyFrom       = telemetry.LogFrom
	LogKeySetting    = telemetry.LogSetting
	LogKeyLimit      = telemetry.LogLimit
)

// WithLogger sets the logger the Middleware reports to; nil (the default)
// turns logging off. A zero slog.Logger, which has no handler, is
// rejected.
//
// What is logged (messages Log…, attribute keys LogKey…):
//   - a circuit breaker's transitions: opened at Warn (breaker, from), to
//     half-open and closed at Info;
//   - a call that failed after retries, at Warn (method, target,
//     attempts, code): every attempt it was allowed failed, and the
//     caller gets the error;
//   - a failed call whose retries a policy stopped, at Info (the same,
//     and reason: the retry budget, a breaker's refusal of a retry, or
//     the server's pushback): the library shedding load as designed,
//     whose cause is logged (a breaker opening) or alerted on (the budget
//     throttling metric) on its own;
//   - a setting that does not apply to the calls it was given for, at
//     Warn, once per setting, method and target (setting, method, target,
//     reason): hedging on a streaming method (streams are never hedged),
//     endpoint ejection replaced by a service config of the channel's own.
//     The resilience.client.policy.ignored counter counts those calls.
//   - a target's concurrency limit (WithConcurrencyLimit) that fell to
//     half or less of its highest since the last such record (Warn:
//     target, method for limiters keyed by method, limit, from), that
//     reached its minimum (Warn), and that, after either, rose back to
//     twice its lowest since (Info). Moves of fewer than 4 are not
//     logged, and a limit that is not used does not rise: a downstream
//     that recovered while the client sent it little is not reported.
//     These records are rate limited per limiter as call records are per
//     target.
//
// Nothing is logged for calls that succeed, for a failure that was not
// retried (a code that is not retried, MaxAttempts(1)), for calls
// refused by an open breaker before any attempt, or for calls the caller
// cancelled; and nothing is allocated for logging on the happy path. Call
// records are rate limited per target, at most 5 every 10 s; the first
// record after drops reports their number (suppressed). Payloads,
// metadata values and status messages are never logged: a record holds
// the method, the target, counts and the status code.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) error {
		if l != nil && l.Handler() == nil {
			return invalid("WithLogger", "logger has no handler (a zero slog.Logger)")
		}
		c.telemetry.Logger = l
		return nil
	})
}
