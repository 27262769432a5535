package interceptors

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
	"github.com/grpc-resilience/resilience/throttle"
)

// gateGauges are the gauges of the overload gates.
var gateGauges = []string{telemetry.MetricLimiterLimit, telemetry.MetricLimiterInFlight,
	telemetry.MetricLimiterQueued, telemetry.MetricThrottleProbability}

// isGateGauge reports whether a collectMetrics line is a gate gauge's.
func isGateGauge(line string) bool {
	name, _, _ := strings.Cut(line, " ")
	return slices.Contains(gateGauges, name)
}

// overloadLines are the lines of collectMetrics about overload: the gate
// gauges, the refusals and the queue wait.
func overloadLines(lines []string) []string {
	return slices.DeleteFunc(lines, func(l string) bool {
		return !isGateGauge(l) && !strings.HasPrefix(l, telemetry.MetricRefusals+" ") &&
			!strings.HasPrefix(l, telemetry.MetricLimiterQueueWait+" ")
	})
}

func checkLinesEqual(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for i := range want {
		want[i] = sortAttrs(want[i])
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// callEvents returns the events named name on the ended call spans, as
// "name {attributes}".
func callEvents(spans []sdktrace.ReadOnlySpan, name string) []string {
	var out []string
	for _, s := range spans {
		for _, ev := range s.Events() {
			if ev.Name == name {
				out = append(out, ev.Name+" "+renderAttrs(ev.Attributes))
			}
		}
	}
	slices.Sort(out)
	return out
}

// Under either metric naming, the gauges show a target's limit, attempts
// in flight and queued, and throttle probability as they are when
// collected; a refused call and a queued one leave their span events and
// count on the refusals counter (by reason) and the queue wait histogram.
func TestOverloadTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names MetricNames
		// target: the gauges' attributes; call: the refusals' and queue
		// wait's (those of the call's other metrics).
		target, call string
	}{
		{"resilience", MetricNamesResilience, "resilience.target=passthrough:///bufnet", rpcAttrs},
		{"grpc", MetricNamesGRPC, "grpc.target=passthrough:///bufnet", "grpc.method=" + echoName + " grpc.target=passthrough:///bufnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newTelemetryEnv(t)
				// The throttle's draws: 0.99 (through) while the limiter is
				// looked at, then 0.5.
				var draw atomic.Uint64
				draw.Store(math.Float64bits(0.99))
				r := newRig(t, e.options(WithMetricNames(tc.names),
					WithConcurrencyLimit(limiter.Config{Fixed: 1, Queue: 1}), WithThrottle(throttle.Config{}),
					WithoutBreaker(), MaxAttempts(1), withRandom(func() float64 { return math.Float64frombits(draw.Load()) }))...)
				release := r.blockCalls() // the first attempt holds the one place
				held := r.call(context.Background())
				r.await(t, 1)
				queued := r.call(context.Background())
				synctest.Wait() // in the limiter's queue
				if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); !errors.Is(err, limiter.ErrLimited) {
					t.Fatalf("a call with the queue full: %v, want refused by the limiter", err)
				}
				// The throttle counts attempts when they end: none yet.
				checkLinesEqual(t, "while one call is in flight and one queued", overloadLines(e.collectMetrics(t)),
					telemetry.MetricLimiterLimit+" {"+tc.target+"} 1",
					telemetry.MetricLimiterInFlight+" {"+tc.target+"} 1",
					telemetry.MetricLimiterQueued+" {"+tc.target+"} 1",
					telemetry.MetricThrottleProbability+" {"+tc.target+"} 0",
					telemetry.MetricRefusals+" {"+tc.call+" resilience.refusal=limiter} 1",
				)
				time.Sleep(30 * time.Millisecond)
				release()
				for _, res := range []<-chan error{held, queued} {
					if err := result(t, res); err != nil {
						t.Fatal(err)
					}
				}
				checkLinesEqual(t, "once both calls are answered", overloadLines(e.collectMetrics(t)),
					telemetry.MetricLimiterLimit+" {"+tc.target+"} 1",
					telemetry.MetricLimiterInFlight+" {"+tc.target+"} 0",
					telemetry.MetricLimiterQueued+" {"+tc.target+"} 0",
					telemetry.MetricThrottleProbability+" {"+tc.target+"} 0",
					telemetry.MetricRefusals+" {"+tc.call+" resilience.refusal=limiter} 1",
					telemetry.MetricLimiterQueueWait+" {"+tc.call+" resilience.limiter.admitted=true} count=1",
				)
				spans := e.rec.Ended()
				if got, want := callEvents(spans, "resilience.limiter.queued"),
					"resilience.limiter.queued {resilience.attempt=1 resilience.limiter.admitted=true resilience.limiter.wait=0.03}"; len(got) != 1 || got[0] != want {
					t.Errorf("queue events %q, want [%s]", got, want)
				}
				if got, want := callEvents(spans, "resilience.refused"),
					"resilience.refused {error.type=UNAVAILABLE resilience.attempt=1 resilience.refusal=limiter}"; len(got) != 1 || got[0] != want {
					t.Errorf("refusal events %q, want [%s]", got, want)
				}

				// A failing downstream: the throttle's probability climbs
				// past the 0.5 drawn, and it refuses.
				r.failAll(resiliencetest.Fail(codes.Unavailable))
				draw.Store(math.Float64bits(0.5))
				for i := 0; ; i++ {
					_, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{})
					if errors.Is(err, throttle.ErrThrottled) {
						break
					}
					if i == 20 {
						t.Fatal("the throttle never refused")
					}
				}
				var p float64
				var throttleRefusals string
				for _, l := range overloadLines(e.collectMetrics(t)) {
					if v, ok := strings.CutPrefix(l, telemetry.MetricThrottleProbability+" {"+tc.target+"} "); ok {
						p, _ = strconv.ParseFloat(v, 64)
					}
					if strings.Contains(l, "resilience.refusal=throttle") {
						throttleRefusals = l
					}
				}
				if !(p > 0.5 && p < 1) {
					t.Errorf("throttle probability %v after it refused a draw of 0.5, want in (0.5, 1)", p)
				}
				if want := sortAttrs(telemetry.MetricRefusals + " {" + tc.call + " resilience.refusal=throttle} 1"); throttleRefusals != want {
					t.Errorf("throttle refusals %q, want %q", throttleRefusals, want)
				}
				if got := callEvents(e.rec.Ended(), "resilience.refused"); !slices.Contains(got,
					"resilience.refused {error.type=UNAVAILABLE resilience.attempt=1 resilience.refusal=throttle}") {
					t.Errorf("refusal events %q, want one by the throttle", got)
				}
			})
		})
	}
}

