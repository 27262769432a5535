package interceptors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/fallback"
	"github.com/grpc-resilience/resilience/internal/engine"
)

// PolicyOption is one setting of the call policy, with one name wherever it
// is used. The same value is
//
//   - an Option of New, setting the default policy of every call:
//     New(MaxAttempts(4));
//   - an option of WithMethodPolicy, for the methods it matches:
//     WithMethodPolicy(MatchMethodPrefix("Create"), MaxAttempts(1));
//   - a grpc.CallOption of one call, passed with its other options:
//     client.Charge(ctx, req, MaxAttempts(1)).
//
// Layers apply in that order, each over the one before: the defaults, the
// PolicyOptions given to New, the service config (WithServiceConfig), the
// method policies in the order given, the call's own PolicyOptions. The
// interceptors remove their own options before invoking, so the transport
// never sees them.
//
// An invalid PolicyOption is reported by New (naming it) when given to New
// or WithMethodPolicy; passed with a call, it fails the call at once with
// InvalidArgument and a message naming it. The zero PolicyOption is
// invalid.
type PolicyOption struct {
	// The engine's setting: a grpc.CallOption the engine recognises among
	// a call's options and applies to that call.
	policySetting
}

type policySetting = engine.Setting

func (o PolicyOption) applyOption(c *config) error {
	if err := o.check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	c.defaults = append(c.defaults, o.policySetting)
	return nil
}

// check reports whether o may set a policy for more than one call.
func (o PolicyOption) check() error { return engine.CheckSetting(o.policySetting) }

func policyOption(name string, f func(*policy) error) PolicyOption {
	return PolicyOption{engine.NewSetting(name, false, f)}
}

// perCallOption is a PolicyOption that is an output of one call.
func perCallOption(name string, f func(*policy) error) PolicyOption {
	return PolicyOption{engine.NewSetting(name, true, f)}
}

// MaxAttempts sets how many attempts a call may make, counting the first
// one: 1 disables retries (for a non-idempotent method, say). n must be at
// least 1. Default DefaultMaxAttempts. Hedged calls may make up to the
// larger of n and their HedgePolicy.MaxAttempts.
func MaxAttempts(n int) PolicyOption {
	return policyOption("MaxAttempts", func(p *policy) error {
		if n < 1 {
			return fmt.Errorf("must be >= 1, got %d", n)
		}
		p.MaxAttempts = n
		return nil
	})
}

// RetryCodes sets the status codes that are retried, replacing the default
// (Unavailable, DeadlineExceeded). DeadlineExceeded is only ever retried
// while the caller's context is alive. OK is rejected; so is an empty list
// (use MaxAttempts(1) to disable retries).
func RetryCodes(cs ...codes.Code) PolicyOption {
	set, err := engine.RetryCodeSet(cs)
	return policyOption("RetryCodes", func(p *policy) error {
		if err != nil {
			return err
		}
		p.RetryCodes = set
		return nil
	})
}

// Backoff sets the delay policy between attempts. Default: an exponential
// backoff with backoff.DefaultConfig(). Use backoff.NewExponential to build
// one from a backoff.Config. nil, and a nil pointer in the interface, are
// rejected.
func Backoff(b backoff.Policy) PolicyOption {
	return policyOption("Backoff", func(p *policy) error {
		if isNil(b) {
			return errors.New("policy is nil")
		}
		p.Backoff = b
		return nil
	})
}

// PerAttemptTimeout bounds each attempt (for streams, the time until they
// commit). An attempt that times out fails with DeadlineExceeded and is
// retried while the call deadline allows. 0 means no per-attempt bound (the
// default): each attempt may use the whole remaining call time. Negative
// values are rejected, and so is a value not shorter than the Timeout it
// runs under (given in the same place, or resolved for a method New can
// name): such a timeout could never fire.
func PerAttemptTimeout(d time.Duration) PolicyOption {
	return durationPolicy("PerAttemptTimeout", d, func(p *policy) *time.Duration { return &p.PerAttemptTimeout })
}

// Timeout sets the deadline given to a call whose context has none. A
// caller's own deadline is never changed. 0 means none; negative values are
// rejected. Default DefaultCallTimeout.
func Timeout(d time.Duration) PolicyOption {
	return durationPolicy("Timeout", d, func(p *policy) *time.Duration { return &p.CallTimeout })
}

