package stacks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafegrpc"
	"github.com/failsafe-go/failsafe-go/timeout"
	mwretry "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/interceptors"
)

// Policy is the one configuration every stack is built from. Each stack
// maps it onto its own knobs as closely as that stack allows; the comments
// say where a stack cannot follow.
type Policy struct {
	// MaxAttempts counts every attempt, the first included.
	MaxAttempts int
	// Backoff before retry n (n = 1, 2, ...) is
	// min(BaseDelay × Multiplier^(n-1), MaxDelay), jittered by Jitter.
	// Jitter semantics differ per stack: ours shortens a delay by up to
	// Jitter; go-grpc-middleware and failsafe-go spread it ±Jitter; grpc-go
	// (v1.85) always spreads it ±20 % and has no jitter knob.
	BaseDelay  time.Duration
	Multiplier float64
	MaxDelay   time.Duration
	Jitter     float64
	// PerAttemptTimeout bounds each attempt (grpc-go's service config has
	// no per-attempt timeout; bare has none either).
	PerAttemptTimeout time.Duration
	// RetryCodes are the codes retried.
	RetryCodes []codes.Code
	// Budget is the retry token bucket (gRFC A6 retryThrottling): ours and
	// grpc-retry use it; go-grpc-middleware has none; failsafe-go's budget
	// limits concurrent retries, a different model, and is not used.
	Budget budget.Config
	// Breaker thresholds (failsafe-go and ours; the other stacks have no
	// breaker), counted per attempt: open when, within BreakerWindow, at
	// least BreakerMinRequests attempts were seen and BreakerFailureRatio
	// of them failed; stay open BreakerOpenTimeout; admit BreakerProbes
	// probes when half-open and close after that many successes. failsafe-go
	// cannot combine this rate rule with a consecutive-failures rule, so
	// our breaker's consecutive rule (default 25) is switched off here.
	BreakerWindow       time.Duration
	BreakerMinRequests  uint
	BreakerFailureRatio float64
	BreakerOpenTimeout  time.Duration
	BreakerProbes       uint
	// ConnectParams are given to every stack, bare included, so that
	// reconnecting after a restart is the same for all. The zero value
	// gives none: each stack reconnects as it does by default.
	ConnectParams grpc.ConnectParams
	// MaxConcurrency is the downstream's true capacity in attempts served
	// at once: the limit of the failsafe-bulkhead stack, the one stack
	// told what the server can take.
	MaxConcurrency int
}

// DefaultPolicy is the configuration the benchmark uses: our defaults (3
// attempts, 50 ms × 2^(n-1) capped at 2 s with 20 % jitter, budget 100/1,
// breaker 70 % of ≥ 50 attempts in 10 s, open 5 s, 3 probes, reconnect
// backoff 100 ms × 1.6^n capped at 3 s) plus a 100 ms per-attempt timeout,
// without our breaker's consecutive-failures rule (see Policy).
func DefaultPolicy() Policy {
	return Policy{
		MaxAttempts:         3,
		BaseDelay:           50 * time.Millisecond,
		Multiplier:          2,
		MaxDelay:            2 * time.Second,
		Jitter:              0.2,
		PerAttemptTimeout:   100 * time.Millisecond,
		RetryCodes:          []codes.Code{codes.Unavailable, codes.DeadlineExceeded},
		Budget:              budget.Config{MaxTokens: 100, TokenRatio: 1},
		BreakerWindow:       10 * time.Second,
		BreakerMinRequests:  50,
		BreakerFailureRatio: 0.7,
		BreakerOpenTimeout:  5 * time.Second,
		BreakerProbes:       3,
		ConnectParams: grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   3 * time.Second,
			},
			MinConnectTimeout: 3 * time.Second,
		},
	}
}

// Stack is one client configuration under test.
type Stack struct {
	// Name is short and stable: it names table rows and sub-benchmarks.
	Name string
	// Config says in one line how the Policy was mapped onto the stack.
	Config func(p Policy) string
	build  func(p Policy) (opts []grpc.DialOption, closeFn func(), err error)
}

// Build returns the dial options of the stack configured by p, and a
// function that releases what they hold (telemetry providers). The
// options carry no transport credentials and no dialer.
func (s Stack) Build(p Policy) ([]grpc.DialOption, func(), error) {
	opts, closeFn, err := s.build(p)
	if err != nil {
		return nil, nil, fmt.Errorf("stack %s: %w", s.Name, err)
	}
	if closeFn == nil {
		closeFn = func() {}
	}
	return opts, closeFn, nil
}

