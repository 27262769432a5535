package telemetry

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Options says where telemetry goes. Its zero value is the default: the
// global providers and propagator, looked up on each call, and one span per
// attempt.
type Options struct {
	TracerProvider trace.TracerProvider          // nil: otel.GetTracerProvider() per call
	MeterProvider  metric.MeterProvider          // nil: otel.GetMeterProvider() per call
	Propagator     propagation.TextMapPropagator // nil: otel.GetTextMapPropagator() per attempt
	NoAttemptSpans bool                          // attempts as call span events instead of spans
	MetricNames    Names                         // which names the call and attempt metrics take
	Logger         *slog.Logger                  // nil: no logging
}

// InstrumentationName is the instrumentation scope of the tracer and meter:
// the public package's path, which is what users see.
const InstrumentationName = "github.com/grpc-resilience/resilience/interceptors"

// Attributes in the resilience namespace.
const (
	// attrAttempt is the attempt number (1, 2, ...) on attempt spans, on
	// attempt events and, on retry events, the number of the attempt that
	// is scheduled.
	attrAttempt = attribute.Key("resilience.attempt")
	// attrAttempts is the number of attempts a call made, on the call span.
	attrAttempts = attribute.Key("resilience.attempts")
	// attrBreakerState is the breaker state an attempt ran under:
	// "closed", "half-open" or "open".
	attrBreakerState = attribute.Key("resilience.breaker.state")
	// attrBreakerKey identifies a breaker on the breaker state gauge.
	attrBreakerKey = attribute.Key("resilience.breaker.key")
	// attrRetryDelay is the backoff delay before a retry, in seconds.
	attrRetryDelay = attribute.Key("resilience.retry.delay")
	// attrPushbackDelay is the delay a server asked for, in seconds.
	attrPushbackDelay = attribute.Key("resilience.pushback.delay")
	// attrFallbackResult is "served" or "missed" (the fallback had no answer).
	attrFallbackResult = attribute.Key("resilience.fallback.result")
	// attrFallbackKind is "stale" (a stored copy) or "answer" (any other).
	attrFallbackKind = attribute.Key("resilience.fallback.kind")
	// attrFallbackAge is the age of a stale copy, in seconds.
	attrFallbackAge = attribute.Key("resilience.fallback.age")
	// attrPushbackStop is true when a server asked not to retry.
	attrPushbackStop = attribute.Key("resilience.pushback.stop")
	// attrEndpointAddress is the address of an endpoint an attempt's
	// failure ejected.
	attrEndpointAddress = attribute.Key("resilience.endpoint.address")
	// attrTarget is the channel's target, as dialled, on the ejected
	// endpoints counter and, with the default names, the gate gauges.
	attrTarget = attribute.Key("resilience.target")
	// attrRefusal says which gate refused an attempt: RefusalLimiter,
	// RefusalThrottle.
	attrRefusal = attribute.Key("resilience.refusal")
	// attrQueueWait is the time an attempt waited for a limiter permit (s).
	attrQueueWait = attribute.Key("resilience.limiter.wait")
	// attrAdmitted says whether a wait for a permit ended with one.
	attrAdmitted = attribute.Key("resilience.limiter.admitted")
)

// Events on the logical call span.
const (
	eventRetry           = "resilience.retry"
	eventBreakerRejected = "resilience.breaker.rejected"
	eventBudgetExhausted = "resilience.budget.exhausted"
	eventPushback        = "resilience.pushback"
	eventFallback        = "resilience.fallback"
	eventRefused         = "resilience.refused"
	eventLimiterQueued   = "resilience.limiter.queued"
	// eventAttempt replaces the attempt span when attempt spans are off.
	eventAttempt = "resilience.attempt"
	// eventEndpointEjected is added to the attempt span (the call span
	// when attempt spans are off) of an attempt whose failure ejected its
	// endpoint.
	eventEndpointEjected = "resilience.endpoint.ejected"
)

// Metric instrument names. They never collide with otelgrpc's rpc.client.*.
const (
	MetricAttempts          = "resilience.client.attempts"
	MetricRetries           = "resilience.client.retries"
	MetricCallDuration      = "resilience.client.call.duration"
	MetricAttemptDuration   = "resilience.client.attempt.duration"
	MetricBreakerState      = "resilience.client.breaker.state"
	MetricBreakerRejections = "resilience.client.breaker.rejections"
	MetricBudgetThrottled   = "resilience.client.budget.throttled"
	MetricFallbacks         = "resilience.client.fallbacks"
	MetricEndpointEjected   = "resilience.client.endpoint.ejected"
	MetricRefusals          = "resilience.client.refusals"
	MetricLimiterQueueWait  = "resilience.client.limiter.queue_wait"
	MetricPolicyIgnored     = "resilience.client.policy.ignored"
	// The gate gauges (see ObserveGates), per target, or per target and
	// method for limiters keyed so.
	MetricLimiterLimit        = "resilience.client.limiter.limit"
	MetricLimiterInFlight     = "resilience.client.limiter.in_flight"
	MetricLimiterQueued       = "resilience.client.limiter.queued"
	MetricThrottleProbability = "resilience.client.throttle.probability"
)

// Breaker states as recorded by the breaker state gauge and attempt spans.
// They match breaker.State's values.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// durationBuckets are the explicit bucket boundaries, in seconds, of the
// duration histograms: otelgrpc's, so the two can be compared.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// numCodes is the number of gRPC codes (OK..Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

// Per-code attributes, built once.
var (
	statusCodeAttrs [numCodes]attribute.KeyValue
	errorTypeAttrs  [numCodes]attribute.KeyValue
	// spanEndAttrs is what an attempt span gets when it ends with a code.
	spanEndAttrs [numCodes][]attribute.KeyValue
)