// durationPolicy is a PolicyOption that sets a duration which must not be
// negative (0 turns the setting off).
func durationPolicy(name string, d time.Duration, field func(*policy) *time.Duration) PolicyOption {
	return policyOption(name, func(p *policy) error {
		if d < 0 {
			return fmt.Errorf("must be >= 0, got %v", d)
		}
		*field(p) = d
		return nil
	})
}

// NoBreaker lets calls bypass the circuit breaker: their attempts are
// neither refused nor counted.
func NoBreaker() PolicyOption {
	return policyOption("NoBreaker", func(p *policy) error { p.NoBreaker = true; return nil })
}

// Attempts stores in *n the number of attempts the call made (attempts that
// reached the transport; attempts refused by a breaker are not counted),
// whether it succeeded or failed. The value is written before the
// interceptor returns. It is an output of one call: New and
// WithMethodPolicy reject it. n must not be nil.
func Attempts(n *int) PolicyOption {
	return perCallOption("Attempts", func(p *policy) error {
		if n == nil {
			return errors.New("pointer is nil")
		}
		p.AttemptsOut = n
		return nil
	})
}

// WithMethodPolicy applies opts to every call whose full method name
// ("/package.Service/Method") match selects, for example to turn retries
// off for non-idempotent methods:
//
//	interceptors.WithMethodPolicy(interceptors.MatchMethodPrefix("Create"),
//		interceptors.MaxAttempts(1))
//
// Method policies apply in the order given, over the defaults and the
// service config and under the call's own PolicyOptions. The policy of a
// method is resolved once (per service config version), not on every call.
// A matcher that can match no method (MatchMethods("Echo"), without the
// service) is rejected by New, naming it.
func WithMethodPolicy(match MethodMatcher, opts ...PolicyOption) Option {
	return optionFunc(func(c *config) error {
		if err := match.check(); err != nil {
			return invalid("WithMethodPolicy", "%v", err)
		}
		for _, o := range opts {
			if err := o.check(); err != nil {
				return invalid("WithMethodPolicy", "%v", err)
			}
		}
		ml := engine.MethodLayer{Match: match.match}
		for _, o := range opts {
			ml.Settings = append(ml.Settings, o.policySetting)
		}
		if err := engine.CheckTimeouts(engine.Layers{Settings: ml.Settings}.Resolve("")); err != nil {
			return invalid("WithMethodPolicy", "%v", err)
		}
		c.methodPolicies = append(c.methodPolicies, ml)
		c.methodNames = append(c.methodNames, match.names...)
		return nil
	})
}

// MethodMatcher selects the methods a WithMethodPolicy applies to. Make one
// with MatchMethods, MatchService, MatchMethodPrefix or, for any other
// rule, MatchFunc. A matcher made from arguments that can match no method
// carries the error, which New reports; the zero MethodMatcher is invalid.
type MethodMatcher struct {
	match func(fullMethod string) bool
	names []string // MatchMethods: the names, for New's checks
	err   error
}

// Match reports whether m selects fullMethod ("/package.Service/Method").
// An invalid matcher selects nothing.
func (m MethodMatcher) Match(fullMethod string) bool {
	return m.err == nil && m.match != nil && m.match(fullMethod)
}

// check reports why m can select no method, naming its constructor.
func (m MethodMatcher) check() error {
	switch {
	case m.err != nil:
		return m.err
	case m.match == nil:
		return errors.New("MethodMatcher: zero value")
	}
	return nil
}

// MatchFunc selects the methods for which f returns true; f is called with
// the full method name ("/package.Service/Method") once per method and
// service config version, not on every call. f must not be nil.
func MatchFunc(f func(fullMethod string) bool) MethodMatcher {
	if f == nil {
		return MethodMatcher{err: errors.New("MatchFunc: func is nil")}
	}
	return MethodMatcher{match: f}
}

// MatchMethods selects the given full method names
// ("/package.Service/Method", as in the generated
// Service_Method_FullMethodName constants) exactly. At least one name is
// required, and each must have that form: "Echo" or
// "catalog.v1.Catalog/GetItem" would match nothing, and New says so.
func MatchMethods(fullMethods ...string) MethodMatcher {
	if len(fullMethods) == 0 {
		return MethodMatcher{err: errors.New("MatchMethods: no method names given")}
	}
	set := make(map[string]struct{}, len(fullMethods))
	var errs []error
	for _, m := range fullMethods {
		if err := checkFullMethod(m); err != nil {
			errs = append(errs, fmt.Errorf("MatchMethods: %w", err))
		}
		set[m] = struct{}{}
	}
	if err := errors.Join(errs...); err != nil {
		return MethodMatcher{err: err}
	}
	return MethodMatcher{names: slices.Clone(fullMethods), match: func(fullMethod string) bool {
		_, ok := set[fullMethod]
		return ok
	}}
}

