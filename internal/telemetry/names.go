package telemetry

import (
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc/resolver"
)

// Names selects the names of the call and attempt metrics.
type Names uint8

const (
	// NamesResilience are the resilience.client.* instruments (the
	// default): resilience.client.attempts, .retries, .call.duration and
	// .attempt.duration, with the OpenTelemetry RPC semantic-convention
	// attributes.
	NamesResilience Names = iota
	// NamesGRPC are gRPC's standard names: the per-call instruments of gRFC
	// A66 (grpc.client.attempt.started, grpc.client.attempt.duration,
	// grpc.client.call.duration) and the retry instruments of gRFC A96
	// (grpc.client.call.retries, grpc.client.call.hedges,
	// grpc.client.call.retry_delay), with the grpc.method, grpc.target and
	// grpc.status attributes. The breaker, budget, fallback and overload
	// instruments, which neither gRFC covers, keep their
	// resilience.client.* names and take grpc.method and grpc.target too
	// (the limiter and throttle gauges, which are per target: grpc.target,
	// and grpc.method for limiters keyed by method).
	NamesGRPC
)

// gRFC A66 and A96 instrument names.
const (
	MetricGRPCAttemptStarted  = "grpc.client.attempt.started"
	MetricGRPCAttemptDuration = "grpc.client.attempt.duration"
	MetricGRPCCallDuration    = "grpc.client.call.duration"
	MetricGRPCCallRetries     = "grpc.client.call.retries"
	MetricGRPCCallHedges      = "grpc.client.call.hedges"
	MetricGRPCCallRetryDelay  = "grpc.client.call.retry_delay"
)

// gRFC A66 attributes.
const (
	attrGRPCMethod = attribute.Key("grpc.method")
	attrGRPCTarget = attribute.Key("grpc.target")
	attrGRPCStatus = attribute.Key("grpc.status")
)

// A66LatencyBuckets are gRFC A66's bucket boundaries, in seconds, for the
// latency histograms; A96 recommends them for grpc.client.call.retry_delay
// where exponential histograms are not available.
var A66LatencyBuckets = []float64{0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002,
	0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03,
	0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65,
	0.8, 1, 2, 5, 10, 20, 50, 100}

// A96CountBuckets are gRFC A96's bucket boundaries for
// grpc.client.call.retries and grpc.client.call.hedges.
var A96CountBuckets = []float64{1, 2, 3, 4, 5}

// canonicalTarget returns target as grpc-go's ClientConn.CanonicalTarget
// reports it for a client made with grpc.NewClient: unchanged when it is a
// URI with a registered resolver scheme, else with the default scheme,
// "dns:///", in front. gRFC A66's grpc.target is that canonical form, so
// that these series join grpc-go's own (stats/opentelemetry).
func canonicalTarget(target string) string {
	if u, err := url.Parse(target); err == nil && u.Scheme != "" && resolver.Get(strings.ToLower(u.Scheme)) != nil {
		return target
	}
	return "dns:///" + target
}
