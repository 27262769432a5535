package telemetry

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gateOwner stands for the engine: what its gates report.
type gateOwner struct {
	mu     sync.Mutex
	states []GateState
}

func (o *gateOwner) set(states ...GateState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states = states
}

// read is the method expression ObserveGates is given: it holds no owner.
func (o *gateOwner) read(report func(GateState)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, g := range o.states {
		report(g)
	}
}

func newMeteredRecorder(t *testing.T, names Names) (Recorder, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return New(Options{MeterProvider: mp, MetricNames: names}), reader
}

// gatePoints renders the gate gauges' points of reader as sorted
// "name kind {attributes} value" lines.
func gatePoints(t *testing.T, reader *sdkmetric.ManualReader) []string {
	t.Helper()
	var lines []string
	for name, m := range collect(t, reader) {
		switch d := m.Data.(type) {
		case metricdata.Gauge[int64]:
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s gauge %s %d", name, renderSet(dp.Attributes), dp.Value))
			}
		case metricdata.Sum[int64]:
			if d.IsMonotonic {
				continue
			}
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s updown %s %d", name, renderSet(dp.Attributes), dp.Value))
			}
		case metricdata.Gauge[float64]:
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s gauge %s %g", name, renderSet(dp.Attributes), dp.Value))
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func renderSet(s attribute.Set) string { return renderAttrs(s.ToSlice()) }

func checkLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestGateGaugesUnderBothNamings(t *testing.T) {
	for _, tc := range []struct {
		name            string
		names           Names
		target, permeth string // attributes of the target, and of the per-method limiter
	}{
		{"resilience", NamesResilience,
			"{resilience.target=orders:443}",
			"{resilience.target=dns:///billing:443 rpc.method=pkg.Billing/Charge}"},
		// The canonical target, as on the A66 instruments.
		{"grpc", NamesGRPC,
			"{grpc.target=dns:///orders:443}",
			"{grpc.method=pkg.Billing/Charge grpc.target=dns:///billing:443}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, reader := newMeteredRecorder(t, tc.names)
			o := &gateOwner{}
			ObserveGates(r, o, (*gateOwner).read)
			o.set(
				GateState{Target: "orders:443", Limiter: true, Limit: 12, InFlight: 12, Queued: 3, Throttle: true, Probability: 0.25},
				GateState{Target: "dns:///billing:443", Method: "/pkg.Billing/Charge", Limiter: true, Limit: 4, InFlight: 1},
			)
			checkLines(t, "first collection", gatePoints(t, reader),
				MetricLimiterLimit+" gauge "+tc.target+" 12",
				MetricLimiterInFlight+" updown "+tc.target+" 12",
				MetricLimiterQueued+" updown "+tc.target+" 3",
				MetricThrottleProbability+" gauge "+tc.target+" 0.25",
				MetricLimiterLimit+" gauge "+tc.permeth+" 4",
				MetricLimiterInFlight+" updown "+tc.permeth+" 1",
				MetricLimiterQueued+" updown "+tc.permeth+" 0",
			)
			// Each collection reads the state anew.
			o.set(GateState{Target: "orders:443", Limiter: true, Limit: 20, InFlight: 2})
			checkLines(t, "second collection", gatePoints(t, reader),
				MetricLimiterLimit+" gauge "+tc.target+" 20",
				MetricLimiterInFlight+" updown "+tc.target+" 2",
				MetricLimiterQueued+" updown "+tc.target+" 0",
			)
		})
	}
}

// The gauges of a Recorder that follows the global provider move with it:
// the provider that was replaced no longer calls back.
func TestGateGaugesMoveToTheNextGlobalProvider(t *testing.T) {
	r := New(Options{})
	o := &gateOwner{}
	o.set(GateState{Target: "orders:443", Limiter: true, Limit: 7})
	ObserveGates(r, o, (*gateOwner).read)
	var readers []*sdkmetric.ManualReader
	for range 2 {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		r.s.resolveMetrics(mp) // what a call does once otel.SetMeterProvider(mp) was called
		readers = append(readers, reader)
	}
	if got := gatePoints(t, readers[0]); len(got) != 0 {
		t.Errorf("the replaced provider still reports %v", got)
	}
	if got := gatePoints(t, readers[1]); len(got) != 3 {
		t.Errorf("the current provider reports %v, want the limit, in flight and queued", got)
	}
}

// observeDropped registers a gate owner that nobody keeps and checks that
// it is reported while it lives; it returns a weak pointer to it.
func observeDropped(t *testing.T, r Recorder, reader *sdkmetric.ManualReader) weak.Pointer[gateOwner] {
	o := &gateOwner{}
	o.set(GateState{Target: "orders:443", Limiter: true, Limit: 7})
	ObserveGates(r, o, (*gateOwner).read)
	if got := gatePoints(t, reader); len(got) != 3 {
		t.Fatalf("a live owner's gates: %v, want the limit, in flight and queued", got)
	}
	return weak.Make(o)
}

// A dropped owner (a Middleware nobody keeps) is not kept alive by the
// MeterProvider: its gauges report nothing once it is collected, and the
// callback is unregistered, which frees the Recorder's state too.
func TestGateGaugesEndWithTheirOwner(t *testing.T) {
	r, reader := newMeteredRecorder(t, NamesResilience)
	owner := observeDropped(t, r, reader)
	runtime.GC()
	if owner.Value() != nil {
		t.Fatal("the owner is still reachable: the callback holds it")
	}
	if got := gatePoints(t, reader); len(got) != 0 {
		t.Errorf("a collected owner's gates are still reported: %v", got)
	}
	// The cleanup that unregisters the callback runs on the runtime's
	// cleanup goroutine after the collection.
	unregistered := func() bool {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		return r.s.gatesReg == nil && r.s.gates == nil
	}
	for i := 0; i < 1000 && !unregistered(); i++ {
		runtime.Gosched()
	}
	if !unregistered() {
		t.Error("the callback of a collected owner is still registered")
	}
}

func TestObserveGatesWithoutMetrics(t *testing.T) {
	var zero Recorder
	ObserveGates(zero, &gateOwner{}, (*gateOwner).read) // no state: nothing to do
	r := New(Options{})                                 // the global provider, never installed: metrics off
	ObserveGates(r, &gateOwner{}, (*gateOwner).read)
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.gatesReg != nil {
		t.Error("a callback was registered while metrics are off")
	}
}
