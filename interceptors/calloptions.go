package interceptors

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/internal/engine"
)

// CallOption overrides the Middleware's policy for one call, passed with
// the call's other grpc.CallOptions:
//
//	client.CreateOrder(ctx, req, interceptors.CallMaxAttempts(1))
//
// The interceptors remove their own options before invoking, so the
// transport never sees them. The same values serve in WithMethodPolicy.
// An invalid CallOption makes the call fail at once with InvalidArgument
// and a message naming the option. The zero CallOption is invalid.
type CallOption struct {
	grpc.EmptyCallOption
	apply func(*policy)
}

func callOption(f func(*policy)) CallOption { return CallOption{apply: f} }

func callInvalid(p *policy, option, format string, args ...any) {
	if p.Err == nil {
		p.Err = fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...))
	}
}

// CallMaxAttempts sets the number of attempts for this call, counting the
// first one; 1 turns retries off (e.g. for a non-idempotent call).
func CallMaxAttempts(n int) CallOption {
	return callOption(func(p *policy) {
		if n < 1 {
			callInvalid(p, "CallMaxAttempts", "must be >= 1, got %d", n)
			return
		}
		p.MaxAttempts = n
	})
}

// CallNoRetry is CallMaxAttempts(1).
func CallNoRetry() CallOption { return CallMaxAttempts(1) }

// CallPerAttemptTimeout sets the per-attempt timeout for this call; 0
// removes it. Negative values are invalid.
func CallPerAttemptTimeout(d time.Duration) CallOption {
	return callOption(func(p *policy) {
		if d < 0 {
			callInvalid(p, "CallPerAttemptTimeout", "must be >= 0, got %v", d)
			return
		}
		p.PerAttemptTimeout = d
	})
}

// CallTimeout sets the deadline given to this call if its context has none;
// 0 means none. Negative values are invalid.
func CallTimeout(d time.Duration) CallOption {
	return callOption(func(p *policy) {
		if d < 0 {
			callInvalid(p, "CallTimeout", "must be >= 0, got %v", d)
			return
		}
		p.CallTimeout = d
	})
}

// CallRetryCodes replaces the retryable codes for this call.
func CallRetryCodes(cs ...codes.Code) CallOption {
	return callOption(func(p *policy) {
		set, err := engine.RetryCodeSet(cs)
		if err != nil {
			callInvalid(p, "CallRetryCodes", "%v", err)
			return
		}
		p.RetryCodes = set
	})
}

// CallBackoff replaces the backoff policy for this call.
func CallBackoff(b backoff.Policy) CallOption {
	return callOption(func(p *policy) {
		if isNil(b) {
			callInvalid(p, "CallBackoff", "policy is nil")
			return
		}
		p.Backoff = b
	})
}

// CallAttempts stores in *n the number of attempts the call made (attempts
// that reached the transport; attempts refused by a breaker or budget are
// not counted), whether it succeeded or failed. The value is written before
// the interceptor returns. n must not be nil.
func CallAttempts(n *int) CallOption {
	return callOption(func(p *policy) {
		if n == nil {
			callInvalid(p, "CallAttempts", "pointer is nil")
			return
		}
		p.AttemptsOut = n
	})
}

// CallNoBreaker lets the call (or, with WithMethodPolicy, the matching
// methods) bypass the circuit breaker: its attempts are neither refused nor
// counted.
func CallNoBreaker() CallOption {
	return callOption(func(p *policy) { p.NoBreaker = true })
}
