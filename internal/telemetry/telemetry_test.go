package telemetry

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const method = "/resilience.testing.v1.EchoService/Echo"

// hookSequence runs the hooks of a retried call.
func hookSequence(r Recorder, ctx context.Context, fail error) {
	cctx, c := r.StartCall(ctx, method, "passthrough:///bufnet")
	_, a := c.StartAttempt(cctx, 1)
	a.End(fail)
	c.RetryScheduled(2, time.Millisecond, codes.Unavailable)
	_, a = c.StartAttempt(cctx, 2)
	a.End(nil)
	c.End(nil)
}

func offCases() []struct {
	name string
	opts Options
} {
	return []struct {
		name string
		opts Options
	}{
		{"noop providers", Options{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()}},
		// Global providers never installed.
		{"default", Options{}},
	}
}

func TestOffAllocatesNothing(t *testing.T) {
	fail := status.Error(codes.Unavailable, "down")
	for _, tc := range offCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.opts)
			if r.s.tracer() != nil || r.s.instruments() != nil {
				t.Fatalf("tracer %v, instruments %v; want both off", r.s.tracer(), r.s.instruments())
			}
			ctx := context.Background()
			if n := testing.AllocsPerRun(100, func() { hookSequence(r, ctx, fail) }); n != 0 {
				t.Errorf("a retried call's hooks allocate %v times, want 0", n)
			}
		})
	}
}

// BenchmarkHooks measures the hooks of one call with one attempt, without
// gRPC: with tracing and metrics off they must cost a few nanoseconds and
// allocate nothing.
func BenchmarkHooks(b *testing.B) {
	for _, tc := range offCases() {
		b.Run(tc.name, func(b *testing.B) {
			r := New(tc.opts)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				cctx, c := r.StartCall(ctx, method, "passthrough:///bufnet")
				_, a := c.StartAttempt(cctx, 1)
				a.End(nil)
				c.End(nil)
			}
		})
	}
}

func renderAttrs(kvs []attribute.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func TestServerAttrs(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"dns:///orders:8443", "{server.address=orders server.port=8443}"},
		{"dns://8.8.8.8/orders.svc:443", "{server.address=orders.svc server.port=443}"},
		{"localhost:50051", "{server.address=localhost server.port=50051}"},
		{"[::1]:50051", "{server.address=::1 server.port=50051}"},
		{"passthrough:///bufnet", "{server.address=bufnet}"},
		{"unix:///tmp/s.sock", "{server.address=/tmp/s.sock}"},
		{"unix:relative.sock", "{server.address=relative.sock}"},
		{"orders", "{server.address=orders}"},
		{"", "{}"},
	} {
		if got := renderAttrs(serverAttrs(tc.target)); got != tc.want {
			t.Errorf("serverAttrs(%q) = %s, want %s", tc.target, got, tc.want)
		}
	}
}
