package interceptors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// telemetryEnv is an SDK TracerProvider that records every span and an
// SDK MeterProvider read by hand.
type telemetryEnv struct {
	rec    *tracetest.SpanRecorder
	ended  chan struct{} // one value per ended span
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

// endNotifier signals every ended span.
type endNotifier struct {
	sdktrace.SpanProcessor
	ch chan struct{}
}

func (n endNotifier) OnEnd(sdktrace.ReadOnlySpan) {
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

func newTelemetryEnv(t testing.TB) *telemetryEnv {
	t.Helper()
	e := &telemetryEnv{rec: tracetest.NewSpanRecorder(), ended: make(chan struct{}, 1024), reader: sdkmetric.NewManualReader()}
	e.tp = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(e.rec),
		sdktrace.WithSpanProcessor(endNotifier{SpanProcessor: tracetest.NewSpanRecorder(), ch: e.ended}),
	)
	e.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() {
		_ = e.tp.Shutdown(context.Background())
		_ = e.mp.Shutdown(context.Background())
	})
	return e
}

// options are the Middleware options that send telemetry to e.
func (e *telemetryEnv) options(more ...Option) []Option {
	return append([]Option{
		WithTracerProvider(e.tp),
		WithMeterProvider(e.mp),
		WithPropagators(propagation.TraceContext{}),
		Backoff(backoff.Constant(time.Millisecond)),
	}, more...)
}

// waitSpans waits until n spans have ended: servers end their spans after
// the client has its answer.
func (e *telemetryEnv) waitSpans(t testing.TB, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	timeout := time.After(guard)
	for len(e.rec.Ended()) < n {
		select {
		case <-e.ended:
		case <-timeout:
			t.Fatalf("%d spans ended, want %d:\n%s", len(e.rec.Ended()), n, renderForest(e.rec.Ended()))
		}
	}
	return e.rec.Ended()
}

// appCall runs call under an "app" span and returns the rendered tree
// below it once want spans (app included) have ended.
func (e *telemetryEnv) appCall(t testing.TB, want int, call func(ctx context.Context)) string {
	t.Helper()
	ctx, app := e.tp.Tracer("app").Start(context.Background(), "app")
	call(ctx)
	app.End()
	return renderTree(e.waitSpans(t, want), app.SpanContext().SpanID())
}

// renderTree renders the span with id root and its descendants, one span
// per line, children indented under their parent in start order:
//
//	name KIND [status] {sorted attributes}
//	  • event {sorted attributes}
//
// Attributes are shown for this package's spans and the test's own; spans
// of other instrumentation (otelgrpc) are marked "(otelgrpc)" and shown
// with name, kind and status only.
func renderTree(spans []sdktrace.ReadOnlySpan, root trace.SpanID) string {
	var b strings.Builder
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var top sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().SpanID() == root {
			top = s
		}
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
	}
	if top == nil {
		return "no span " + root.String()
	}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		indent := strings.Repeat("  ", depth)
		b.WriteString(indent + s.Name() + " " + strings.ToUpper(s.SpanKind().String()))
		if st := s.Status(); st.Code != otelcodes.Unset {
			fmt.Fprintf(&b, " %s(%q)", st.Code, st.Description)
		}
		if s.InstrumentationScope().Name == otelgrpc.ScopeName {
			b.WriteString(" (otelgrpc)\n")
		} else {
			b.WriteString(" " + renderAttrs(s.Attributes()) + "\n")
			for _, ev := range s.Events() {
				b.WriteString(indent + "  • " + ev.Name + " " + renderAttrs(ev.Attributes) + "\n")
			}
		}
		kids := children[s.SpanContext().SpanID()]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	walk(top, 0)
	return b.String()
}

// renderForest renders every span, for failure messages.
func renderForest(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s %s parent=%s id=%s %s\n", s.Name(), s.SpanKind(), s.Parent().SpanID(), s.SpanContext().SpanID(), renderAttrs(s.Attributes()))
	}
	return b.String()
}

