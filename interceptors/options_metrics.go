package interceptors

import (
	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// MetricNames selects the names of the call and attempt metrics (see
// WithMetricNames).
type MetricNames uint8

const (
	// MetricNamesResilience, the default, names the call and attempt
	// metrics resilience.client.*: attempts (by status code), retries
	// (scheduled, by the code of the attempt retried), call.duration and
	// attempt.duration, with the OpenTelemetry RPC semantic-convention
	// attributes (rpc.method, server.address, rpc.response.status_code…).
	// They never collide with otelgrpc's rpc.client.* or grpc-go's
	// grpc.client.*.
	MetricNamesResilience MetricNames = iota
	// MetricNamesGRPC names them as gRPC does: the per-call instruments of
	// gRFC A66 (grpc.client.attempt.started, grpc.client.attempt.duration,
	// grpc.client.call.duration, with A66's latency buckets) and the retry
	// instruments of gRFC A96 (grpc.client.call.retries and
	// grpc.client.call.hedges, buckets 1…5, and
	// grpc.client.call.retry_delay), labelled grpc.method, grpc.target
	// (the canonical target, "dns:///host:port" for a plain host:port) and,
	// on durations, grpc.status. As A96 says, calls without retries or
	// hedges report none of the A96 instruments. grpc-go's own
	// stats/opentelemetry does not see the interceptors' retries, so it
	// emits no A96 series for them.
	//
	// Do not install grpc-go's stats/opentelemetry client metrics on the
	// same connection and MeterProvider with this setting: both would
	// write grpc.client.* series (under different instrumentation scopes),
	// and its grpc.client.call.duration times each of our attempts as a
	// call. otelgrpc (rpc.client.*) goes with either setting. The breaker,
	// budget, fallback and overload instruments keep their
	// resilience.client.* names, which no gRFC covers, and take the grpc.*
	// attributes (the limiter and throttle gauges, per target,
	// grpc.target, and grpc.method for limiters keyed by method).
	MetricNamesGRPC
)

// WithMetricNames selects the names of the call and attempt metrics:
// MetricNamesResilience (the default) or MetricNamesGRPC. Other values
// are rejected.
func WithMetricNames(n MetricNames) Option {
	return optionFunc(func(c *config) error {
		switch n {
		case MetricNamesResilience:
			c.telemetry.MetricNames = telemetry.NamesResilience
		case MetricNamesGRPC:
			c.telemetry.MetricNames = telemetry.NamesGRPC
		default:
			return invalid("WithMetricNames", "unknown value %d", n)
		}
		return nil
	})
}