// Names of the stacks, in table order.
const (
	Bare        = "bare"
	GRPCRetry   = "grpc-retry"
	MWRetry     = "mw-retry"
	MWRetryOtel = "mw-retry+otel"
	Failsafe    = "failsafe"
	Ours        = "ours"
	OursOtel    = "ours+otel"
)

// All returns every stack, bare first.
func All() []Stack {
	return []Stack{
		bareStack(),
		{Name: GRPCRetry, build: buildGRPCRetry, Config: describeGRPCRetry},
		{Name: MWRetry, build: buildMW(false), Config: describeMW(false)},
		{Name: MWRetryOtel, build: buildMW(true), Config: describeMW(true)},
		{Name: Failsafe, build: buildFailsafe, Config: describeFailsafe},
		{Name: Ours, build: buildOurs(false), Config: describeOurs(false)},
		{Name: OursOtel, build: buildOurs(true), Config: describeOurs(true)},
	}
}

// Names lists the names of stacks, comma-separated.
func Names(stacks []Stack) string {
	names := make([]string, len(stacks))
	for i, s := range stacks {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// Select returns the stacks of All named in a comma-separated list, in
// table order; an empty list selects all.
func Select(list string) ([]Stack, error) { return selectFrom(All(), list) }

// connectOptions returns the dial option that sets p.ConnectParams, or
// none when they are zero.
func connectOptions(p Policy) []grpc.DialOption {
	if p.ConnectParams == (grpc.ConnectParams{}) {
		return nil
	}
	return []grpc.DialOption{grpc.WithConnectParams(p.ConnectParams)}
}

func bareStack() Stack {
	return Stack{Name: Bare, build: buildBare, Config: func(p Policy) string {
		return "grpc.NewClient with " + describeConnect(p) + "; no service config"
	}}
}

// describeConnect says which reconnect settings a stack dials with.
func describeConnect(p Policy) string {
	if p.ConnectParams == (grpc.ConnectParams{}) {
		return "grpc-go's default ConnectParams"
	}
	return "the shared ConnectParams"
}

func buildBare(p Policy) ([]grpc.DialOption, func(), error) {
	return connectOptions(p), nil, nil
}

// TestService is the full name of the service the benchmark calls.
const TestService = "grpc.testing.TestService"

func grpcServiceConfig(p Policy) string {
	codeNames := make([]string, len(p.RetryCodes))
	for i, c := range p.RetryCodes {
		codeNames[i] = fmt.Sprintf("%q", strings.ToUpper(snake(c.String())))
	}
	return fmt.Sprintf(`{
  "methodConfig": [{
    "name": [{"service": %q}],
    "retryPolicy": {
      "maxAttempts": %d,
      "initialBackoff": "%gs",
      "maxBackoff": "%gs",
      "backoffMultiplier": %g,
      "retryableStatusCodes": [%s]
    }
  }],
  "retryThrottling": {"maxTokens": %g, "tokenRatio": %g}
}`, TestService, p.MaxAttempts, p.BaseDelay.Seconds(), p.MaxDelay.Seconds(), p.Multiplier,
		strings.Join(codeNames, ", "), p.Budget.MaxTokens, p.Budget.TokenRatio)
}

// snake turns "DeadlineExceeded" into "Deadline_Exceeded".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func buildGRPCRetry(p Policy) ([]grpc.DialOption, func(), error) {
	return append(connectOptions(p), grpc.WithDefaultServiceConfig(grpcServiceConfig(p))), nil, nil
}

func describeGRPCRetry(p Policy) string {
	return fmt.Sprintf("service config retryPolicy maxAttempts %d, initialBackoff %v, maxBackoff %v, multiplier %g, codes %v (jitter fixed at ±20 %%, no knob; no per-attempt timeout); retryThrottling maxTokens %g tokenRatio %g",
		p.MaxAttempts, p.BaseDelay, p.MaxDelay, p.Multiplier, p.RetryCodes, p.Budget.MaxTokens, p.Budget.TokenRatio)
}

func buildMW(otel bool) func(p Policy) ([]grpc.DialOption, func(), error) {
	return func(p Policy) ([]grpc.DialOption, func(), error) {
		opts := append(connectOptions(p),
			grpc.WithChainUnaryInterceptor(mwretry.UnaryClientInterceptor(
				// WithMax is documented as "retries" but the loop makes at
				// most that many attempts in total.
				mwretry.WithMax(uint(p.MaxAttempts)),
				mwretry.WithBackoff(mwretry.BackoffExponentialWithJitterBounded(p.BaseDelay, p.Jitter, p.MaxDelay)),
				mwretry.WithCodes(p.RetryCodes...),
				mwretry.WithPerRetryTimeout(p.PerAttemptTimeout),
			)),
		)
		if !otel {
			return opts, nil, nil
		}
		tel := newTelemetry()
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tel.tp),
			otelgrpc.WithMeterProvider(tel.mp),
			otelgrpc.WithPropagators(tel.prop),
		)))
		return opts, tel.close, nil
	}
}

