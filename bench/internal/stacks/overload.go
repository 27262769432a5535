package stacks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/interceptors"
	"github.com/grpc-resilience/resilience/throttle"
)

// Names of the stacks only the overload comparison has.
const (
	FailsafeLimiter   = "failsafe-limiter"
	FailsafeThrottler = "failsafe-throttler"
	FailsafeBulkhead  = "failsafe-bulkhead"
)

// OursVariant is one member of the ours family in the overload
// comparison: a name and the options it adds to what the scenario's user
// sets (UserOptions). Everything else stays at the library's defaults, so
// that a change of a default shows in the figures.
type OursVariant struct {
	// Name names the stack; by convention "ours" or "ours+what".
	Name string
	// Doc says in a few words what Options set, for the report.
	Doc string
	// Options are given to interceptors.New after the user's options.
	Options []interceptors.Option
}

// OursFamily is the one place the variants of ours in the overload
// comparison are defined; a variant is one line, e.g.
//
//	{Name: "ours+limiter", Doc: "WithConcurrencyLimit(defaults)", Options: []interceptors.Option{interceptors.WithConcurrencyLimit(limit.Config{})}},
var OursFamily = []OursVariant{
	{Name: Ours, Doc: "none"},
	{Name: Ours + "+throttle", Doc: "WithThrottle(throttle.Config{})", Options: []interceptors.Option{interceptors.WithThrottle(throttle.Config{})}},
}

// Overload returns the stacks of the overload comparison in table order:
// bare, the peers, then the ours family.
func Overload() []Stack {
	all := []Stack{
		bareStack(),
		{Name: GRPCRetry, build: buildGRPCRetry, Config: describeGRPCRetry},
		{Name: MWRetry, build: buildMW(false), Config: describeMW(false)},
		{Name: FailsafeLimiter, build: buildFailsafeLimiter, Config: func(p Policy) string {
			return "failsafegrpc.NewUnaryClientInterceptor(adaptivelimiter.NewWithDefaults()): limits 1–200, initial 20, no queueing (over the limit: adaptivelimiter.ErrExceeded at once); " + describeConnect(p)
		}},
		{Name: FailsafeThrottler, build: buildFailsafeThrottler, Config: func(p Policy) string {
			return "failsafegrpc.NewUnaryClientInterceptor(adaptivethrottler.NewWithDefaults()): failure rate threshold 0.1 over 1 minute, max rejection rate 0.9, every error a failure; " + describeConnect(p)
		}},
		{Name: FailsafeBulkhead, build: buildFailsafeBulkhead, Config: func(p Policy) string {
			return fmt.Sprintf("failsafegrpc.NewUnaryClientInterceptor(bulkhead.New(%d)): at most the server's true capacity in flight, no wait when full (bulkhead.ErrFull); %s", p.MaxConcurrency, describeConnect(p))
		}},
	}
	for _, v := range OursFamily {
		all = append(all, oursVariantStack(v))
	}
	return all
}

// SelectOverload is Select over Overload().
func SelectOverload(list string) ([]Stack, error) { return selectFrom(Overload(), list) }

// OverloadPolicy is the Policy of the overload comparison: our library's
// retry defaults as values, so that the retrying peers retry as ours does
// out of the box (3 attempts, 50 ms × 2^(n-1) capped at 2 s with 20 %
// jitter, Unavailable and DeadlineExceeded, grpc-go's retry throttling
// with our budget's 100/1); no per-attempt timeout, no breaker (no peer
// of this comparison has one), and no ConnectParams: every stack
// reconnects as it does by default. MaxConcurrency is the scenario's.
func OverloadPolicy() Policy {
	b := backoff.DefaultConfig()
	return Policy{
		MaxAttempts: interceptors.DefaultMaxAttempts,
		BaseDelay:   b.BaseDelay,
		Multiplier:  b.Multiplier,
		MaxDelay:    b.MaxDelay,
		Jitter:      b.Jitter,
		RetryCodes:  slices.Clone(interceptors.DefaultRetryCodes),
		Budget:      budget.DefaultConfig(),
	}
}

// Quickstart returns p with the two settings of the README's Quickstart:
// 4 attempts and a 500 ms per-attempt timeout.
func Quickstart(p Policy) Policy {
	p.MaxAttempts = 4
	p.PerAttemptTimeout = 500 * time.Millisecond
	return p
}

// UserOptions are our options for what a user of the overload comparison
// sets: MaxAttempts and, if any, PerAttemptTimeout — the settings of the
// README's Quickstart. Everything else in p (backoff, budget, breaker,
// ConnectParams) is left to the library's defaults.
func UserOptions(p Policy) []interceptors.Option {
	opts := []interceptors.Option{interceptors.MaxAttempts(p.MaxAttempts)}
	if p.PerAttemptTimeout > 0 {
		opts = append(opts, interceptors.PerAttemptTimeout(p.PerAttemptTimeout))
	}
	return opts
}

func oursVariantStack(v OursVariant) Stack {
	return Stack{
		Name: v.Name,
		build: func(p Policy) ([]grpc.DialOption, func(), error) {
			m, err := interceptors.New(append(UserOptions(p), v.Options...)...)
			if err != nil {
				return nil, nil, err
			}
			return m.DialOptions(), nil, nil
		},
		Config: func(p Policy) string {
			user := fmt.Sprintf("MaxAttempts(%d)", p.MaxAttempts)
			if p.PerAttemptTimeout > 0 {
				user += fmt.Sprintf(", PerAttemptTimeout(%v)", p.PerAttemptTimeout)
			}
			return fmt.Sprintf("interceptors.New(%s), the variant's options: %s; all else at the library's defaults; Middleware.DialOptions()", user, v.Doc)
		},
	}
}

func buildFailsafeLimiter(p Policy) ([]grpc.DialOption, func(), error) {
	return failsafeOptions(p, adaptivelimiter.NewWithDefaults[any]()), nil, nil
}

func buildFailsafeThrottler(p Policy) ([]grpc.DialOption, func(), error) {
	return failsafeOptions(p, adaptivethrottler.NewWithDefaults[any]()), nil, nil
}

func buildFailsafeBulkhead(p Policy) ([]grpc.DialOption, func(), error) {
	if p.MaxConcurrency < 1 {
		return nil, nil, fmt.Errorf("Policy.MaxConcurrency must be >= 1 for a bulkhead, got %d", p.MaxConcurrency)
	}
	return failsafeOptions(p, bulkhead.New[any](uint(p.MaxConcurrency))), nil, nil
}

// selectFrom returns the stacks of all named in a comma-separated list, in
// all's order; an empty list selects all.
func selectFrom(all []Stack, list string) ([]Stack, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []Stack
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown stack %q", n)
	}
	return out, nil
}
