package monitoring

import (
	"strings"

	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// Prometheus names of the interceptors' metrics, as the OpenTelemetry
// Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus,
// default settings) writes them: dots become underscores, a unit in
// seconds adds _seconds, a gauge in units of 1 (a ratio) _ratio, a
// counter adds _total, and a histogram is the _bucket, _sum and _count
// series of its name.
var (
	// Default names (interceptors.MetricNamesResilience).
	Attempts        = promName(telemetry.MetricAttempts, "", true)
	Retries         = promName(telemetry.MetricRetries, "", true)
	CallDuration    = promName(telemetry.MetricCallDuration, "s", false)
	AttemptDuration = promName(telemetry.MetricAttemptDuration, "s", false)
	// Breaker and budget metrics, under both settings.
	BreakerState      = promName(telemetry.MetricBreakerState, "", false)
	BreakerRejections = promName(telemetry.MetricBreakerRejections, "", true)
	BudgetThrottled   = promName(telemetry.MetricBudgetThrottled, "", true)
	// Fallback answers, by LabelFallbackResult, under both settings.
	Fallbacks = promName(telemetry.MetricFallbacks, "", true)
	// Overload, under both settings: attempts the client refused itself
	// (by LabelRefusal), the time attempts waited in the limiter's queue
	// (by LabelAdmitted), and per target (LabelTarget, or LabelGRPCTarget
	// with gRPC's names) the limiter's limit, attempts in flight and
	// queued, and the throttle's refusal probability.
	Refusals            = promName(telemetry.MetricRefusals, "", true)
	LimiterQueueWait    = promName(telemetry.MetricLimiterQueueWait, "s", false)
	LimiterLimit        = promName(telemetry.MetricLimiterLimit, "", false)
	LimiterInFlight     = promName(telemetry.MetricLimiterInFlight, "", false)
	LimiterQueued       = promName(telemetry.MetricLimiterQueued, "", false)
	ThrottleProbability = promName(telemetry.MetricThrottleProbability, "1", false)
	// gRPC's names (interceptors.MetricNamesGRPC).
	GRPCAttemptStarted  = promName(telemetry.MetricGRPCAttemptStarted, "", true)
	GRPCAttemptDuration = promName(telemetry.MetricGRPCAttemptDuration, "s", false)
	GRPCCallDuration    = promName(telemetry.MetricGRPCCallDuration, "s", false)
	GRPCCallRetries     = promName(telemetry.MetricGRPCCallRetries, "", false)
	GRPCCallHedges      = promName(telemetry.MetricGRPCCallHedges, "", false)
	GRPCCallRetryDelay  = promName(telemetry.MetricGRPCCallRetryDelay, "s", false)
)

// Histograms are the metrics above that are histograms.
var Histograms = []string{CallDuration, AttemptDuration, GRPCAttemptDuration, GRPCCallDuration,
	GRPCCallRetries, GRPCCallHedges, GRPCCallRetryDelay, LimiterQueueWait}

// Metrics are every metric name above, histograms without their suffixes.
var Metrics = []string{Attempts, Retries, CallDuration, AttemptDuration, BreakerState,
	BreakerRejections, BudgetThrottled, Fallbacks, GRPCAttemptStarted, GRPCAttemptDuration,
	GRPCCallDuration, GRPCCallRetries, GRPCCallHedges, GRPCCallRetryDelay,
	Refusals, LimiterQueueWait, LimiterLimit, LimiterInFlight, LimiterQueued, ThrottleProbability}

// Prometheus label names of the attributes the rules and dashboard use.
const (
	LabelServerAddress = "server_address"
	LabelServerPort    = "server_port"
	LabelStatusCode    = "rpc_response_status_code"
	LabelBreakerKey    = "resilience_breaker_key"
	LabelGRPCTarget    = "grpc_target"
	LabelGRPCStatus    = "grpc_status"
	// LabelFallbackResult is "served" or "missed".
	LabelFallbackResult = "resilience_fallback_result"
	// LabelTarget is the target, as dialled, of the limiter and throttle
	// gauges under the default names.
	LabelTarget = "resilience_target"
	// LabelRefusal is the gate that refused: "limiter" or "throttle".
	LabelRefusal = "resilience_refusal"
	// LabelAdmitted says whether a wait in the limiter's queue ended with
	// a permit: "true" or "false".
	LabelAdmitted = "resilience_limiter_admitted"
)

func promName(otelName, unit string, counter bool) string {
	n := strings.ReplaceAll(otelName, ".", "_")
	switch {
	case unit == "s":
		n += "_seconds"
	case unit == "1" && !counter: // a ratio (the exporter adds _ratio to gauges only)
		n += "_ratio"
	}
	if counter {
		n += "_total"
	}
	return n
}
