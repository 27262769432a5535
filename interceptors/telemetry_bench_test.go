package interceptors

import (
	"context"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// dropProcessor is a SpanProcessor that drops every span: the SDK still
// samples, records and snapshots spans, nothing is exported.
type dropProcessor struct{}

func (dropProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropProcessor) Shutdown(context.Context) error                  { return nil }
func (dropProcessor) ForceFlush(context.Context) error                { return nil }

// BenchmarkTelemetry compares, in one run, a happy-path unary call over
// bufconn through
//
//   - client=resilience: this package, one call span and one attempt
//     span per call;
//   - client=mw-retry+otelgrpc: go-grpc-middleware v2's retry interceptor
//     and otelgrpc.NewClientHandler, one CLIENT span per attempt;
//   - client=bare: no interceptor (tel=off only);
//
// with tel=traces (an SDK TracerProvider that samples everything and
// drops the spans, no-op metrics), tel=traces+metrics (the same plus an SDK
// MeterProvider that is never read) and tel=off (no-op providers):
//
//	go test -run '^$' -bench BenchmarkTelemetry -benchmem -count 6 ./interceptors/ | tee tel.txt
//	benchstat -col /client tel.txt
func BenchmarkTelemetry(b *testing.B) {
	for _, tel := range []string{"traces", "traces+metrics", "off"} {
		for _, client := range []string{"resilience", "mw-retry+otelgrpc", "bare"} {
			if client == "bare" && tel != "off" {
				continue
			}
			b.Run("tel="+tel+"/client="+client, func(b *testing.B) {
				var tp trace.TracerProvider = tracenoop.NewTracerProvider()
				var mp metric.MeterProvider = metricnoop.NewMeterProvider()
				if tel != "off" {
					stp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(dropProcessor{}))
					b.Cleanup(func() { _ = stp.Shutdown(context.Background()) })
					tp = stp
				}
				if tel == "traces+metrics" {
					smp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
					b.Cleanup(func() { _ = smp.Shutdown(context.Background()) })
					mp = smp
				}
				prop := propagation.TraceContext{}
				var opts []grpc.DialOption
				switch client {
				case "resilience":
					m := MustNew(WithTracerProvider(tp), WithMeterProvider(mp), WithPropagators(prop))
					opts = append(opts, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
				case "mw-retry+otelgrpc":
					opts = append(opts,
						grpc.WithUnaryInterceptor(retry.UnaryClientInterceptor(
							retry.WithMax(3),
							retry.WithCodes(codes.Unavailable, codes.DeadlineExceeded),
							retry.WithBackoff(retry.BackoffExponentialWithJitter(50*time.Millisecond, 0.2)),
						)),
						grpc.WithStatsHandler(otelgrpc.NewClientHandler(
							otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp), otelgrpc.WithPropagators(prop))),
					)
				}
				h := newHarnessDial(b, opts...)
				// A caller deadline, so that no interceptor adds one.
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				req := &testingv1.EchoRequest{Message: "hi"}
				if _, err := h.client.Echo(ctx, req); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := h.client.Echo(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