func describeMW(otel bool) func(p Policy) string {
	return func(p Policy) string {
		s := fmt.Sprintf("retry.WithMax(%d) (= %d attempts in total), BackoffExponentialWithJitterBounded(%v, %g, %v) (2× per retry, ±%g), WithCodes%v, WithPerRetryTimeout(%v); no budget, no breaker",
			p.MaxAttempts, p.MaxAttempts, p.BaseDelay, p.Jitter, p.MaxDelay, p.Jitter, p.RetryCodes, p.PerAttemptTimeout)
		if otel {
			s += "; otelgrpc.NewClientHandler with " + telemetryDescription
		}
		return s
	}
}

// breakerFailure reports whether an attempt's error counts against a
// breaker: the codes our breaker package counts by default
// (breaker.DefaultIsFailure) plus failsafe's own timeout error.
func breakerFailure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, timeout.ErrExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

func buildFailsafe(p Policy) ([]grpc.DialOption, func(), error) {
	retryable := make(map[codes.Code]bool, len(p.RetryCodes))
	for _, c := range p.RetryCodes {
		retryable[c] = true
	}
	rp := failsafegrpc.NewRetryPolicyBuilder[any]().
		// Replace the builder's default codes (which include
		// ResourceExhausted) by the shared ones; a per-attempt timeout
		// surfaces as timeout.ErrExceeded, not as a status.
		HandleIf(func(_ any, err error) bool {
			if err == nil {
				return false
			}
			if errors.Is(err, timeout.ErrExceeded) {
				return retryable[codes.DeadlineExceeded]
			}
			s, ok := status.FromError(err)
			return ok && retryable[s.Code()]
		}).
		WithMaxAttempts(p.MaxAttempts).
		WithBackoffFactor(p.BaseDelay, p.MaxDelay, p.Multiplier).
		WithJitterFactor(p.Jitter).
		ReturnLastFailure().
		Build()
	cb := circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return breakerFailure(err) }).
		WithFailureRateThreshold(p.BreakerFailureRatio, p.BreakerMinRequests, p.BreakerWindow).
		WithDelay(p.BreakerOpenTimeout).
		WithSuccessThreshold(p.BreakerProbes).
		Build()
	// Outermost first: every retry goes through the breaker, and the
	// timeout bounds each attempt.
	policies := []failsafe.Policy[any]{rp, cb}
	if p.PerAttemptTimeout > 0 {
		policies = append(policies, timeout.New[any](p.PerAttemptTimeout))
	}
	return failsafeOptions(p, policies...), nil, nil
}

// failsafeOptions is how failsafe-go documents its use on a gRPC client:
// one failsafegrpc.NewUnaryClientInterceptor over the policies.
func failsafeOptions(p Policy, policies ...failsafe.Policy[any]) []grpc.DialOption {
	return append(connectOptions(p), grpc.WithChainUnaryInterceptor(failsafegrpc.NewUnaryClientInterceptor(policies...)))
}

func describeFailsafe(p Policy) string {
	return fmt.Sprintf("failsafe.With(retry, breaker, timeout): retry WithMaxAttempts(%d), WithBackoffFactor(%v, %v, %g), WithJitterFactor(%g) (±), codes %v, ReturnLastFailure; breaker WithFailureRateThreshold(%g, %d, %v), WithDelay(%v), WithSuccessThreshold(%d), counting the codes our breaker counts; timeout.New(%v) per attempt",
		p.MaxAttempts, p.BaseDelay, p.MaxDelay, p.Multiplier, p.Jitter, p.RetryCodes,
		p.BreakerFailureRatio, p.BreakerMinRequests, p.BreakerWindow, p.BreakerOpenTimeout, p.BreakerProbes, p.PerAttemptTimeout)
}

