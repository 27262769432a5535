// Package telemetry records the spans and metrics of the interceptors'
// calls, behind the small interface the attempt engine calls: a [Recorder]
// per Middleware, a [Call] per logical call, an [Attempt] per attempt.
//
// # Model
//
//	app span
//	└─ logical call  "pkg.Service/Method"  INTERNAL   events: retry, breaker rejected, budget exhausted, pushback
//	   ├─ attempt 1  CLIENT  rpc.* attrs, status UNAVAILABLE   → server span
//	   └─ attempt 2  CLIENT  OK                                → server span
//
// Attribute names follow the OpenTelemetry semantic conventions v1.43.0 (the
// semconv package shipped with go.opentelemetry.io/otel v1.47.0); what they
// do not cover lives in the resilience.* namespace. Metrics are the
// resilience.client.* instruments named by the Metric constants, or, with
// [NamesGRPC], gRFC A66's call and attempt instruments and gRFC A96's retry
// instruments (the MetricGRPC constants) in place of the call, attempt and
// retry ones. Payloads and metadata values are never recorded.
//
// The overload gates' state (each target's concurrency limit, attempts in
// flight and queued, throttle probability) is reported by observable
// gauges whose callback reads the engine at collection time
// ([ObserveGates]): nothing is done for them on the call path. The engine
// is held weakly, so that a MeterProvider never keeps a dropped Middleware
// alive; the callback is unregistered once it is collected.
//
// # Logs
//
// With [Options.Logger] set, breaker transitions (opened at Warn, others at
// Info), calls that failed after retries (Warn) and failed calls whose
// retries a policy stopped (Info, with the reason) are logged; call records
// are rate limited per target. The changes of a concurrency limit worth
// knowing (it fell by half, reached its minimum, recovered) are logged
// through the limiter's hook that [Recorder.LimitLog] returns, rate
// limited per limiter. Logging keeps its per-call state inside
// [Call], so a successful call neither logs nor allocates for it.
//
// # Defaults
//
// The zero [Options]: the global tracer and meter providers and the global
// propagator, looked up on each call, so that providers installed after New
// take effect; one CLIENT span per attempt.
//
// # Cost
//
// When neither tracing nor metrics are enabled (no-op providers, or global
// providers that were never installed) StartCall returns after a few atomic
// loads and pointer comparisons, the other hooks after a nil check, and
// nothing is allocated. When enabled, the attribute sets and span start
// options of a (method, target) pair are built once and reused.
//
// # Concurrency
//
// A Recorder is safe for concurrent use. A Call's methods may be called
// from the attempts' goroutines (streams, hedging); Call.End must be called
// once, after every attempt has ended.
package telemetry
