package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"testing"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

func newMeteredEngine(t *testing.T, cfg Config) (*Engine, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg.Telemetry = telemetry.New(telemetry.Options{MeterProvider: mp, Logger: slog.New(slog.DiscardHandler)})
	return New(cfg, Layers{}), reader
}

// gaugeLines collects reader and renders the gate gauges' points as
// sorted "name {attributes} value" lines.
func gaugeLines(t *testing.T, reader *sdkmetric.ManualReader) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %d", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %d", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %g", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
				}
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func checkGauges(t *testing.T, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("gauges:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// The gauges read every target's limiter and throttle when collected.
func TestGaugesReadTheTargetsGates(t *testing.T) {
	e, reader := newMeteredEngine(t, Config{Limiter: &limiter.Config{Fixed: 2}, Throttle: &throttle.Config{}})
	if got := gaugeLines(t, reader); len(got) != 0 {
		t.Errorf("gauges before any target: %v", got)
	}
	orders := e.target("dns:///orders:443")
	e.target("billing:443")
	p, ok := e.limiterFor(orders, "/pkg.Orders/Get").TryAcquire()
	if !ok {
		t.Fatal("no permit under the limit")
	}
	checkGauges(t, gaugeLines(t, reader),
		"resilience.client.limiter.in_flight resilience.target=billing:443 0",
		"resilience.client.limiter.in_flight resilience.target=dns:///orders:443 1",
		"resilience.client.limiter.limit resilience.target=billing:443 2",
		"resilience.client.limiter.limit resilience.target=dns:///orders:443 2",
		"resilience.client.limiter.queued resilience.target=billing:443 0",
		"resilience.client.limiter.queued resilience.target=dns:///orders:443 0",
		"resilience.client.throttle.probability resilience.target=billing:443 0",
		"resilience.client.throttle.probability resilience.target=dns:///orders:443 0",
	)
	p.Done(limiter.Dropped)
	if got := gaugeLines(t, reader); !strings.Contains(strings.Join(got, "\n"), "in_flight resilience.target=dns:///orders:443 0") {
		t.Errorf("in flight not read anew at the next collection:\n\t%s", strings.Join(got, "\n\t"))
	}
}

func TestGaugesOfPerMethodLimiters(t *testing.T) {
	e, reader := newMeteredEngine(t, Config{Limiter: &limiter.Config{Fixed: 3}, LimiterPerMethod: true})
	orders := e.target("dns:///orders:443")
	e.limiterFor(orders, "/pkg.Orders/Get")
	e.limiterFor(orders, "/pkg.Orders/Put")
	e.target("billing:443") // no call yet: no limiter, no throttle, no point
	checkGauges(t, gaugeLines(t, reader),
		"resilience.client.limiter.in_flight resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Get 0",
		"resilience.client.limiter.in_flight resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Put 0",
		"resilience.client.limiter.limit resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Get 3",
		"resilience.client.limiter.limit resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Put 3",
		"resilience.client.limiter.queued resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Get 0",
		"resilience.client.limiter.queued resilience.target=dns:///orders:443,rpc.method=pkg.Orders/Put 0",
	)
}

func TestNoGaugesWithoutGates(t *testing.T) {
	e, reader := newMeteredEngine(t, Config{})
	e.target("dns:///orders:443")
	if got := gaugeLines(t, reader); len(got) != 0 {
		t.Errorf("gauges without a limiter or throttle: %v", got)
	}
}

// dropEngine makes an engine with every gate and its log hooks, gives it
// targets, and drops it; it returns a weak pointer to it.
func dropEngine(t *testing.T, reader **sdkmetric.ManualReader) weak.Pointer[Engine] {
	e, r := newMeteredEngine(t, Config{Limiter: &limiter.Config{}, LimiterPerMethod: true, Throttle: &throttle.Config{}})
	e.limiterFor(e.target("dns:///orders:443"), "/pkg.Orders/Get")
	if got := gaugeLines(t, r); len(got) != 4 {
		t.Fatalf("gauges of a live engine: %v, want 4", got)
	}
	*reader = r
	return weak.Make(e)
}

// A MeterProvider does not keep a dropped Middleware's engine alive: once
// it is collected, its gauges report nothing.
func TestDroppedEngineIsCollected(t *testing.T) {
	var reader *sdkmetric.ManualReader
	e := dropEngine(t, &reader)
	runtime.GC()
	if e.Value() != nil {
		t.Fatal("a dropped engine is still reachable: its gauges' callback or a limiter's hook holds it")
	}
	if got := gaugeLines(t, reader); len(got) != 0 {
		t.Errorf("a collected engine's gauges still report %v", got)
	}
}

// BenchmarkGaugeCollection measures one collection of the gate gauges of
// an engine with n targets, each with a limiter and a throttle: the cost
// the gauges add, paid by the reader, never by a call.
//
//	go test -run '^$' -bench BenchmarkGaugeCollection -benchmem ./internal/engine/
func BenchmarkGaugeCollection(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			e := New(Config{Limiter: &limiter.Config{}, Throttle: &throttle.Config{},
				Telemetry: telemetry.New(telemetry.Options{MeterProvider: mp})}, Layers{})
			for i := range n {
				e.target(fmt.Sprintf("dns:///svc-%d:443", i))
			}
			var rm metricdata.ResourceMetrics
			b.ReportAllocs()
			for b.Loop() {
				if err := reader.Collect(context.Background(), &rm); err != nil {
					b.Fatal(err)
				}
			}
			if got := len(rm.ScopeMetrics[0].Metrics); got != 4 {
				b.Fatalf("%d gauges collected, want 4", got)
			}
			runtime.KeepAlive(e) // the gauges hold it weakly, as a Middleware in use is held
		})
	}
}