func init() {
	for c := range numCodes {
		s := codeString(codes.Code(c))
		statusCodeAttrs[c] = semconv.RPCResponseStatusCode(s)
		errorTypeAttrs[c] = semconv.ErrorTypeKey.String(s)
		spanEndAttrs[c] = []attribute.KeyValue{statusCodeAttrs[c]}
		if c != int(codes.OK) {
			spanEndAttrs[c] = append(spanEndAttrs[c], errorTypeAttrs[c])
		}
	}
}

// CodeName is the canonical name of a gRPC code, as used for
// rpc.response.status_code and error.type ("OK", "UNAVAILABLE", ...).
func CodeName(c codes.Code) string { return codeString(c) }

func codeString(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	case codes.Unknown:
		return "UNKNOWN"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Aborted:
		return "ABORTED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Internal:
		return "INTERNAL"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DataLoss:
		return "DATA_LOSS"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return "CODE(" + strconv.FormatUint(uint64(c), 10) + ")"
}

func statusCodeAttr(c codes.Code) attribute.KeyValue {
	if int(c) < numCodes {
		return statusCodeAttrs[c]
	}
	return semconv.RPCResponseStatusCode(codeString(c))
}

func endAttrs(c codes.Code) []attribute.KeyValue {
	if int(c) < numCodes {
		return spanEndAttrs[c]
	}
	s := codeString(c)
	return []attribute.KeyValue{semconv.RPCResponseStatusCode(s), semconv.ErrorTypeKey.String(s)}
}

func breakerStateAttr(state int) attribute.KeyValue {
	switch state {
	case BreakerClosed:
		return attrBreakerState.String("closed")
	case BreakerHalfOpen:
		return attrBreakerState.String("half-open")
	case BreakerOpen:
		return attrBreakerState.String("open")
	}
	return attrBreakerState.String("unknown")
}

// Recorder records spans and metrics for the calls of one Middleware. The
// zero value records nothing. It is safe for concurrent use.
type Recorder struct {
	s *state
}

// state is the shared, concurrency-safe part of a telemetry.
type state struct {
	opts Options
	log  *logger // nil: no logging

	// fixedTracer/fixedMetrics are set when the provider was given as an
	// option; tracing/metrics cache the resolution of the global provider.
	fixedTracer  *tracing
	fixedMetrics *instruments
	tracing      atomic.Pointer[tracing]
	metrics      atomic.Pointer[instruments]

	mu    sync.Mutex // serializes writers of attrs and metrics; guards the gate gauges
	attrs atomic.Pointer[map[attrKey]*callAttrs]

	// The gate gauges (ObserveGates): their source, nil until set or once
	// its owner is gone, and their callback's registration with the
	// current instruments' meter.
	gates    func(report func(GateState))
	gatesReg metric.Registration
}

// maxCachedAttrs bounds the (method, target) cache. Beyond it, attributes
// are built per call: correct, only slower.
const maxCachedAttrs = 1024

// New returns a Recorder for opts.
func New(opts Options) Recorder {
	s := &state{opts: opts}
	if opts.Logger != nil {
		s.log = newLogger(opts.Logger)
	}
	if tp := s.opts.TracerProvider; tp != nil {
		s.fixedTracer = newTracing(tp, false)
	}
	if mp := s.opts.MeterProvider; mp != nil {
		s.fixedMetrics = newInstruments(mp, false, s.opts.MetricNames)
	}
	return Recorder{s: s}
}

// tracing is a resolved TracerProvider.
type tracing struct {
	tp         trace.TracerProvider
	comparable bool
	tracer     trace.Tracer // nil: tracing is off
}

func newTracing(tp trace.TracerProvider, global bool) *tracing {
	t := &tracing{tp: tp, comparable: isComparable(tp)}
	tr := tp.Tracer(InstrumentationName, trace.WithSchemaURL(semconv.SchemaURL))
	if _, ok := tr.(tracenoop.Tracer); ok || (global && isUnsetGlobal(tp)) {
		return t
	}
	t.tracer = tr
	return t
}

// tracer returns the tracer to use now, or nil when tracing is off.
func (s *state) tracer() trace.Tracer {
	if s.fixedTracer != nil {
		return s.fixedTracer.tracer
	}
	tp := otel.GetTracerProvider()
	if t := s.tracing.Load(); t != nil && t.comparable && t.tp == tp {
		return t.tracer
	}
	t := newTracing(tp, true)
	s.tracing.Store(t)
	return t.tracer
}

// instruments are the metric instruments of a resolved MeterProvider.
type instruments struct {
	mp         metric.MeterProvider
	comparable bool
	off        bool

	attempts          metric.Int64Counter
	retries           metric.Int64Counter
	callDuration      metric.Float64Histogram
	attemptDuration   metric.Float64Histogram
	breakerState      metric.Int64Gauge
	breakerRejections metric.Int64Counter
	budgetThrottled   metric.Int64Counter
	fallbacks         metric.Int64Counter
	endpointEjected   metric.Int64UpDownCounter
	refusals          metric.Int64Counter
	queueWait         metric.Float64Histogram
	policyIgnored     metric.Int64Counter

	// The gate gauges, observed by the callback ObserveGates registers
	// with meter.
	meter               metric.Meter
	limit               metric.Int64ObservableGauge
	inFlight            metric.Int64ObservableUpDownCounter
	queued              metric.Int64ObservableUpDownCounter
	throttleProbability metric.Float64ObservableGauge

	// gRFC A66/A96 names (Names == NamesGRPC); attempts and retries are
	// then nil.
	grpc           bool
	attemptStarted metric.Int64Counter
	callRetries    metric.Int64Histogram
	callHedges     metric.Int64Histogram
	retryDelay     metric.Float64Histogram
}

