package interceptors

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets the TracerProvider that creates the call and
// attempt spans.
//
// Default: the global provider. It is looked up on each call
// (otel.GetTracerProvider), so a provider installed with
// otel.SetTracerProvider after New takes effect; until one is installed,
// tracing costs a few nanoseconds per call and allocates nothing. To turn
// tracing off whatever the global provider, pass
// go.opentelemetry.io/otel/trace/noop.NewTracerProvider(). nil is invalid.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) error {
		if isNil(tp) {
			return invalid("WithTracerProvider", "provider is nil")
		}
		c.telemetry.TracerProvider = tp
		return nil
	})
}

// WithMeterProvider sets the MeterProvider that creates the
// resilience.client.* instruments.
//
// Default: the global provider, looked up on each call
// (otel.GetMeterProvider), so a provider installed with
// otel.SetMeterProvider after New takes effect. To turn metrics off
// whatever the global provider, pass
// go.opentelemetry.io/otel/metric/noop.NewMeterProvider(). nil is invalid.
//
// The limiter and throttle gauges are observable instruments: the
// provider calls back into the Middleware when it collects. It holds the
// Middleware weakly, so a Middleware that is no longer used (its
// connections closed, no reference left) is garbage collected as if the
// provider did not know it, and its gauges stop.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) error {
		if isNil(mp) {
			return invalid("WithMeterProvider", "provider is nil")
		}
		c.telemetry.MeterProvider = mp
		return nil
	})
}

// WithPropagators sets the propagator that writes the trace context of each
// attempt into a copy of its outgoing metadata, so that the server's span
// is a child of the attempt span.
//
// Default: the global propagator, looked up on each attempt
// (otel.GetTextMapPropagator); it injects nothing until one is installed
// with otel.SetTextMapPropagator. Nothing is injected while tracing is off.
// To never inject, pass propagation.NewCompositeTextMapPropagator() (no
// propagators). nil is invalid.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) error {
		if isNil(p) {
			return invalid("WithPropagators", "propagator is nil")
		}
		c.telemetry.Propagator = p
		return nil
	})
}

// WithAttemptSpans sets whether each attempt gets its own CLIENT span, a
// child of the call span (the default, true).
//
// Turn it off when otelgrpc.NewClientHandler (or another stats handler that
// makes a CLIENT span per attempt) is installed on the connection, to avoid
// two CLIENT spans per attempt: otelgrpc's spans then hang directly under
// the call span, and what the attempt spans would carry (attempt number,
// status code, breaker state) is recorded as a resilience.attempt event on
// the call span when each attempt ends.
func WithAttemptSpans(on bool) Option {
	return optionFunc(func(c *config) error {
		c.telemetry.NoAttemptSpans = !on
		return nil
	})
}