// oursJitter maps the Policy's Jitter onto backoff.Config's: a Policy
// Jitter of 0 means no jitter, as in the other stacks, while a zero
// backoff.Config.Jitter means its default (0.2), so 0 becomes NoJitter.
func oursJitter(j float64) float64 {
	if j == 0 {
		return backoff.NoJitter
	}
	return j
}

// OursOptions maps the Policy onto our interceptors' options for the
// classic comparison. It is the one place to extend when the interceptors
// gain an option the Policy has; the overload comparison's variants of
// ours are in OursFamily.
func OursOptions(p Policy) []interceptors.Option {
	return []interceptors.Option{
		interceptors.MaxAttempts(p.MaxAttempts),
		interceptors.Backoff(backoff.MustExponential(backoff.Config{
			BaseDelay:  p.BaseDelay,
			Multiplier: p.Multiplier,
			MaxDelay:   p.MaxDelay,
			Jitter:     oursJitter(p.Jitter),
		})),
		interceptors.PerAttemptTimeout(p.PerAttemptTimeout),
		interceptors.RetryCodes(p.RetryCodes...),
		interceptors.WithRetryBudget(p.Budget),
		interceptors.WithBreaker(breaker.Config{
			Window:              p.BreakerWindow,
			MinRequests:         uint32(p.BreakerMinRequests),
			FailureRatio:        p.BreakerFailureRatio,
			ConsecutiveFailures: math.MaxUint32, // off, as failsafe-go has none beside the rate rule
			OpenTimeout:         p.BreakerOpenTimeout,
			HalfOpenProbes:      uint32(p.BreakerProbes),
		}),
		interceptors.WithConnectParams(p.ConnectParams),
	}
}

func buildOurs(otel bool) func(p Policy) ([]grpc.DialOption, func(), error) {
	return func(p Policy) ([]grpc.DialOption, func(), error) {
		opts := OursOptions(p)
		var closeFn func()
		if otel {
			tel := newTelemetry()
			opts = append(opts,
				interceptors.WithTracerProvider(tel.tp),
				interceptors.WithMeterProvider(tel.mp),
				interceptors.WithPropagators(tel.prop),
			)
			closeFn = tel.close
		}
		m, err := interceptors.New(opts...)
		if err != nil {
			return nil, nil, err
		}
		return m.DialOptions(), closeFn, nil
	}
}

func describeOurs(otel bool) func(p Policy) string {
	return func(p Policy) string {
		s := fmt.Sprintf("interceptors.New(MaxAttempts(%d), Backoff(%v × %g^(n-1), cap %v, jitter %g: shortens only), PerAttemptTimeout(%v), RetryCodes%v, WithRetryBudget(%g/%g), WithBreaker(ratio %g of ≥ %d in %v, consecutive rule off, open %v, %d probes), WithConnectParams(shared)); other options at their defaults (ready wait, reconnect probe); Middleware.DialOptions()",
			p.MaxAttempts, p.BaseDelay, p.Multiplier, p.MaxDelay, p.Jitter, p.PerAttemptTimeout, p.RetryCodes, p.Budget.MaxTokens, p.Budget.TokenRatio,
			p.BreakerFailureRatio, p.BreakerMinRequests, p.BreakerWindow, p.BreakerOpenTimeout, p.BreakerProbes)
		if otel {
			s += "; WithTracerProvider/WithMeterProvider/WithPropagators with " + telemetryDescription
		} else {
			s += "; global OpenTelemetry providers (none installed: no-op)"
		}
		return s
	}
}

const telemetryDescription = "an SDK TracerProvider (AlwaysSample, a span processor that drops ended spans), an SDK MeterProvider (manual reader) and the W3C trace-context propagator"

// telemetry is a set of OpenTelemetry SDK providers that record
// everything and export nothing, so that both telemetry stacks pay for
// creating spans and recording metrics but not for an exporter.
type telemetry struct {
	tp   *sdktrace.TracerProvider
	mp   *sdkmetric.MeterProvider
	prop propagation.TextMapPropagator
}

func newTelemetry() *telemetry {
	return &telemetry{
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithSpanProcessor(dropSpans{}),
		),
		mp:   sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		prop: propagation.TraceContext{},
	}
}

// dropSpans is a span processor that receives every ended span, as an
// exporter's processor would, and drops it.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

func (t *telemetry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = t.tp.Shutdown(ctx)
	_ = t.mp.Shutdown(ctx)
}
