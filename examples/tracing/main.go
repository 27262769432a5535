// Command tracing sends one flaky call's trace to a tracing backend over
// OTLP/gRPC, so that every attempt can be seen in Jaeger (or Tempo, or any
// OTLP collector).
//
// It starts an EchoService (with resiliencetest.Faults on the server) that
// fails the first two attempts with Unavailable, instrumented with
// otelgrpc.NewServerHandler as a second service ("echo-server"), and calls
// it once through the resilience interceptors from inside an application
// span of the "tracing-client" service. Both services export to the same
// endpoint. It then flushes and prints the trace ID.
//
// To watch it, start Jaeger's all-in-one build (in-memory storage, OTLP on
// 127.0.0.1:4317, the query API and UI on :16686) and run the example:
//
//	docker run --rm -p 4317:4317 -p 16686:16686 jaegertracing/jaeger:2.13.0
//	go -C examples run ./tracing
//
// and open http://localhost:16686/trace/<trace ID>. Without Docker, build
// the same Jaeger release (v1.76.0 / v2.13.0) from source with
// scripts/jaeger.sh, which prints the binary's path, and run that binary
// with no arguments. (`go run github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0`
// and `go install` refuse the module: its go.mod has a replace directive.) A
// binary built from source serves the query API but not the UI's assets:
//
//	curl -s http://localhost:16686/api/traces/<trace ID>
//
// The endpoint is taken from -endpoint, else from the standard
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
// variables (with OTEL_EXPORTER_OTLP_INSECURE and friends), else
// http://127.0.0.1:4317. An http:// endpoint is dialled without TLS.
//
// The trace, as Jaeger shows it (service, span name, kind, attributes;
// TestJaegerShowsEveryAttempt checks it):
//
//	tracing-client  handle-request  INTERNAL
//	└─ tracing-client  resilience.testing.v1.EchoService/Echo  INTERNAL  resilience.attempts=3  rpc.response.status_code=OK
//	   │                                          events: 2 × resilience.retry {resilience.attempt, resilience.retry.delay, rpc.response.status_code}
//	   ├─ tracing-client  resilience.testing.v1.EchoService/Echo  CLIENT  resilience.attempt=1  rpc.response.status_code=UNAVAILABLE
//	   │  └─ echo-server  resilience.testing.v1.EchoService/Echo  SERVER  rpc.response.status_code=UNAVAILABLE
//	   ├─ tracing-client  resilience.testing.v1.EchoService/Echo  CLIENT  resilience.attempt=2  rpc.response.status_code=UNAVAILABLE
//	   │  └─ echo-server  resilience.testing.v1.EchoService/Echo  SERVER  rpc.response.status_code=UNAVAILABLE
//	   └─ tracing-client  resilience.testing.v1.EchoService/Echo  CLIENT  resilience.attempt=3  rpc.response.status_code=OK
//	      └─ echo-server  resilience.testing.v1.EchoService/Echo  SERVER  rpc.response.status_code=OK
//
// The call span is the logical call; each attempt is a CLIENT span of its
// own with the trace context injected per attempt, so each server span
// hangs under the attempt that reached it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// Names the trace is made of.
const (
	clientService = "tracing-client"
	serverService = "echo-server"
	appSpanName   = "handle-request"
	tracerName    = "github.com/grpc-resilience/resilience/examples/tracing"
	// defaultEndpoint is used when neither -endpoint nor the OTEL_*
	// variables say where to export.
	defaultEndpoint = "http://127.0.0.1:4317"
	// failures is how many attempts the server fails before it answers.
	failures = 2
)

// errExport marks a failure to hand the spans to the collector.
var errExport = errors.New("exporting spans")

func main() {
	endpoint := flag.String("endpoint", "",
		"OTLP/gRPC endpoint URL (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, $OTEL_EXPORTER_OTLP_ENDPOINT, else "+defaultEndpoint+")")
	timeout := flag.Duration("timeout", 15*time.Second, "give up after this long (the export included)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if _, err := runExport(ctx, os.Stdout, *endpoint); err != nil {
		log.Fatal(err)
	}
}

// runExport makes the traced call with one OTLP/gRPC exporter per service,
// both to endpoint (see exporterOptions), prints the trace ID to w and
// returns it.
func runExport(ctx context.Context, w io.Writer, endpoint string) (trace.TraceID, error) {
	opts := exporterOptions(endpoint)
	clientExp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return trace.TraceID{}, fmt.Errorf("client exporter: %w", err)
	}
	serverExp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		_ = clientExp.Shutdown(ctx)
		return trace.TraceID{}, fmt.Errorf("server exporter: %w", err)
	}
	id, err := run(ctx, w, clientExp, serverExp)
	if errors.Is(err, errExport) {
		return id, fmt.Errorf("%w (is an OTLP/gRPC collector listening at %s?)", err, describeEndpoint(endpoint))
	}
	if err != nil {
		return id, err
	}
	fmt.Fprintf(w, "trace %s exported to %s\n", id, describeEndpoint(endpoint))
	fmt.Fprintf(w, "Jaeger: http://localhost:16686/trace/%s\n", id)
	return id, nil
}

