package monitoring

import (
	"strings"

	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// Prometheus names of the interceptors' metrics, as the OpenTelemetry
// Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus,
// default settings) writes them: dots become underscores, a unit in
// seconds adds _seconds, a counter adds _total, and a histogram is the
// _bucket, _sum and _count series of its name.
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
	GRPCCallRetries, GRPCCallHedges, GRPCCallRetryDelay}

// Metrics are every metric name above, histograms without their suffixes.
var Metrics = []string{Attempts, Retries, CallDuration, AttemptDuration, BreakerState,
	BreakerRejections, BudgetThrottled, Fallbacks, GRPCAttemptStarted, GRPCAttemptDuration,
	GRPCCallDuration, GRPCCallRetries, GRPCCallHedges, GRPCCallRetryDelay}

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
)

func promName(otelName, unit string, counter bool) string {
	n := strings.ReplaceAll(otelName, ".", "_")
	if unit == "s" {
		n += "_seconds"
	}
	if counter {
		n += "_total"
	}
	return n
}
