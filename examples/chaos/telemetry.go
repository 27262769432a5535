package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
)

// telemetry holds the OTLP pipelines; nil when OTEL_EXPORTER_OTLP_ENDPOINT
// is not set. All its methods accept a nil receiver.
type telemetry struct {
	endpoint string
	clientTP *sdktrace.TracerProvider // service chaos-client
	serverTP *sdktrace.TracerProvider // service chaos-server
	mp       *sdkmetric.MeterProvider // service chaos-client
	metrics  *tracesOnlyTolerant
	prop     propagation.TextMapPropagator
}

// setupTelemetry builds the OTLP/gRPC trace and metric pipelines when
// endpoint is set. The exporters take the endpoint and the rest of their
// settings from the OTEL_EXPORTER_OTLP_* variables themselves.
func setupTelemetry(ctx context.Context, endpoint string, out *lockedWriter) (*telemetry, error) {
	if endpoint == "" {
		return nil, nil
	}
	t := &telemetry{endpoint: endpoint, prop: propagation.TraceContext{}}
	if err := probe(ctx, endpoint); err != nil {
		out.printf("telemetry: warning: %v (is the collector or Jaeger running?)\n", err)
	}
	newTP := func(service string) (*sdktrace.TracerProvider, error) {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, err
		}
		return sdktrace.NewTracerProvider(
			// 200 calls/s make about 1,000 spans/s: keep them all.
			sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(1<<16), sdktrace.WithBatchTimeout(time.Second)),
			sdktrace.WithResource(serviceResource(service)),
		), nil
	}
	var err error
	if t.clientTP, err = newTP("chaos-client"); err != nil {
		return nil, err
	}
	if t.serverTP, err = newTP("chaos-server"); err != nil {
		return nil, err
	}
	mexp, err := otlpmetricgrpc.New(ctx)
	if err != nil {
		return nil, err
	}
	var readerOpts []sdkmetric.PeriodicReaderOption
	if os.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "" {
		readerOpts = append(readerOpts, sdkmetric.WithInterval(5*time.Second))
	}
	t.metrics = &tracesOnlyTolerant{Exporter: mexp, out: out}
	t.mp = sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(t.metrics, readerOpts...)),
		sdkmetric.WithResource(serviceResource("chaos-client")),
	)
	return t, nil
}

// probe dials endpoint's host and port once, to warn early when nothing
// listens there; the exporters would otherwise only complain later.
func probe(ctx context.Context, endpoint string) error {
	hostport := endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		hostport = u.Host
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return nil // let the exporter interpret it
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return err
	}
	return conn.Close()
}

func serviceResource(name string) *resource.Resource {
	r, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		return resource.NewSchemaless(attribute.String("service.name", name))
	}
	return r
}

// tracesOnlyTolerant stops exporting metrics, with one notice, when the
// endpoint does not take them: Jaeger, for one, accepts only traces.
type tracesOnlyTolerant struct {
	sdkmetric.Exporter
	out *lockedWriter
	off atomic.Bool
}

func (e *tracesOnlyTolerant) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if e.off.Load() {
		return nil
	}
	err := e.Exporter.Export(ctx, rm)
	if status.Code(err) == codes.Unimplemented {
		if !e.off.Swap(true) {
			e.out.printf("telemetry: the endpoint does not take OTLP metrics (Jaeger takes traces only): exporting traces only\n")
		}
		return nil
	}
	return err
}

// serverOptions instrument the servers: a span per attempt, a child of the
// client's attempt span.
func (t *telemetry) serverOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.serverTP),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithPropagators(t.prop),
	))}
}

// clientOptions instrument the plain client with otelgrpc, so that its
// attempts show in the traces as the resilient client's do. The resilient
// client needs nothing: the interceptors make the call and attempt spans.
func (t *telemetry) clientOptions(name string) []grpc.DialOption {
	if t == nil || name != "plain" {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.clientTP),
		otelgrpc.WithMeterProvider(t.mp),
		otelgrpc.WithPropagators(t.prop),
	))}
}

// interceptorOptions point the interceptors at the pipelines.
func (t *telemetry) interceptorOptions() []interceptors.Option {
	if t == nil {
		return nil
	}
	return []interceptors.Option{
		interceptors.WithTracerProvider(t.clientTP),
		interceptors.WithMeterProvider(t.mp),
		interceptors.WithPropagators(t.prop),
	}
}

// tracer makes the root span of each call; nil without telemetry.
func (t *telemetry) tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.clientTP.Tracer("github.com/grpc-resilience/resilience/examples/chaos")
}

// shutdown flushes and stops the pipelines, for at most 5 s.
func (t *telemetry) shutdown(out *lockedWriter) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(t.clientTP.Shutdown(ctx), t.serverTP.Shutdown(ctx), t.mp.Shutdown(ctx))
	if err != nil {
		out.printf("telemetry: flushing to %s: %v\n", t.endpoint, err)
		return
	}
	if t.metrics.off.Load() {
		out.printf("telemetry: traces sent to %s\n", t.endpoint)
		return
	}
	out.printf("telemetry: traces and metrics sent to %s\n", t.endpoint)
}