func renderAttrs(kvs []attribute.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// collectMetrics returns every data point of the resilience instruments as
// "name {attributes} value" lines, sorted; histograms show their count.
func (e *telemetryEnv) collectMetrics(t testing.TB) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.InstrumentationName {
			continue
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %d", m.Name, renderAttrs(dp.Attributes.ToSlice()), dp.Value))
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %d", m.Name, renderAttrs(dp.Attributes.ToSlice()), dp.Value))
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s %g", m.Name, renderAttrs(dp.Attributes.ToSlice()), dp.Value))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %s count=%d", m.Name, renderAttrs(dp.Attributes.ToSlice()), dp.Count))
				}
			default:
				lines = append(lines, fmt.Sprintf("%s: unexpected %T", m.Name, m.Data))
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// sortAttrs sorts the space-separated attributes inside each {...} of s,
// so that expectations can list them in a readable order.
func sortAttrs(s string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			return b.String() + s
		}
		end := open + strings.IndexByte(s[open:], '}')
		parts := strings.Fields(s[open+1 : end])
		sort.Strings(parts)
		b.WriteString(s[:open] + "{" + strings.Join(parts, " ") + "}")
		s = s[end+1:]
	}
}

func checkTree(t *testing.T, got, want string) {
	t.Helper()
	want = sortAttrs(strings.TrimLeft(want, "\n"))
	if got != want {
		t.Errorf("span tree:\n%s\nwant:\n%s", got, want)
	}
}

// checkMetrics compares the collected metric points with want. Every
// client's breaker gauge starts with a closed point; it is expected unless
// want says otherwise about the gauge.
// noBreakerPoint, passed to checkMetrics, says the breaker gauge has no
// point.
const noBreakerPoint = telemetry.MetricBreakerState + " none"

func checkMetrics(t *testing.T, got []string, want ...string) {
	t.Helper()
	// The gauges of the overload gates (on by default) are compared only
	// where want names them: overload_telemetry_test.go.
	if !slices.ContainsFunc(want, isGateGauge) {
		got = slices.DeleteFunc(got, isGateGauge)
	}
	if !slices.ContainsFunc(want, func(w string) bool { return strings.HasPrefix(w, telemetry.MetricBreakerState) }) {
		want = append(want, telemetry.MetricBreakerState+" {resilience.breaker.key=passthrough:///bufnet} 0")
	}
	want = slices.DeleteFunc(want, func(w string) bool { return w == noBreakerPoint })
	for i := range want {
		want[i] = sortAttrs(want[i])
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("metrics:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Attribute renderings shared by the expectations below.
const (
	echoName  = "resilience.testing.v1.EchoService/Echo"
	rpcAttrs  = "rpc.method=" + echoName + " rpc.system.name=grpc server.address=bufnet"
	okAttrs   = "rpc.response.status_code=OK"
	unavAttrs = "error.type=UNAVAILABLE rpc.response.status_code=UNAVAILABLE"
)

func TestTelemetrySuccessAtFirstAttempt(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options()...)
	got := e.appCall(t, 3, func(ctx context.Context) {
		if err := echo(ctx, t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=1 rpc.method=`+echoName+` `+okAttrs+`}
    `+echoName+` CLIENT {resilience.attempt=1 `+rpcAttrs+` `+okAttrs+`}
`)
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" "+okAttrs+"} 1",
		telemetry.MetricAttemptDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
		telemetry.MetricCallDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
	)
}

func TestTelemetryRetryThenSuccess(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options()...)
	h.failNext(2, codes.Unavailable)
	got := e.appCall(t, 5, func(ctx context.Context) {
		if err := echo(ctx, t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=3 rpc.method=`+echoName+` `+okAttrs+`}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    • resilience.retry {resilience.attempt=3 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+rpcAttrs+`}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=2 `+rpcAttrs+`}
    `+echoName+` CLIENT {resilience.attempt=3 `+rpcAttrs+` `+okAttrs+`}
`)
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" "+okAttrs+"} 1",
		telemetry.MetricAttempts+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 2",
		telemetry.MetricRetries+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 2",
		telemetry.MetricAttemptDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
		telemetry.MetricAttemptDuration+" {"+unavAttrs+" "+rpcAttrs+"} count=2",
		telemetry.MetricCallDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
	)
}

func TestTelemetryExhaustedRetries(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options(MaxAttempts(3))...)
	h.failNext(3, codes.Unavailable)
	got := e.appCall(t, 5, func(ctx context.Context) {
		if err := echo(ctx, t, h.client); status.Code(err) != codes.Unavailable {
			t.Fatalf("Echo: %v, want Unavailable", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL Error("`+injectedMessage+`") {error.type=UNAVAILABLE resilience.attempts=3 rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    • resilience.retry {resilience.attempt=3 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+rpcAttrs+`}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=2 `+rpcAttrs+`}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=3 `+rpcAttrs+`}
