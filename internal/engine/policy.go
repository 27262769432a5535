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

// Policy governs one call. The engine resolves it per call (see Layers)
// from the Middleware's defaults, the service config, the method's policy
// and the call's own settings; the drivers only read it.
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

	// The outputs of one call, set by its own settings only.

	// AttemptsOut, if set, receives the number of attempts the call made.
	AttemptsOut *int
	// FallbackOut, if set, receives whether a fallback answered the call.
	FallbackOut *fallback.Info
	// OnFinish are the call's grpc.OnFinish functions: they run once, when
	// the call ends, never once per attempt.
	OnFinish []func(error)
	// Err is a bad per-call setting: the call fails with InvalidArgument
	// before any attempt.
	Err error
}

// Setting is one named setting of the call policy. The interceptors'
// PolicyOption embeds it, which makes a PolicyOption a grpc.CallOption the
// engine recognises among a call's options (see Engine.Unary): the engine
// removes it before invoking and applies it to that call's policy.
type Setting struct {
	grpc.EmptyCallOption
	name    string
	apply   func(*Policy) error
	perCall bool
}

// NewSetting returns a setting named name that apply writes into a policy;
// apply returns an error for a bad value. A setting made with perCall set
// is an output of one call (Attempts, FallbackInfo): CheckSetting rejects
// it for any other use.
func NewSetting(name string, perCall bool, apply func(*Policy) error) Setting {
	return Setting{name: name, apply: apply, perCall: perCall}
}

// setting is how the engine finds a Setting among a call's options,
// including inside a type that embeds it.
func (s Setting) setting() Setting { return s }

// settingOption is implemented by Setting and every type that embeds it.
type settingOption interface{ setting() Setting }

// CheckSetting reports whether s may set the policy of more than one call
// (in New or a method policy): not the zero Setting, not per call, and its
// value valid. The error names the setting.
func CheckSetting(s Setting) error {
	switch {
	case s.apply == nil:
		return errors.New("PolicyOption: zero value")
	case s.perCall:
		return fmt.Errorf("%s: is per call only", s.name)
	}
	var probe Policy
	if err := s.apply(&probe); err != nil {
		return fmt.Errorf("%s: %v", s.name, err)
	}
	return nil
}

// applyCall applies s, passed with a call, to p; a bad value becomes p.Err.
func (s Setting) applyCall(p *Policy) {
	if p.Err != nil {
		return
	}
	if s.apply == nil {
		p.Err = errors.New("PolicyOption: zero value")
		return
	}
	if err := s.apply(p); err != nil {
		p.Err = fmt.Errorf("%s: %w", s.name, err)
	}
}

// applyLayer applies s, checked by CheckSetting, to p.
func (s Setting) applyLayer(p *Policy) { _ = s.apply(p) }

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

// Codes returns the codes in s, in ascending order.
func (s CodeSet) Codes() []codes.Code {
	var out []codes.Code
	for c := range codes.Code(32) {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

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
	// Random returns numbers in [0, 1) for the random factor; nil means
	// math/rand/v2's Float64. It must be safe for concurrent use.
	Random func() float64
}

// String describes b, e.g. "grpc(50ms × 2^(n-1), max 2s, ×[0.8, 1.2))".
func (b *GRPCBackoff) String() string {
	return fmt.Sprintf("grpc(%v × %g^(n-1), max %v, ×[0.8, 1.2))", b.Initial, b.Multiplier, b.Max)
}

// Delay returns the delay before the given retry.
func (b *GRPCBackoff) Delay(retry int) time.Duration {
	r := rand.Float64
	if b.Random != nil {
		r = b.Random
	}
	cur := min(float64(b.Initial)*math.Pow(b.Multiplier, float64(max(retry, 1)-1)), float64(b.Max))
	cur *= 0.8 + 0.4*r()
	if cur >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(cur)
}