// exporterOptions: an explicit endpoint URL wins; else the exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables if one names an endpoint; else
// defaultEndpoint. (The exporter's own default, localhost:4317 with TLS, is
// not what a local Jaeger serves.)
func exporterOptions(endpoint string) []otlptracegrpc.Option {
	if endpoint == "" && endpointFromEnv() == "" {
		endpoint = defaultEndpoint
	}
	if endpoint == "" {
		return nil
	}
	return []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(endpoint)}
}

func endpointFromEnv() string {
	if e := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); e != "" {
		return e
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

func describeEndpoint(endpoint string) string {
	if endpoint == "" {
		if endpoint = endpointFromEnv(); endpoint == "" {
			endpoint = defaultEndpoint
		}
	}
	return endpoint
}

// run makes one call that takes 3 attempts, inside an application span, and
// returns the trace ID. Spans of the client (the application and the
// interceptors) go to clientExp, spans of the server (otelgrpc) to
// serverExp; both exporters are flushed and shut down before run returns,
// whatever happens.
func run(ctx context.Context, w io.Writer, clientExp, serverExp sdktrace.SpanExporter) (id trace.TraceID, err error) {
	clientTP := newTracerProvider(clientService, clientExp)
	serverTP := newTracerProvider(serverService, serverExp)
	defer func() {
		// Flushing waits for the exporter, so it is bounded by ctx (without
		// a collector the exporter would retry for a minute); it reports
		// export errors, which Shutdown does not. Shutdown then stops the
		// exporter and closes its connection, even when ctx is done.
		for _, tp := range []*sdktrace.TracerProvider{clientTP, serverTP} {
			if e := tp.ForceFlush(ctx); e != nil && err == nil {
				err = fmt.Errorf("%w: %w", errExport, e)
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if e := tp.Shutdown(sctx); e != nil && err == nil {
				err = fmt.Errorf("shutting down the tracer provider: %w", e)
			}
			cancel()
		}
	}()
	// The W3C trace context travels in each attempt's metadata, so that
	// each server span is a child of its attempt span. Nothing global is
	// installed: both sides get their providers and propagator explicitly.
	prop := propagation.TraceContext{}

	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return id, err
	}
	if err := faults.InjectNext(testingv1.EchoService_Echo_FullMethodName, failures, resiliencetest.Fail(codes.Unavailable)); err != nil {
		return id, err
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		return id, err
	}
	srv := grpc.NewServer(append(faults.ServerOptions(),
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(serverTP),
			otelgrpc.WithPropagators(prop),
		)),
		// Stop then waits for the handlers, so that every server span has
		// ended before the server's provider is flushed (deferred above, so
		// it runs after this).
		grpc.WaitForHandlers(true),
	)...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	m, err := interceptors.New(
		interceptors.MaxAttempts(failures+1),
		interceptors.WithTracerProvider(clientTP),
		interceptors.WithPropagators(prop),
	)
	if err != nil {
		return id, err
	}
	readyCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := interceptors.NewClientReady(readyCtx, lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return id, err
	}
	defer conn.Close()

	ctx, span := clientTP.Tracer(tracerName).Start(ctx, appSpanName)
	id = span.SpanContext().TraceID()
	var attempts int
	resp, err := testingv1.NewEchoServiceClient(conn).Echo(ctx,
		&testingv1.EchoRequest{Message: "hello"}, interceptors.Attempts(&attempts))
	span.End()
	if err != nil {
		return id, fmt.Errorf("call: %w", err)
	}
	if attempts != failures+1 {
		return id, fmt.Errorf("call: want %d attempts, got %d", failures+1, attempts)
	}
	fmt.Fprintf(w, "call: %q after %d attempts\n", resp.GetMessage(), attempts)
	return id, nil
}

// newTracerProvider returns an SDK provider that samples everything (or,
// on the server, follows the caller's decision) and batches spans to exp,
// with service.name set to service.
func newTracerProvider(service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
	res, err := resource.Merge(resource.Default(),
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		// Only when OTEL_RESOURCE_ATTRIBUTES is malformed or schemas
		// conflict: the service name alone still makes a usable trace.
		res = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
}