`)
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 3",
		telemetry.MetricRetries+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 2",
		telemetry.MetricAttemptDuration+" {"+unavAttrs+" "+rpcAttrs+"} count=3",
		telemetry.MetricCallDuration+" {"+unavAttrs+" "+rpcAttrs+"} count=1",
	)
}

// TestTelemetryServerStream checks that streams, which share the attempt
// loop's hooks, make the same tree.
func TestTelemetryServerStream(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options()...)
	h.failNext(1, codes.Unavailable)
	got := e.appCall(t, 4, func(ctx context.Context) {
		stream, err := h.client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := recvAll(stream); err != nil || !equalInts(got, seq(3)) {
			t.Fatalf("stream received %v, %v; want %v, nil", got, err, seq(3))
		}
	})
	const name = "resilience.testing.v1.EchoService/ServerStream"
	const attrs = "rpc.method=" + name + " rpc.system.name=grpc server.address=bufnet"
	checkTree(t, got, `
app INTERNAL {}
  `+name+` INTERNAL {resilience.attempts=2 rpc.method=`+name+` `+okAttrs+`}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+name+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+attrs+`}
    `+name+` CLIENT {resilience.attempt=2 `+attrs+` `+okAttrs+`}
`)
}

// TestTelemetryHedgedCall checks the tree of a hedged call, whose attempts
// overlap: the hedge wins and the first attempt is cancelled.
func TestTelemetryHedgedCall(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options(WithMethodPolicy(MatchMethods(echoMethod),
		Hedging(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 2})))...)
	h.mu.Lock()
	h.blockAttemptOne = true // attempt 1 hangs until cancelled
	h.mu.Unlock()
	got := e.appCall(t, 4, func(ctx context.Context) {
		if err := echo(ctx, t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=2 rpc.method=`+echoName+` `+okAttrs+`}
    `+echoName+` CLIENT Error("context canceled") {error.type=CANCELLED resilience.attempt=1 `+rpcAttrs+` rpc.response.status_code=CANCELLED}
    `+echoName+` CLIENT {resilience.attempt=2 `+rpcAttrs+` `+okAttrs+`}
`)
}

// TestTelemetryBreakerRejection checks that a call refused by an open
// breaker still leaves its call span, with the rejection as an event, and
// that the breaker's state and rejections are measured.
func TestTelemetryBreakerRejection(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options(MaxAttempts(2),
		WithBreaker(breaker.Config{ConsecutiveFailures: 2, OpenTimeout: time.Hour}))...)
	h.failNext(2, codes.Unavailable)
	got := e.appCall(t, 5, func(ctx context.Context) {
		// Two failed attempts trip the breaker; the next call is refused.
		if err := echo(ctx, t, h.client); status.Code(err) != codes.Unavailable {
			t.Fatalf("first call: %v, want Unavailable", err)
		}
		if err := echo(ctx, t, h.client); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("second call: %v, want breaker.ErrOpen", err)
		}
	})
	const open = `breaker: circuit open for \"passthrough:///bufnet\" (state open)`
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL Error("`+injectedMessage+`") {error.type=UNAVAILABLE resilience.attempts=2 rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+rpcAttrs+`}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=2 `+rpcAttrs+`}
  `+echoName+` INTERNAL Error("`+open+`") {error.type=UNAVAILABLE resilience.attempts=0 rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE}
    • resilience.breaker.rejected {error.type=UNAVAILABLE resilience.attempt=1}
`)
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 2",
		telemetry.MetricRetries+" {"+rpcAttrs+" rpc.response.status_code=UNAVAILABLE} 1",
		telemetry.MetricAttemptDuration+" {"+unavAttrs+" "+rpcAttrs+"} count=2",
		telemetry.MetricCallDuration+" {"+unavAttrs+" "+rpcAttrs+"} count=2",
		telemetry.MetricBreakerRejections+" {"+rpcAttrs+"} 1",
		telemetry.MetricBreakerState+" {resilience.breaker.key=passthrough:///bufnet} 2",
	)
}