func newInstruments(mp metric.MeterProvider, global bool, names Names) *instruments {
	in := &instruments{mp: mp, comparable: isComparable(mp), grpc: names == NamesGRPC}
	if _, ok := mp.(metricnoop.MeterProvider); ok || (global && isUnsetGlobal(mp)) {
		in.off = true
		return in
	}
	m := mp.Meter(InstrumentationName, metric.WithSchemaURL(semconv.SchemaURL))
	if _, ok := m.(metricnoop.Meter); ok {
		in.off = true
		return in
	}
	var err error
	handle := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	var e error
	if in.grpc {
		in.attemptStarted, e = m.Int64Counter(MetricGRPCAttemptStarted, metric.WithUnit("{attempt}"),
			metric.WithDescription("Number of client call attempts started."))
		handle(e)
		in.attemptDuration, e = m.Float64Histogram(MetricGRPCAttemptDuration, metric.WithUnit("s"),
			metric.WithDescription("End-to-end time taken to complete a client call attempt."),
			metric.WithExplicitBucketBoundaries(A66LatencyBuckets...))
		handle(e)
		in.callDuration, e = m.Float64Histogram(MetricGRPCCallDuration, metric.WithUnit("s"),
			metric.WithDescription("Time taken by gRPC to complete an RPC from application's perspective."),
			metric.WithExplicitBucketBoundaries(A66LatencyBuckets...))
		handle(e)
		in.callRetries, e = m.Int64Histogram(MetricGRPCCallRetries, metric.WithUnit("{retry}"),
			metric.WithDescription("Number of retries during the client call. If there were no retries, 0 is not reported."),
			metric.WithExplicitBucketBoundaries(A96CountBuckets...))
		handle(e)
		in.callHedges, e = m.Int64Histogram(MetricGRPCCallHedges, metric.WithUnit("{hedge}"),
			metric.WithDescription("Number of hedges during the client call. If there were no hedges, 0 is not reported."),
			metric.WithExplicitBucketBoundaries(A96CountBuckets...))
		handle(e)
		in.retryDelay, e = m.Float64Histogram(MetricGRPCCallRetryDelay, metric.WithUnit("s"),
			metric.WithDescription("Total time of delay while there is no active attempt during the client call."),
			metric.WithExplicitBucketBoundaries(A66LatencyBuckets...))
		handle(e)
	} else {
		in.attempts, e = m.Int64Counter(MetricAttempts, metric.WithUnit("{attempt}"),
			metric.WithDescription("Attempts that reached the transport, by outcome."))
		handle(e)
		in.retries, e = m.Int64Counter(MetricRetries, metric.WithUnit("{retry}"),
			metric.WithDescription("Retries scheduled, by the status code of the attempt that is retried."))
		handle(e)
		in.callDuration, e = m.Float64Histogram(MetricCallDuration, metric.WithUnit("s"),
			metric.WithDescription("Duration of logical calls, including every attempt and backoff wait."),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		handle(e)
		in.attemptDuration, e = m.Float64Histogram(MetricAttemptDuration, metric.WithUnit("s"),
			metric.WithDescription("Duration of single attempts."),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		handle(e)
	}
	in.breakerState, e = m.Int64Gauge(MetricBreakerState, metric.WithUnit("{state}"),
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."))
	handle(e)
	in.breakerRejections, e = m.Int64Counter(MetricBreakerRejections, metric.WithUnit("{rejection}"),
		metric.WithDescription("Attempts refused by an open or saturated half-open circuit breaker."))
	handle(e)
	in.budgetThrottled, e = m.Int64Counter(MetricBudgetThrottled, metric.WithUnit("{retry}"),
		metric.WithDescription("Retries refused by the retry budget."))
	handle(e)
	in.fallbacks, e = m.Int64Counter(MetricFallbacks, metric.WithUnit("{call}"),
		metric.WithDescription("Failed calls a fallback was asked to answer, by resilience.fallback.result (served, missed)."))
	handle(e)
	in.endpointEjected, e = m.Int64UpDownCounter(MetricEndpointEjected, metric.WithUnit("{endpoint}"),
		metric.WithDescription("Endpoints currently ejected by the endpoint policy, by target."))
	handle(e)
	in.refusals, e = m.Int64Counter(MetricRefusals, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts refused by the client itself before they reached a server, by resilience.refusal (limiter, throttle)."))
	handle(e)
	in.queueWait, e = m.Float64Histogram(MetricLimiterQueueWait, metric.WithUnit("s"),
		metric.WithDescription("Time attempts over the concurrency limit waited for a permit, by resilience.limiter.admitted."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	handle(e)
	in.policyIgnored, e = m.Int64Counter(MetricPolicyIgnored, metric.WithUnit("{call}"),
		metric.WithDescription("Calls whose policy has a setting that did not apply to them, by resilience.policy.setting."))
	handle(e)
	// The limit and the probability are gauges; the attempts in flight and
	// queued add up across targets and methods, so they are UpDownCounters
	// (which Prometheus shows as gauges too).
	in.meter = m
	in.limit, e = m.Int64ObservableGauge(MetricLimiterLimit, metric.WithUnit("{attempt}"),
		metric.WithDescription("Concurrency limit of unary attempts, per target (or target and method)."))
	handle(e)
	in.inFlight, e = m.Int64ObservableUpDownCounter(MetricLimiterInFlight, metric.WithUnit("{attempt}"),
		metric.WithDescription("Unary attempts holding a place under the concurrency limit."))
	handle(e)
	in.queued, e = m.Int64ObservableUpDownCounter(MetricLimiterQueued, metric.WithUnit("{attempt}"),
		metric.WithDescription("Unary attempts waiting in the concurrency limiter's queue."))
	handle(e)
	in.throttleProbability, e = m.Float64ObservableGauge(MetricThrottleProbability, metric.WithUnit("1"),
		metric.WithDescription("Probability with which client-side throttling refuses the next attempt to the target."))
	handle(e)
	if err != nil {
		// The instruments are still usable (the SDK returns working
		// instruments along with naming errors); report and carry on.
		otel.Handle(err)
	}
	return in
}

// instruments returns the instruments to use now, or nil when metrics are
// off.
func (s *state) instruments() *instruments {
	in := s.fixedMetrics
	if in == nil {
		mp := otel.GetMeterProvider()
		in = s.metrics.Load()
		if in == nil || !in.comparable || in.mp != mp {
			in = s.resolveMetrics(mp)
		}
	}
	if in.off {
		return nil
	}
	return in
}

// resolveMetrics makes the instruments of the global provider mp, the
// first time it is seen, and moves the gate gauges' callback to them. A
// provider of a non-comparable type is resolved on each call, and gets no
// gate gauges: a callback per call would pile up.
func (s *state) resolveMetrics(mp metric.MeterProvider) *instruments {
	if !isComparable(mp) {
		in := newInstruments(mp, true, s.opts.MetricNames)
		s.metrics.Store(in)
		return in
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.metrics.Load(); in != nil && in.comparable && in.mp == mp {
		return in // resolved meanwhile
	}
	in := newInstruments(mp, true, s.opts.MetricNames)
	s.metrics.Store(in)
	s.registerGatesLocked(in)
	return in
}

// isComparable reports whether the dynamic type of v is comparable.
// Comparing two interfaces panics only when both hold the same
// non-comparable type, so a cached provider of a comparable type can be
// compared with any other; one of a non-comparable type (none of the
// OpenTelemetry ones) is resolved again on each call.
func isComparable(v any) bool {
	t := reflect.TypeOf(v)
	return t != nil && t.Comparable()
}

// isUnsetGlobal reports whether p is OpenTelemetry's default global
// provider, which forwards to nothing until otel.SetTracerProvider or
// otel.SetMeterProvider is called. Once a provider is installed,
// otel.GetTracerProvider returns it instead and is resolved anew. If the
// otel internals change so that this no longer matches, the default
// provider is simply used (correct, only slower). Go auto-instrumentation,
// which hooks the default tracer provider, is not seen through it: install
// a provider, or pass one with WithTracerProvider.
func isUnsetGlobal(p any) bool {
	t := reflect.TypeOf(p)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// propagator returns the propagator to inject with.
func (s *state) propagator() propagation.TextMapPropagator {
	if p := s.opts.Propagator; p != nil {
		return p
	}
	return otel.GetTextMapPropagator()
}

// inject writes the span context of ctx into a copy of ctx's outgoing
// metadata. The caller's metadata is never modified; nothing is copied
// when there is no valid span context or the propagator writes nothing.
func (s *state) inject(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	c := &mdCarrier{ctx: ctx}
	s.propagator().Inject(ctx, c)
	if c.md == nil {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, c.md)
}

// mdCarrier is a propagation.TextMapCarrier over the outgoing metadata of
// ctx that copies it on the first Set.
type mdCarrier struct {
	ctx context.Context
	md  metadata.MD
}

func (c *mdCarrier) Get(key string) string {
	md := c.md
	if md == nil {
		md, _ = metadata.FromOutgoingContext(c.ctx)
	}
	if vs := md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c *mdCarrier) Set(key, value string) {
	if c.md == nil {
		// FromOutgoingContext returns a copy.
		c.md, _ = metadata.FromOutgoingContext(c.ctx)
		if c.md == nil {
			c.md = metadata.MD{}
		}
	}
	c.md.Set(key, value)
}

func (c *mdCarrier) Keys() []string {
	md := c.md
	if md == nil {
		md, _ = metadata.FromOutgoingContext(c.ctx)
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// attrKey identifies the attributes of a call.
type attrKey struct{ method, target string }

// preAttempts is how many attempt numbers get prebuilt span options.
const preAttempts = 4

// callAttrs are the span options and metric attributes of one (method,
// target) pair. They are immutable once built, except for the lazily built
// metric sets.
type callAttrs struct {
	name         string // span name: the full method without the leading "/"
	base         []attribute.KeyValue
	callStart    []trace.SpanStartOption
	attemptStart [preAttempts][]trace.SpanStartOption
	// grpcNames: the metrics take gRFC A66's attributes, of grpcBase.
	grpcNames bool
	grpcBase  []attribute.KeyValue

	metricsOnce sync.Once
	metrics     *metricAttrs
}

// metricAttrs are prebuilt metric options.
type metricAttrs struct {
	base    []metric.AddOption              // no status code
	baseRec []metric.RecordOption           // base, for histograms
	count   [numCodes][]metric.AddOption    // + rpc.response.status_code
	dur     [numCodes][]metric.RecordOption // + rpc.response.status_code, error.type unless OK; or + grpc.status
	refused [2][]metric.AddOption           // + resilience.refusal: limiter, throttle
	waited  [2][]metric.RecordOption        // + resilience.limiter.admitted: false, true
}

func newCallAttrs(method, target string, grpcNames bool) *callAttrs {
	name := methodName(method)
	base := make([]attribute.KeyValue, 0, 4)
	base = append(base, semconv.RPCSystemNameGRPC, semconv.RPCMethod(name))
	base = append(base, serverAttrs(target)...)
	ca := &callAttrs{
		name: name,
		base: base,
		callStart: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(semconv.RPCMethod(name)),
		},
	}
	for i := range ca.attemptStart {
		ca.attemptStart[i] = attemptStartOptions(base, i+1)
	}
	if grpcNames {
		ca.grpcNames = true
		ca.grpcBase = []attribute.KeyValue{attrGRPCMethod.String(name), attrGRPCTarget.String(canonicalTarget(target))}
	}
	return ca
}

func attemptStartOptions(base []attribute.KeyValue, n int) []trace.SpanStartOption {
	attrs := make([]attribute.KeyValue, 0, len(base)+1)
	attrs = append(append(attrs, base...), attrAttempt.Int(n))
	return []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
}

func (ca *callAttrs) attemptStartOptions(n int) []trace.SpanStartOption {
	if n >= 1 && n <= preAttempts {
		return ca.attemptStart[n-1]
	}
	return attemptStartOptions(ca.base, n)
}

func (ca *callAttrs) metricAttrs() *metricAttrs {
	ca.metricsOnce.Do(func() {
		m := ca.ourMetricAttrs
		if ca.grpcNames {
			m = ca.grpcMetricAttrs
		}
		ca.metrics = m()
		for i, reason := range [2]string{RefusalLimiter, RefusalThrottle} {
			ca.metrics.refused[i] = []metric.AddOption{metric.WithAttributeSet(ca.metricSetWith(attrRefusal.String(reason)))}
		}
		for i, admitted := range [2]bool{false, true} {
			ca.metrics.waited[i] = []metric.RecordOption{metric.WithAttributeSet(ca.metricSetWith(attrAdmitted.Bool(admitted)))}
		}
	})
	return ca.metrics
}

// ourMetricAttrs are the metric options with this library's attributes:
// rpc.*, server.* and the status code (and error.type) on counts and
// durations.
func (ca *callAttrs) ourMetricAttrs() *metricAttrs {
	baseSet := metric.WithAttributeSet(attribute.NewSet(ca.base...))
	m := &metricAttrs{base: []metric.AddOption{baseSet}, baseRec: []metric.RecordOption{baseSet}}
	kvs := make([]attribute.KeyValue, 0, len(ca.base)+2)
	for c := range numCodes {
		kvs = append(append(kvs[:0], ca.base...), statusCodeAttrs[c])
		set := metric.WithAttributeSet(attribute.NewSet(kvs...))
		m.count[c] = []metric.AddOption{set}
		if c != int(codes.OK) {
			kvs = append(kvs, errorTypeAttrs[c])
			set = metric.WithAttributeSet(attribute.NewSet(kvs...))
		}
		m.dur[c] = []metric.RecordOption{set}
	}
	return m
}

// metricSetWith is the call's base metric attributes (ours or gRFC A66's)
// with kv added; it allocates, so it is for calls off the happy path or
// for options built once (metricAttrs).
func (ca *callAttrs) metricSetWith(kv attribute.KeyValue) attribute.Set {
	base := ca.base
	if ca.grpcNames {
		base = ca.grpcBase
	}
	return attribute.NewSet(append(append(make([]attribute.KeyValue, 0, len(base)+1), base...), kv)...)
}

// grpcMetricAttrs are the metric options with gRFC A66's attributes:
// grpc.method and grpc.target, and grpc.status on the durations.
func (ca *callAttrs) grpcMetricAttrs() *metricAttrs {
	baseSet := metric.WithAttributeSet(attribute.NewSet(ca.grpcBase...))
	m := &metricAttrs{base: []metric.AddOption{baseSet}, baseRec: []metric.RecordOption{baseSet}}
	kvs := make([]attribute.KeyValue, 0, len(ca.grpcBase)+1)
	for c := range numCodes {
		m.count[c] = m.base
		kvs = append(append(kvs[:0], ca.grpcBase...), attrGRPCStatus.String(codeString(codes.Code(c))))
		m.dur[c] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
	}
	return m
}

func (ca *callAttrs) countOptions(c codes.Code) []metric.AddOption {
	if int(c) < numCodes {
		return ca.metricAttrs().count[c]
	}
	kvs := append(append([]attribute.KeyValue(nil), ca.base...), statusCodeAttr(c))
	return []metric.AddOption{metric.WithAttributes(kvs...)}
}

func (ca *callAttrs) durationOptions(c codes.Code) []metric.RecordOption {
	if int(c) < numCodes {
		return ca.metricAttrs().dur[c]
	}
	if ca.grpcNames {
		kvs := append(append([]attribute.KeyValue(nil), ca.grpcBase...), attrGRPCStatus.String(codeString(c)))
		return []metric.RecordOption{metric.WithAttributes(kvs...)}
	}
	kvs := append(append([]attribute.KeyValue(nil), ca.base...), endAttrs(c)...)
	return []metric.RecordOption{metric.WithAttributes(kvs...)}
}

// serverAttrs returns server.address and server.port for a dial target
// (cc.Target()): "dns:///orders:8443" gives orders and 8443,
// "localhost:50051" localhost and 50051, "passthrough:///bufnet" bufnet,
// "unix:///tmp/s.sock" /tmp/s.sock.
func serverAttrs(target string) []attribute.KeyValue {
	if target == "" {
		return nil
	}
	if h, p, ok := splitHostPort(target); ok {
		return hostPortAttrs(h, p)
	}
	ep := target
	if scheme, rest, ok := strings.Cut(target, "://"); ok {
		// Drop the authority: "dns://8.8.8.8/orders:443" -> "orders:443".
		if _, path, ok := strings.Cut(rest, "/"); ok {
			rest = path
		}
		if scheme == "unix" {
			rest = "/" + rest
		}
		ep = rest
	} else if scheme, rest, ok := strings.Cut(target, ":"); ok && (scheme == "unix" || scheme == "unix-abstract") {
		ep = rest
	}
	if ep == "" {
		return []attribute.KeyValue{semconv.ServerAddress(target)}
	}
	if h, p, ok := splitHostPort(ep); ok {
		return hostPortAttrs(h, p)
	}
	return []attribute.KeyValue{semconv.ServerAddress(ep)}
}

func hostPortAttrs(host string, port int) []attribute.KeyValue {
	return []attribute.KeyValue{semconv.ServerAddress(host), semconv.ServerPort(port)}
}

// splitHostPort splits "host:port" or "[v6]:port" with a numeric port.
func splitHostPort(s string) (string, int, bool) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, "/") {
		return "", 0, false
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, false
	}
	return host, port, true
}

// attrsFor returns the cached attributes of (method, target).
func (s *state) attrsFor(method, target string) *callAttrs {
	k := attrKey{method, target}
	if m := s.attrs.Load(); m != nil {
		if ca, ok := (*m)[k]; ok {
			return ca
		}
	}
	ca := newCallAttrs(method, target, s.opts.MetricNames == NamesGRPC)
	s.mu.Lock()
	defer s.mu.Unlock()
	var old map[attrKey]*callAttrs
	if p := s.attrs.Load(); p != nil {
		old = *p
	}
	if existing, ok := old[k]; ok {
		return existing
	}
	if len(old) >= maxCachedAttrs {
		return ca
	}
	m := make(map[attrKey]*callAttrs, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = ca
	s.attrs.Store(&m)
	return ca
}

// StartCall starts the telemetry of a logical call: the call span, child of
// ctx's span. The returned context carries the call span; when no attempt
// spans will be made, it also carries the injected trace context.
func (t *Recorder) StartCall(ctx context.Context, method, target string) (context.Context, Call) {
	s := t.s
	if s == nil {
		return ctx, Call{}
	}
	var l callLog
	if s.log != nil {
		l = callLog{lg: s.log, method: method, target: target}
	}
	tr := s.tracer()
	in := s.instruments()
	if tr == nil && in == nil {
		l.ctx = ctx
		return ctx, Call{l: l}
	}
	ca := s.attrsFor(method, target)
	c := &callState{s: s, attrs: ca, in: in}
	if tr != nil {
		var span trace.Span
		ctx, span = tr.Start(ctx, ca.name, ca.callStart...)
		if span.IsRecording() {
			c.span = span
			c.tracer = tr
			c.attemptSpans = !s.opts.NoAttemptSpans
		}
		if !c.attemptSpans {
			// One trace context for every attempt: the call span's, or,
			// when the call is not sampled, the unsampled context, so that
			// the server keeps the caller's sampling decision.
			ctx = s.inject(ctx)
		}
	}
	if in != nil {
		c.ctx = ctx
		c.start = time.Now()
	}
	l.ctx = ctx
	return ctx, Call{c: c, l: l}
}

// Call records one logical call. The zero value records nothing,
// and that is all the hooks check when telemetry is off. Its methods may be
// called from the attempts' goroutines (streams, hedging); end must be
// called once, after every attempt has ended.
type Call struct {
	c *callState
	l callLog // what logging needs; lives in the caller's call state, so it costs no allocation
}

// Enabled reports whether the call is traced or measured, so that callers
// can skip work done only for spans and metrics.
func (ct *Call) Enabled() bool { return ct.c != nil }

// callState is the state of a recorded call.
type callState struct {
	s     *state
	attrs *callAttrs

	// Tracing; span is nil when the call span is not recording.
	tracer       trace.Tracer
	span         trace.Span
	attemptSpans bool

	// Metrics; in is nil when metrics are off.
	in    *instruments
	ctx   context.Context
	start time.Time

	attempts atomic.Int32 // attempts started
	first    attemptState // attempt 1's state, to save an allocation

	// gRFC A96 (in.grpc): retries scheduled and not started yet, retries
	// and hedges started, attempts in flight, when the last attempt in
	// flight ended (Unix ns; 0: never) and the time spent with none in
	// flight since (ns).
	pendingRetries atomic.Int32
	retries        atomic.Int32
	hedges         atomic.Int32
	active         atomic.Int32
	idleSince      atomic.Int64
	retryDelay     atomic.Int64
}

// Attempt records one attempt. The zero value records nothing.
type Attempt struct {
	a *attemptState
}

// attemptState is the state of a recorded attempt.
type attemptState struct {
	c     *callState
	n     int
	span  trace.Span // the attempt span, if recording
	state int        // breaker state + 1; 0: not reported
	ctx   context.Context
	start time.Time
}

// StartAttempt starts attempt n: its CLIENT span, child of the call span,
// with the trace context injected into a copy of ctx's outgoing metadata.
func (ct *Call) StartAttempt(ctx context.Context, n int) (context.Context, Attempt) {
	ct.l.attempt(n)
	c := ct.c
	if c == nil {
		return ctx, Attempt{}
	}
	var a *attemptState
	if c.attempts.Add(1) == 1 {
		a = &c.first
	} else {
		a = new(attemptState)
	}
	a.c, a.n = c, n
	if c.attemptSpans {
		var span trace.Span
		ctx, span = c.tracer.Start(ctx, c.attrs.name, c.attrs.attemptStartOptions(n)...)
		if span.IsRecording() {
			a.span = span
		}
		ctx = c.s.inject(ctx)
	}
	if c.in != nil {
		a.ctx = ctx
		a.start = time.Now()
		if c.in.grpc {
			c.in.attemptStarted.Add(ctx, 1, c.attrs.metricAttrs().base...)
			c.a96Started(n, a.start)
		}
	}
	return ctx, Attempt{a}
}

// a96Started notes that attempt n starts at now: a retry when one was
// scheduled (RetryScheduled) and not started yet, else, after the first,
// a hedge; and the delay since the last attempt in flight ended, if none
// is in flight.
func (c *callState) a96Started(n int, now time.Time) {
	if c.active.Add(1) == 1 && n > 1 {
		if since := c.idleSince.Load(); since != 0 {
			c.retryDelay.Add(now.UnixNano() - since)
		}
	}
	if n == 1 {
		return
	}
	for {
		p := c.pendingRetries.Load()
		if p <= 0 {
			c.hedges.Add(1)
			return
		}
		if c.pendingRetries.CompareAndSwap(p, p-1) {
			c.retries.Add(1)
			return
		}
	}
}

// BreakerState records the state of the breaker the attempt was let
// through by (BreakerClosed, BreakerHalfOpen, BreakerOpen).
func (at *Attempt) BreakerState(state int) {
	a := at.a
	if a == nil {
		return
	}
	a.state = state + 1
	if a.span != nil {
		a.span.SetAttributes(breakerStateAttr(state))
	}
}

// EndpointEjected records that the attempt's failure ejected the endpoint
// at addr: an event on the attempt span, or on the call span when attempt
// spans are off. Call it before End.
func (at *Attempt) EndpointEjected(addr string) {
	a := at.a
	if a == nil {
		return
	}
	switch {
	case a.span != nil:
		a.span.AddEvent(eventEndpointEjected, trace.WithAttributes(attrEndpointAddress.String(addr)))
	case a.c.span != nil && !a.c.attemptSpans:
		a.c.span.AddEvent(eventEndpointEjected, trace.WithAttributes(
			attrAttempt.Int(a.n), attrEndpointAddress.String(addr)))
	}
}

// End ends the attempt with its outcome: err is the invoker's error.
func (at *Attempt) End(err error) {
	a := at.a
	if a == nil {
		return
	}
	at.a = nil
	c := a.c
	code := status.Code(err)
	if a.span != nil {
		a.span.SetAttributes(endAttrs(code)...)
		if code != codes.OK {
			a.span.SetStatus(otelcodes.Error, status.Convert(err).Message())
		}
		a.span.End()
	}
	if c.span != nil && !c.attemptSpans {
		kvs := make([]attribute.KeyValue, 0, 4)
		kvs = append(append(kvs, attrAttempt.Int(a.n)), endAttrs(code)...)
		if a.state > 0 {
			kvs = append(kvs, breakerStateAttr(a.state-1))
		}
		c.span.AddEvent(eventAttempt, trace.WithAttributes(kvs...))
	}
	if c.in != nil {
		now := time.Now()
		if c.in.grpc {
			if c.active.Add(-1) == 0 && err != nil {
				// No attempt in flight, and another may follow.
				c.idleSince.Store(now.UnixNano())
			}
		} else {
			c.in.attempts.Add(a.ctx, 1, c.attrs.countOptions(code)...)
		}
		c.in.attemptDuration.Record(a.ctx, now.Sub(a.start).Seconds(), c.attrs.durationOptions(code)...)
	}
}

// RetryScheduled records that attempt next will run after delay because
// the previous attempt failed with code.
func (ct *Call) RetryScheduled(next int, delay time.Duration, code codes.Code) {
	c := ct.c
	if c == nil {
		return
	}
	if c.span != nil {
		c.span.AddEvent(eventRetry, trace.WithAttributes(
			attrAttempt.Int(next),
			attrRetryDelay.Float64(delay.Seconds()),
			statusCodeAttr(code),
		))
	}
	if c.in != nil {
		if c.in.grpc {
			c.pendingRetries.Add(1)
		} else {
			c.in.retries.Add(c.ctx, 1, c.attrs.countOptions(code)...)
		}
	}
}

// BreakerRejected records that a breaker refused an attempt with err; the
// call usually ends with err.
func (ct *Call) BreakerRejected(err error) {
	if c := ct.refusal(reasonBreaker, eventBreakerRejected, err); c != nil && c.in != nil {
		c.in.breakerRejections.Add(c.ctx, 1, c.attrs.metricAttrs().base...)
	}
}

// Refusal reasons, the values of the resilience.refusal attribute.
const (
	RefusalLimiter  = "limiter"
	RefusalThrottle = "throttle"
)

// Refused records that a gate refused an attempt (reason: RefusalLimiter,
// RefusalThrottle) with err before it reached a server. Breaker refusals
// have BreakerRejected.
func (ct *Call) Refused(reason string, err error) {
	logReason := reasonThrottle
	if reason == RefusalLimiter {
		logReason = reasonLimiter
	}
	if c := ct.refusal(logReason, eventRefused, err, attrRefusal.String(reason)); c != nil && c.in != nil {
		i := 1
		if reason == RefusalLimiter {
			i = 0
		}
		c.in.refusals.Add(c.ctx, 1, c.attrs.metricAttrs().refused[i]...)
	}
}

// refusal records what every refusal records — the log reason, a span
// event with the attempt, the error type and kvs — and returns the call's
// state for its metric (nil when telemetry is off).
func (ct *Call) refusal(logReason int32, event string, err error, kvs ...attribute.KeyValue) *callState {
	ct.l.stopped(logReason)
	c := ct.c
	if c == nil {
		return nil
	}
	if c.span != nil {
		c.span.AddEvent(event, trace.WithAttributes(append(kvs,
			attrAttempt.Int(int(c.attempts.Load())+1),
			semconv.ErrorTypeKey.String(codeString(status.Code(err))),
		)...))
	}
	return c
}

// LimiterWait records that an attempt over the concurrency limit waited d
// for a permit, and whether it got one.
func (ct *Call) LimiterWait(d time.Duration, admitted bool) {
	c := ct.c
	if c == nil {
		return
	}
	if c.span != nil {
		c.span.AddEvent(eventLimiterQueued, trace.WithAttributes(
			attrAttempt.Int(int(c.attempts.Load())+1),
			attrQueueWait.Float64(d.Seconds()),
			attrAdmitted.Bool(admitted),
		))
	}
	if c.in != nil {
		i := 0
		if admitted {
			i = 1
		}
		c.in.queueWait.Record(c.ctx, d.Seconds(), c.attrs.metricAttrs().waited[i]...)
	}
}

// BudgetExhausted records that the retry budget refused a retry.
func (ct *Call) BudgetExhausted() {
	ct.l.stopped(reasonBudget)
	c := ct.c
	if c == nil {
		return
	}
	if c.span != nil {
		c.span.AddEvent(eventBudgetExhausted, trace.WithAttributes(
			attrAttempt.Int(int(c.attempts.Load())+1)))
	}
	if c.in != nil {
		c.in.budgetThrottled.Add(c.ctx, 1, c.attrs.metricAttrs().base...)
	}
}

// Fallback records that a fallback was asked to answer the failed call:
// served or not, and for a stale copy its age.
func (ct *Call) Fallback(served, stale bool, age time.Duration) {
	c := ct.c
	if c == nil {
		return
	}
	result := attrFallbackResult.String("missed")
	if served {
		result = attrFallbackResult.String("served")
	}
	if c.span != nil {
		kvs := []attribute.KeyValue{result}
		if served {
			kind := attrFallbackKind.String("answer")
			if stale {
				kind = attrFallbackKind.String("stale")
				kvs = append(kvs, attrFallbackAge.Float64(age.Seconds()))
			}
			kvs = append(kvs, kind)
		}
		c.span.AddEvent(eventFallback, trace.WithAttributes(kvs...))
	}
	if c.in != nil {
		c.in.fallbacks.Add(c.ctx, 1, metric.WithAttributes(append(append([]attribute.KeyValue(nil), c.attrs.base...), result)...))
	}
}

// Pushback records a server's retry pushback: the delay it asked for, or,
// when d is negative, that it asked not to retry.
func (ct *Call) Pushback(d time.Duration) {
	if d < 0 {
		ct.l.stopped(reasonPushback)
	}
	c := ct.c
	if c == nil || c.span == nil {
		return
	}
	if d < 0 {
		c.span.AddEvent(eventPushback, trace.WithAttributes(attrPushbackStop.Bool(true)))
		return
	}
	c.span.AddEvent(eventPushback, trace.WithAttributes(attrPushbackDelay.Float64(d.Seconds())))
}

// End ends the call with the error it returns to the caller (nil on
// success).
func (ct *Call) End(err error) {
	if err != nil && ct.l.lg != nil {
		ct.l.end(err)
	}
	c := ct.c
	if c == nil {
		return
	}
	ct.c = nil
	code := status.Code(err)
	if c.span != nil {
		kvs := make([]attribute.KeyValue, 0, 3)
		kvs = append(append(kvs, attrAttempts.Int(int(c.attempts.Load()))), endAttrs(code)...)
		c.span.SetAttributes(kvs...)
		if code != codes.OK {
			c.span.SetStatus(otelcodes.Error, status.Convert(err).Message())
		}
		c.span.End()
	}
	if c.in != nil {
		c.in.callDuration.Record(c.ctx, time.Now().Sub(c.start).Seconds(), c.attrs.durationOptions(code)...)
		if c.in.grpc {
			c.a96End()
		}
	}
}

// a96End records gRFC A96's per-call instruments. Like A96 says of the
// retries and hedges, a call that made one attempt reports none of them,
// retry_delay (which is then 0) included: the happy path stays at the
// three A66 measurements.
func (c *callState) a96End() {
	retries, hedges := c.retries.Load(), c.hedges.Load()
	if retries == 0 && hedges == 0 {
		return
	}
	m := c.attrs.metricAttrs()
	if retries > 0 {
		c.in.callRetries.Record(c.ctx, int64(retries), m.baseRec...)
	}
	if hedges > 0 {
		c.in.callHedges.Record(c.ctx, int64(hedges), m.baseRec...)
	}
	c.in.retryDelay.Record(c.ctx, time.Duration(c.retryDelay.Load()).Seconds(), m.baseRec...)
}

// BreakerState records the state of the breaker identified by key
// (BreakerClosed, BreakerHalfOpen, BreakerOpen) on the breaker state gauge,
// without logging: the engine gives a new breaker its first point with it.
// It never calls back into a breaker, so it may also run under a
// breaker's lock.
func (t *Recorder) BreakerState(key string, state int) {
	if t.s == nil {
		return
	}
	if in := t.s.instruments(); in != nil {
		in.breakerState.Record(context.Background(), int64(state), metric.WithAttributes(attrBreakerKey.String(key)))
	}
}

// EndpointEjection records that an endpoint of target was ejected
// (ejected) or returned to service on the ejected endpoints counter. The
// endpoint policy's OnEject calls it.
func (t *Recorder) EndpointEjection(target string, ejected bool) {
	if t.s == nil {
		return
	}
	if in := t.s.instruments(); in != nil {
		d := int64(1)
		if !ejected {
			d = -1
		}
		in.endpointEjected.Add(context.Background(), d, metric.WithAttributes(attrTarget.String(target)))
	}
}

// BreakerTransition records that the breaker identified by key went from
// one state to another: on the breaker state gauge, and in the log (Warn
// when it opens, Info otherwise). The breaker wiring calls it on every
// transition, outside the breaker's lock.
func (t *Recorder) BreakerTransition(key string, from, to int) {
	t.BreakerState(key, to)
	if t.s != nil && t.s.log != nil {
		t.s.log.breakerTransition(key, from, to)
	}
}