// With limiters keyed by method, each method's limiter has its gauges,
// with the method.
func TestOverloadGaugesPerMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTelemetryEnv(t)
		r := newRig(t, e.options(WithConcurrencyLimit(limiter.Config{Fixed: 2}), WithConcurrencyLimitPerMethod())...)
		if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
		at := "resilience.target=passthrough:///bufnet rpc.method=" + echoName
		checkLinesEqual(t, "gauges", overloadLines(e.collectMetrics(t)),
			telemetry.MetricLimiterLimit+" {"+at+"} 2",
			telemetry.MetricLimiterInFlight+" {"+at+"} 0",
			telemetry.MetricLimiterQueued+" {"+at+"} 0",
		)
	})
}

// The limit falling to its minimum under attempts that time out is
// logged, with the target.
func TestLimitAtItsMinimumIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf lockedBuffer
		logger := warnLogger(&buf)
		r := newRig(t, WithConcurrencyLimit(limiter.Config{InitialLimit: 10, MinLimit: 5}), WithLogger(logger),
			WithoutBreaker(), MaxAttempts(1), PerAttemptTimeout(10*time.Millisecond))
		r.failAll(resiliencetest.Hang())
		// Each attempt that times out cuts the limit by a tenth (no round
		// trip is known yet, so every one counts): 10, 9, 8.1, 7.3, 6.6,
		// 5.9, 5.3.
		for range 6 {
			if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); err == nil {
				t.Fatal("an attempt that hangs past its timeout succeeded")
			}
		}
		var limits []string
		for line := range strings.Lines(buf.String()) {
			if strings.Contains(line, "concurrency limit") {
				limits = append(limits, strings.TrimSpace(line))
			}
		}
		want := `level=WARN msg="` + LogLimitMinimum + `" target=passthrough:///bufnet limit=5 from=6`
		if len(limits) != 1 || limits[0] != want {
			t.Errorf("limit records %q, want [%s]", limits, want)
		}
	})
}

// A limiter.Config with its own OnLimitChange is refused: the
// interceptors keep a limiter per target and report its changes
// themselves, and a hook without the target would not say whose limit
// changed.
func TestConcurrencyLimitRejectsAHook(t *testing.T) {
	_, err := New(WithConcurrencyLimit(limiter.Config{OnLimitChange: func(int, int) {}}))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithConcurrencyLimit") || !strings.Contains(err.Error(), "OnLimitChange") {
		t.Errorf("New with a limiter hook: %v, want an error naming WithConcurrencyLimit and OnLimitChange", err)
	}
}