// TestTelemetryBreakerAndBudgetHooks drives the hooks the breaker, budget
// and pushback wiring call: a call refused by the breaker still leaves a
// call span, with the rejection as an event.
func TestTelemetryBreakerAndBudgetHooks(t *testing.T) {
	e := newTelemetryEnv(t)
	m := MustNew(e.options()...)
	ctx, app := e.tp.Tracer("app").Start(context.Background(), "app")

	// Attempt 1 fails under a closed breaker, the server pushes back, the
	// budget refuses the retry. A second call is refused by the breaker.
	cctx, c := m.tel.StartCall(ctx, echoMethod, "dns:///orders.internal:8443")
	actx, a := c.StartAttempt(cctx, 1)
	a.BreakerState(telemetry.BreakerClosed)
	if !trace.SpanContextFromContext(actx).IsValid() {
		t.Fatal("attempt context carries no span")
	}
	fail := status.Error(codes.Unavailable, "down")
	a.End(fail)
	c.Pushback(250 * time.Millisecond)
	c.Pushback(-1)
	c.BudgetExhausted()
	c.End(&Error{Attempts: 1, Err: fail})

	m.tel.BreakerState("orders.internal:8443", telemetry.BreakerOpen)
	_, c = m.tel.StartCall(ctx, echoMethod, "dns:///orders.internal:8443")
	rejected := status.Error(codes.Unavailable, "breaker: circuit open")
	c.BreakerRejected(rejected)
	c.End(&Error{Attempts: 0, Err: rejected})
	app.End()

	const server = "rpc.system.name=grpc server.address=orders.internal server.port=8443"
	checkTree(t, renderTree(e.waitSpans(t, 4), app.SpanContext().SpanID()), `
app INTERNAL {}
  `+echoName+` INTERNAL Error("down") {error.type=UNAVAILABLE resilience.attempts=1 rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE}
    • resilience.pushback {resilience.pushback.delay=0.25}
    • resilience.pushback {resilience.pushback.stop=true}
    • resilience.budget.exhausted {resilience.attempt=2}
    `+echoName+` CLIENT Error("down") {error.type=UNAVAILABLE resilience.attempt=1 resilience.breaker.state=closed rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE `+server+`}
  `+echoName+` INTERNAL Error("breaker: circuit open") {error.type=UNAVAILABLE resilience.attempts=0 rpc.method=`+echoName+` rpc.response.status_code=UNAVAILABLE}
    • resilience.breaker.rejected {error.type=UNAVAILABLE resilience.attempt=1}
`)
	const method = "rpc.method=" + echoName
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+method+" rpc.response.status_code=UNAVAILABLE "+server+"} 1",
		telemetry.MetricAttemptDuration+" {error.type=UNAVAILABLE "+method+" rpc.response.status_code=UNAVAILABLE "+server+"} count=1",
		telemetry.MetricCallDuration+" {error.type=UNAVAILABLE "+method+" rpc.response.status_code=UNAVAILABLE "+server+"} count=2",
		telemetry.MetricBudgetThrottled+" {"+method+" "+server+"} 1",
		telemetry.MetricBreakerRejections+" {"+method+" "+server+"} 1",
		telemetry.MetricBreakerState+" {resilience.breaker.key=orders.internal:8443} 2",
	)
}

