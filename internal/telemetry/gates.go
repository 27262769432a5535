package telemetry

import (
	"context"
	"runtime"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// GateState is the state of the overload gates of one target, read when
// the gauges are collected: its concurrency limiter and its throttle, or,
// with limiters keyed by target and method, one method's limiter (Method
// set, Throttle false).
type GateState struct {
	Target string // the connection's target, as dialled
	Method string // the full method of a per-method limiter; "" otherwise

	Limiter  bool // Limit, InFlight and Queued are set
	Limit    int
	InFlight int
	Queued   int

	Throttle    bool    // Probability is set
	Probability float64 // of refusing the next attempt
}

// ObserveGates makes the Recorder's gauges of the overload gates
// (MetricLimiterLimit, MetricLimiterInFlight, MetricLimiterQueued,
// MetricThrottleProbability) report, at every collection, what read
// reports for owner. Nothing runs on the call path: the gauges are
// observable instruments whose callback calls read.
//
// The callback lives as long as the MeterProvider that holds it, which may
// outlive owner (a Middleware that is dropped). So owner is held weakly:
// once it is unreachable, the callback reports nothing, and its
// registration is removed (by a cleanup that the runtime runs after a
// garbage collection). read must therefore not hold owner itself: pass a
// method expression such as (*Engine).gateStates, not a closure over it.
// read must not block; it may run concurrently with itself (two readers
// collecting at once).
//
// Call it once, before the first call. Gauges need a MeterProvider of a
// comparable type (every OpenTelemetry one); the global provider is
// followed as for the other metrics: a provider installed later takes the
// callback over from the previous one.
func ObserveGates[T any](r Recorder, owner *T, read func(owner *T, report func(GateState))) {
	s := r.s
	if s == nil || owner == nil || read == nil {
		return
	}
	wp := weak.Make(owner)
	s.observeGates(func(report func(GateState)) {
		if o := wp.Value(); o != nil {
			read(o, report)
		}
	})
	runtime.AddCleanup(owner, (*state).stopGates, s)
}

// observeGates sets the source of the gate gauges and registers their
// callback with the instruments resolved so far.
func (s *state) observeGates(src func(report func(GateState))) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates = src
	in := s.fixedMetrics
	if in == nil {
		in = s.metrics.Load()
	}
	s.registerGatesLocked(in)
}

// stopGates removes the gate gauges' callback: their owner is gone.
func (s *state) stopGates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates = nil
	s.registerGatesLocked(nil)
}

// registerGatesLocked moves the gate gauges' callback to in's meter: it
// unregisters the callback from the instruments it was on and, if there
// is a source and in records, registers it with in. Caller holds s.mu.
func (s *state) registerGatesLocked(in *instruments) {
	if s.gatesReg != nil {
		if err := s.gatesReg.Unregister(); err != nil {
			otel.Handle(err)
		}
		s.gatesReg = nil
	}
	src := s.gates
	if src == nil || in == nil || in.off || !in.comparable {
		return
	}
	grpcNames := s.opts.MetricNames == NamesGRPC
	reg, err := in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		src(func(g GateState) { in.observeGate(o, g, grpcNames) })
		return nil
	}, in.limit, in.inFlight, in.queued, in.throttleProbability)
	if err != nil {
		otel.Handle(err)
		return
	}
	s.gatesReg = reg
}

// observeGate records g on the gate gauges.
func (in *instruments) observeGate(o metric.Observer, g GateState, grpcNames bool) {
	set := metric.WithAttributeSet(gateAttrs(g, grpcNames))
	if g.Limiter {
		o.ObserveInt64(in.limit, int64(g.Limit), set)
		o.ObserveInt64(in.inFlight, int64(g.InFlight), set)
		o.ObserveInt64(in.queued, int64(g.Queued), set)
	}
	if g.Throttle {
		o.ObserveFloat64(in.throttleProbability, g.Probability, set)
	}
}

// gateAttrs are the attributes of g's points: resilience.target (the
// target as dialled) and, for a per-method limiter, rpc.method; or, with
// gRPC's names, grpc.target (canonical, as on the A66 instruments) and
// grpc.method.
func gateAttrs(g GateState, grpcNames bool) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, 2)
	if grpcNames {
		kvs = append(kvs, attrGRPCTarget.String(canonicalTarget(g.Target)))
		if g.Method != "" {
			kvs = append(kvs, attrGRPCMethod.String(methodName(g.Method)))
		}
	} else {
		kvs = append(kvs, attrTarget.String(g.Target))
		if g.Method != "" {
			kvs = append(kvs, semconv.RPCMethod(methodName(g.Method)))
		}
	}
	return attribute.NewSet(kvs...)
}

// methodName is a full method without its leading "/", as rpc.method and
// the span names carry it.
func methodName(method string) string {
	if len(method) > 1 && method[0] == '/' {
		return method[1:]
	}
	return method
}
