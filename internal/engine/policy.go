package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/fallback"
)

// Policy governs one call. The interceptors resolve it per call from the
// Middleware's defaults, the method's policy and the call's options; the
// engine only reads it.
type Policy struct {
	// MaxAttempts bounds the attempts of the call, the first included.
	MaxAttempts int
	// RetryCodes are the codes another attempt may follow.
	RetryCodes CodeSet
	// Backoff gives the delay before each retry (not before hedges).
	Backoff backoff.Policy
	// PerAttemptTimeout bounds each attempt (streams: the time to commit);
	// 0 means none.
	PerAttemptTimeout time.Duration
	// CallTimeout is the deadline given to a call whose context has none;
	// 0 means none.
	CallTimeout time.Duration
	// Hedge, if set, hedges the call (unary calls only).
	Hedge *Hedge
	// NoBreaker lets the call bypass the circuit breaker.
	NoBreaker bool
	// Fallback, if set, answers unary calls the downstream failed.
	Fallback *fallback.Handler
	// AttemptsOut, if set, receives the number of attempts the call made.
	AttemptsOut *int
	// FallbackOut, if set, receives whether a fallback answered the call.
	FallbackOut *fallback.Info
	// Err is a bad per-call setting: the call fails with InvalidArgument
	// before any attempt.
	Err error
}

// Resolver resolves the policy of one call.
type Resolver interface {
	// Resolve fills p, the zero Policy of a new call, for a call of method
	// with the caller's opts. It returns opts without the options the
	// interceptors handle themselves and without grpc.OnFinish, whose
	// functions it returns: they run once, when the call ends.
	Resolve(p *Policy, method string, opts []grpc.CallOption) (rest []grpc.CallOption, onFinish []func(error))
}

// Hedge is a hedging policy: after Delay (or the method's Percentile
// latency, once known) without an answer, another attempt starts while the
// others keep running, up to MaxInFlight at once.
type Hedge struct {
	Delay       time.Duration
	Percentile  float64
	MaxInFlight int
}

// CodeSet is a set of gRPC codes as a bitmask (codes are 0..16).
type CodeSet uint32

// NewCodeSet returns the set of cs.
func NewCodeSet(cs ...codes.Code) CodeSet {
	var s CodeSet
	for _, c := range cs {
		if c < 32 {
			s |= 1 << c
		}
	}
	return s
}

// Has reports whether c is in s.
func (s CodeSet) Has(c codes.Code) bool { return c < 32 && s&(1<<c) != 0 }

// RetryCodeSet validates the codes of a retry-codes setting: not empty,
// never OK, only the codes gRPC defines. Its error says what is wrong; the
// caller names the setting.
func RetryCodeSet(cs []codes.Code) (CodeSet, error) {
	if len(cs) == 0 {
		return 0, errors.New("no codes given")
	}
	for _, c := range cs {
		if c == codes.OK || c > codes.Unauthenticated {
			return 0, fmt.Errorf("cannot retry code %v", c)
		}
	}
	return NewCodeSet(cs...), nil
}

// GRPCBackoff is the backoff grpc-go v1.85 applies to a service config's
// retryPolicy, so that the same JSON waits the same: before retry n (since
// the last server pushback), min(Initial × Multiplier^(n−1), Max),
// multiplied by a random factor in [0.8, 1.2).
type GRPCBackoff struct {
	Initial, Max time.Duration
	Multiplier   float64
}

// String describes b, e.g. "grpc(50ms × 2^(n-1), max 2s, ×[0.8, 1.2))".
func (b *GRPCBackoff) String() string {
	return fmt.Sprintf("grpc(%v × %g^(n-1), max %v, ×[0.8, 1.2))", b.Initial, b.Multiplier, b.Max)
}

// Delay returns the delay before the given retry.
func (b *GRPCBackoff) Delay(retry int) time.Duration {
	cur := min(float64(b.Initial)*math.Pow(b.Multiplier, float64(max(retry, 1)-1)), float64(b.Max))
	cur *= 0.8 + 0.4*rand.Float64()
	if cur >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(cur)
}