// checkFullMethod reports why m is not a full method name
// "/package.Service/Method".
func checkFullMethod(m string) error {
	const want = `a full method name is "/package.Service/Method"`
	svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	switch {
	case !ok && !strings.HasPrefix(m, "/") && m != "":
		return fmt.Errorf("%q: %s; for every method named %q use MatchMethodPrefix, for a service MatchService", m, want, m)
	case !strings.HasPrefix(m, "/") && ok:
		return fmt.Errorf("%q: %s: it lacks the leading \"/\" (%q)", m, want, "/"+m)
	case !ok || svc == "" || method == "" || strings.Contains(method, "/"):
		return fmt.Errorf("%q: %s", m, want)
	}
	return nil
}

// MatchService selects every method of a service given by its full name
// ("package.Service", without slashes).
func MatchService(service string) MethodMatcher {
	if service == "" || strings.Contains(service, "/") {
		return MethodMatcher{err: fmt.Errorf(`MatchService: %q: a service's full name is "package.Service", without "/"`, service)}
	}
	prefix := "/" + service + "/"
	return MethodMatcher{match: func(fullMethod string) bool { return strings.HasPrefix(fullMethod, prefix) }}
}

// MatchMethodPrefix selects methods whose short name (the part after the
// last "/") starts with prefix, e.g. "Create" matches
// "/pkg.Service/CreateUser". A prefix with a "/" would match nothing and is
// rejected.
func MatchMethodPrefix(prefix string) MethodMatcher {
	if strings.Contains(prefix, "/") {
		return MethodMatcher{err: fmt.Errorf(`MatchMethodPrefix: %q: the prefix of a method's short name has no "/"; for full names use MatchMethods, for a service MatchService`, prefix)}
	}
	return MethodMatcher{match: func(fullMethod string) bool {
		return strings.HasPrefix(fullMethod[strings.LastIndexByte(fullMethod, '/')+1:], prefix)
	}}
}

// Fallback gives unary calls a fallback (see package fallback): when a call
// fails in a way the downstream is to blame for — a server failure
// (Unavailable, an attempt's DeadlineExceeded, ResourceExhausted, Internal,
// Unknown, DataLoss), an open breaker, retries stopped by an exhausted
// retry budget or a server's pushback — h.Answer may answer instead; its error, if it does not,
// is what the caller gets, wrapping the original. A call still waiting for
// the downstream h.Margin before its deadline is cancelled and answered by
// the fallback, so that a hung or slow downstream never makes the caller
// miss its deadline. The caller's own cancel and deadline, and errors that
// describe the request (InvalidArgument, NotFound, PermissionDenied, ...),
// never trigger it. h.Save, if set, is told about every successful reply.
// Off by default; give it to read methods only, never to methods that
// write: an answer from a stale copy says nothing about a write. Streams
// never use it. A fallback answer is never silent: FallbackInfo tells the
// caller, and the call span and the resilience.client.fallbacks counter
// record it.
//
//	store, _ := fallback.NewStore(fallback.Config{MaxBytes: 64 << 20, MaxAge: 5 * time.Minute})
//	interceptors.WithMethodPolicy(interceptors.MatchMethods("/catalog.v1.Catalog/GetItem"),
//		interceptors.Fallback(store.Handler()))
func Fallback(h fallback.Handler) PolicyOption {
	err := h.Validate()
	return policyOption("Fallback", func(p *policy) error {
		if err != nil {
			return err
		}
		p.Fallback = &h
		return nil
	})
}

// FallbackInfo stores in *info whether a fallback answered the call (and,
// for a stale copy, its age). It is an output of one call, like Attempts.
// info must not be nil.
func FallbackInfo(info *fallback.Info) PolicyOption {
	return perCallOption("FallbackInfo", func(p *policy) error {
		if info == nil {
			return errors.New("pointer is nil")
		}
		p.FallbackOut = info
		return nil
	})
}