// newTelemetryHarness is a harness whose client is dialled with dialOpts
// and whose server, when e is not nil, records spans with otelgrpc's
// server handler. It returns once the connection is ready, so that no
// attempt sees a connection that is still coming up.
func newTelemetryHarness(t *testing.T, e *telemetryEnv, dialOpts ...grpc.DialOption) *harness {
	t.Helper()
	var opts []grpc.ServerOption
	if e != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(e.tp),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)))
	}
	lis := resiliencetest.ListenMemory()
	h := newServer(t, lis, opts...)
	h.dial(t, lis, dialOpts...)
	conn := h.conn
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("connection not ready: %v", conn.GetState())
		}
	}
	return h
}

// newTelemetryClient is newTelemetryHarness without server spans, with the
// interceptors of a Middleware configured by opts.
func newTelemetryClient(t *testing.T, opts ...Option) *harness {
	t.Helper()
	m, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return newTelemetryHarness(t, nil, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()), grpc.WithStreamInterceptor(m.StreamClientInterceptor()))
}

func otelClientHandler(e *telemetryEnv) stats.Handler {
	return otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(e.tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
	)
}

func TestTelemetryServerSpanIsChildOfAttempt(t *testing.T) {
	e := newTelemetryEnv(t)
	m := MustNew(e.options()...)
	h := newTelemetryHarness(t, e, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
	h.failNext(1, codes.Unavailable)
	callerMD := metadata.Pairs("x-caller", "1")
	got := e.appCall(t, 6, func(ctx context.Context) {
		if err := echo(metadata.NewOutgoingContext(ctx, callerMD), t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=2 rpc.method=`+echoName+` `+okAttrs+`}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+rpcAttrs+`}
      `+echoName+` SERVER Error("`+injectedMessage+`") (otelgrpc)
    `+echoName+` CLIENT {resilience.attempt=2 `+rpcAttrs+` `+okAttrs+`}
      `+echoName+` SERVER (otelgrpc)
`)
	if want := metadata.Pairs("x-caller", "1"); fmt.Sprint(callerMD) != fmt.Sprint(want) {
		t.Errorf("caller's metadata became %v, want %v", callerMD, want)
	}
	for i, md := range h.calls() {
		if got := md.Get("traceparent"); len(got) != 1 {
			t.Errorf("attempt %d: server saw traceparent %q, want one value", i+1, got)
		}
		if got := md.Get("x-caller"); len(got) != 1 {
			t.Errorf("attempt %d: server saw x-caller %q, want the caller's value", i+1, got)
		}
	}
}

// TestTelemetryWithOtelgrpcClientHandler documents the trees when
// otelgrpc's client stats handler is installed as well: it makes a CLIENT
// span per attempt, under the context our interceptor hands to the
// invoker.
func TestTelemetryWithOtelgrpcClientHandler(t *testing.T) {
	t.Run("attempt spans", func(t *testing.T) {
		// Two CLIENT spans per attempt: ours, then otelgrpc's under it;
		// otelgrpc injects its own span, so the server hangs under that.
		e := newTelemetryEnv(t)
		m := MustNew(e.options()...)
		h := newTelemetryHarness(t, e, grpc.WithStatsHandler(otelClientHandler(e)), grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
		h.failNext(1, codes.Unavailable)
		got := e.appCall(t, 8, func(ctx context.Context) {
			if err := echo(ctx, t, h.client); err != nil {
				t.Fatalf("Echo: %v", err)
			}
		})
		checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=2 rpc.method=`+echoName+` `+okAttrs+`}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    `+echoName+` CLIENT Error("`+injectedMessage+`") {`+unavAttrs+` resilience.attempt=1 `+rpcAttrs+`}
      `+echoName+` CLIENT Error("`+injectedMessage+`") (otelgrpc)
        `+echoName+` SERVER Error("`+injectedMessage+`") (otelgrpc)
    `+echoName+` CLIENT {resilience.attempt=2 `+rpcAttrs+` `+okAttrs+`}
      `+echoName+` CLIENT (otelgrpc)
        `+echoName+` SERVER (otelgrpc)
`)
	})
	t.Run("WithAttemptSpans(false)", func(t *testing.T) {
		// One CLIENT span per attempt, otelgrpc's, right under the call
		// span; the attempts are events on the call span.
		e := newTelemetryEnv(t)
		m := MustNew(e.options(WithAttemptSpans(false))...)
		h := newTelemetryHarness(t, e, grpc.WithStatsHandler(otelClientHandler(e)), grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
		h.failNext(1, codes.Unavailable)
		got := e.appCall(t, 6, func(ctx context.Context) {
			if err := echo(ctx, t, h.client); err != nil {
				t.Fatalf("Echo: %v", err)
			}
		})
		checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=2 rpc.method=`+echoName+` `+okAttrs+`}
    • resilience.attempt {`+unavAttrs+` resilience.attempt=1}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    • resilience.attempt {resilience.attempt=2 `+okAttrs+`}
    `+echoName+` CLIENT Error("`+injectedMessage+`") (otelgrpc)
      `+echoName+` SERVER Error("`+injectedMessage+`") (otelgrpc)
    `+echoName+` CLIENT (otelgrpc)
      `+echoName+` SERVER (otelgrpc)
`)
	})
	t.Run("WithAttemptSpans(false) without otelgrpc", func(t *testing.T) {
		// The server spans hang under the call span.
		e := newTelemetryEnv(t)
		m := MustNew(e.options(WithAttemptSpans(false))...)
		h := newTelemetryHarness(t, e, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
		h.failNext(1, codes.Unavailable)
		got := e.appCall(t, 4, func(ctx context.Context) {
			if err := echo(ctx, t, h.client); err != nil {
				t.Fatalf("Echo: %v", err)
			}
		})
		checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=2 rpc.method=`+echoName+` `+okAttrs+`}
    • resilience.attempt {`+unavAttrs+` resilience.attempt=1}
    • resilience.retry {resilience.attempt=2 resilience.retry.delay=0.001 rpc.response.status_code=UNAVAILABLE}
    • resilience.attempt {resilience.attempt=2 `+okAttrs+`}
    `+echoName+` SERVER Error("`+injectedMessage+`") (otelgrpc)
    `+echoName+` SERVER (otelgrpc)
`)
	})
}

// TestTelemetryUnsampledCallPropagatesDecision checks that a call that is
// not sampled records no span but still passes its (unsampled) trace
// context on, so the server does not start a trace of its own.
func TestTelemetryUnsampledCallPropagatesDecision(t *testing.T) {
	e := newTelemetryEnv(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(e.rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := newTelemetryClient(t, WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}))
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if n := len(e.rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded, want none", n)
	}
	tps := h.calls()[0].Get("traceparent")
	if len(tps) != 1 || !strings.HasSuffix(tps[0], "-00") {
		t.Errorf("server saw traceparent %q, want one, not sampled (-00)", tps)
	}
}

func TestTelemetryNoopProvidersRecordAndInjectNothing(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newHarness(t,
		WithTracerProvider(tracenoop.NewTracerProvider()),
		WithMeterProvider(metricnoop.NewMeterProvider()),
		WithPropagators(propagation.TraceContext{}))
	// The caller has a span of its own (from another provider).
	ctx, app := e.tp.Tracer("app").Start(context.Background(), "app")
	if err := echo(ctx, t, h.client); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	app.End()
	if n := len(e.waitSpans(t, 1)); n != 1 {
		t.Errorf("%d spans recorded, want only the app span", n)
	}
	if got := h.calls()[0].Get("traceparent"); len(got) != 0 {
		t.Errorf("server saw traceparent %q, want none while tracing is off", got)
	}
}

func TestTelemetryGlobalProvidersInstalledAfterNew(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, WithPropagators(propagation.TraceContext{}))
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	oldTP, oldMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(e.tp)
	otel.SetMeterProvider(e.mp)
	t.Cleanup(func() {
		// The default global providers cannot be restored once replaced:
		// leave no-op ones, which behave the same.
		if _, ok := oldTP.(tracenoop.TracerProvider); !ok {
			oldTP = tracenoop.NewTracerProvider()
		}
		if _, ok := oldMP.(metricnoop.MeterProvider); !ok {
			oldMP = metricnoop.NewMeterProvider()
		}
		otel.SetTracerProvider(oldTP)
		otel.SetMeterProvider(oldMP)
	})
	got := e.appCall(t, 3, func(ctx context.Context) {
		if err := echo(ctx, t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
	checkTree(t, got, `
app INTERNAL {}
  `+echoName+` INTERNAL {resilience.attempts=1 rpc.method=`+echoName+` `+okAttrs+`}
    `+echoName+` CLIENT {resilience.attempt=1 `+rpcAttrs+` `+okAttrs+`}
`)
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" "+okAttrs+"} 1",
		telemetry.MetricAttemptDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
		telemetry.MetricCallDuration+" {"+rpcAttrs+" "+okAttrs+"} count=1",
		// The gauge's first point went to the provider of the first call.
		noBreakerPoint,
	)
}

func TestTelemetryRecordsNoPayloadOrMetadata(t *testing.T) {
	const secretPayload, secretKey, secretValue = "payload-7f3a", "x-secret-key", "value-91c2"
	e := newTelemetryEnv(t)
	m := MustNew(e.options(WithAttemptSpans(false))...)
	h := newTelemetryHarness(t, e, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()))
	h.failNext(1, codes.Unavailable)
	ctx := metadata.AppendToOutgoingContext(context.Background(), secretKey, secretValue)
	if _, err := h.client.Echo(ctx, &testingv1.EchoRequest{Message: secretPayload}); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	var recorded []string
	for _, s := range e.waitSpans(t, 3) {
		if s.InstrumentationScope().Name != telemetry.InstrumentationName {
			continue
		}
		recorded = append(recorded, s.Name(), s.Status().Description, renderAttrs(s.Attributes()))
		for _, ev := range s.Events() {
			recorded = append(recorded, ev.Name, renderAttrs(ev.Attributes))
		}
	}
	recorded = append(recorded, e.collectMetrics(t)...)
	for _, r := range recorded {
		for _, secret := range []string{secretPayload, secretKey, secretValue} {
			if strings.Contains(r, secret) {
				t.Errorf("telemetry recorded %q: %s", secret, r)
			}
		}
	}
}

func TestTelemetryOptionsRejectNil(t *testing.T) {
	for name, opt := range map[string]Option{
		"WithTracerProvider": WithTracerProvider(nil),
		"WithMeterProvider":  WithMeterProvider(nil),
		"WithPropagators":    WithPropagators(nil),
	} {
		_, err := New(opt)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("New(%s(nil)) = %v, want an ErrInvalidConfig naming %s", name, err, name)
		}
	}
}

// TestTelemetryConcurrentCalls exercises the attribute cache and the
// lazily resolved providers from many goroutines (run with -race).
func TestTelemetryConcurrentCalls(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newTelemetryClient(t, e.options()...)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if err := echo(context.Background(), t, h.client); err != nil {
					t.Errorf("Echo: %v", err)
				}
			}
		})
	}
	wg.Wait()
	checkMetrics(t, e.collectMetrics(t),
		telemetry.MetricAttempts+" {"+rpcAttrs+" "+okAttrs+"} 80",
		telemetry.MetricAttemptDuration+" {"+rpcAttrs+" "+okAttrs+"} count=80",
		telemetry.MetricCallDuration+" {"+rpcAttrs+" "+okAttrs+"} count=80",
	)
}
