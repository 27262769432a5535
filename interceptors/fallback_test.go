package interceptors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/fallback"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// fallbackRig is a rig whose Echo has a stale-answer fallback, primed with
// one successful reply to "hello". Call it inside the test's bubble.
func fallbackRig(t *testing.T, margin time.Duration, opts ...Option) (*rig, *fallback.Store) {
	t.Helper()
	store, err := fallback.NewStore(fallback.Config{MaxBytes: 1 << 20, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := store.Handler()
	h.Margin = margin
	r := newRig(t, append([]Option{Backoff(backoff.Constant(0)), WithReadyWait(0),
		WithMethodPolicy(MatchMethods(echoMethod), Fallback(h))}, opts...)...)
	if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	r.reset()
	return r, store
}

func (r *rig) echoFallback(ctx context.Context, msg string, opts ...grpc.CallOption) (string, fallback.Info, error) {
	var info fallback.Info
	resp, err := r.client.Echo(ctx, &testingv1.EchoRequest{Message: msg}, append(opts, FallbackInfo(&info))...)
	return resp.GetMessage(), info, err
}

func TestFallbackAnswersDownstreamFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []Option
		setup    func(r *rig)
		callOpts []grpc.CallOption
	}{
		{"unavailable", nil, func(r *rig) { r.failAll(resiliencetest.Fail(codes.Unavailable)) }, nil},
		{"attempt deadline", nil, func(r *rig) { r.failAll(resiliencetest.Hang()) },
			[]grpc.CallOption{MaxAttempts(1), PerAttemptTimeout(5 * time.Millisecond)}},
		{"pushback stop", nil, func(r *rig) { r.failAll(resiliencetest.Fail(codes.Unavailable).WithPushback("-1")) }, nil},
		{"budget exhausted", []Option{WithRetryBudget(budget.Config{MaxTokens: 2, TokenRatio: 1})}, func(r *rig) {
			r.failAll(resiliencetest.Fail(codes.Unavailable))
		}, nil},
		{"breaker open", []Option{WithBreaker(tripped())}, func(r *rig) {
			r.failNext(1, codes.Unavailable)
			_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "other"}, MaxAttempts(1))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, _ := fallbackRig(t, 0, tc.opts...)
				time.Sleep(3 * time.Second)
				tc.setup(r)
				start := time.Now()
				msg, info, err := r.echoFallback(context.Background(), "hello", tc.callOpts...)
				if err != nil || msg != "hello" {
					t.Fatalf("call: %q, %v; want the stale copy", msg, err)
				}
				if age := 3*time.Second + time.Since(start); !info.Used || !info.Stale || info.Age != age {
					t.Errorf("FallbackInfo %+v, want a stale copy %v old", info, age)
				}
			})
		})
	}
}

func TestFallbackIsNotForClientErrorsOrTheCallersCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := fallbackRig(t, 0)
		r.failAll(resiliencetest.Fail(codes.NotFound))
		if _, info, err := r.echoFallback(context.Background(), "hello"); status.Code(err) != codes.NotFound || info.Used {
			t.Errorf("NotFound: %v, %+v; want the error, no fallback", err, info)
		}
		r.reset()
		r.failAll(resiliencetest.Hang())
		ctx, cancel := context.WithCancel(context.Background())
		var info fallback.Info
		res := r.call(ctx, FallbackInfo(&info))
		r.await(t, 1)
		cancel()
		if err := result(t, res); status.Code(err) != codes.Canceled || info.Used {
			t.Errorf("caller's cancel: %v, %+v; want Canceled, no fallback", err, info)
		}
	})
}

func TestFallbackMissKeepsTheOriginalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := fallbackRig(t, 0)
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		_, info, err := r.echoFallback(context.Background(), "never seen")
		if status.Code(err) != codes.Unavailable || !errors.Is(err, fallback.ErrNoCopy) || info.Used {
			t.Errorf("miss: %v, %+v; want Unavailable wrapping ErrNoCopy", err, info)
		}
	})
}

func TestFallbackAnswersBeforeTheDeadlineOfAHungServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := fallbackRig(t, 100*time.Millisecond)
		r.failAll(resiliencetest.Hang())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var info fallback.Info
		res := r.call(ctx, FallbackInfo(&info))
		r.await(t, 1)
		// The answer comes at the margin: the time left less 100ms.
		if err := result(t, res); err != nil || !info.Used {
			t.Fatalf("hung server: %v, %+v; want the stale copy before the deadline", err, info)
		}
		dl, _ := ctx.Deadline()
		if left := time.Until(dl); left != 100*time.Millisecond {
			t.Errorf("answered %v before the caller's deadline, want the 100ms margin", left)
		}
		synctest.Wait()
		if rec := r.faults.Records(allMethods); len(rec) != 1 || !rec[0].Done {
			t.Error("the hung attempt was not cancelled")
		}
		if n := r.attempts(); n != 1 {
			t.Errorf("server saw %d attempts, want the one hung attempt", n)
		}
	})
}

func TestFallbackTelemetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		reader := sdkmetric.NewManualReader()
		r, _ := fallbackRig(t, 0, WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))),
			WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		time.Sleep(2 * time.Second)
		_, _, _ = r.echoFallback(context.Background(), "hello")
		_, _, _ = r.echoFallback(context.Background(), "never seen")
		var events []string
		for _, s := range sr.Ended() {
			for _, ev := range s.Events() {
				if ev.Name == "resilience.fallback" {
					events = append(events, renderAttrs(ev.Attributes))
				}
			}
		}
		want := []string{
			"{resilience.fallback.age=2 resilience.fallback.kind=stale resilience.fallback.result=served}",
			"{resilience.fallback.result=missed}",
		}
		if strings.Join(events, "\n") != strings.Join(want, "\n") {
			t.Errorf("fallback events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		counts := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "resilience.client.fallbacks" {
					for _, dp := range s.DataPoints {
						v, _ := dp.Attributes.Value("resilience.fallback.result")
						counts[v.AsString()] += dp.Value
					}
				}
			}
		}
		if counts["served"] != 1 || counts["missed"] != 1 {
			t.Errorf("resilience.client.fallbacks %v, want served 1, missed 1", counts)
		}
	})
}

func TestFallbackCopiesInAndOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := fallbackRig(t, 0)
		resp, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "mine"})
		if err != nil {
			t.Fatal(err)
		}
		resp.Message = "mutated by the caller"
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		if msg, _, err := r.echoFallback(context.Background(), "mine"); err != nil || msg != "mine" {
			t.Errorf("stale answer %q, %v; want the reply as it arrived", msg, err)
		}
	})
}

func TestFallbackValidation(t *testing.T) {
	if _, err := New(WithMethodPolicy(MatchMethods(echoMethod), Fallback(fallback.Handler{}))); err == nil || !strings.Contains(err.Error(), "Fallback") || !strings.Contains(err.Error(), "Answer is nil") {
		t.Errorf("Fallback without Answer: %v", err)
	}
	if _, err := New(FallbackInfo(new(fallback.Info))); err == nil || !strings.Contains(err.Error(), "per call only") {
		t.Errorf("FallbackInfo in New: %v", err)
	}
}

// BenchmarkFallbackHappyPath measures what a stale-answer fallback costs a
// call that succeeds (the copy of its reply into the store), against the
// same call without one, over bufconn, in one run:
//
//	go test -run '^$' -bench BenchmarkFallbackHappyPath -benchmem -count 10 ./interceptors/ | tee fb.txt
//	benchstat -col /fallback fb.txt
func BenchmarkFallbackHappyPath(b *testing.B) {
	for _, on := range []string{"off", "store"} {
		b.Run("fallback="+on, func(b *testing.B) {
			lis := resiliencetest.ListenMemory()
			serveEcho(b, lis)
			var opts []Option
			if on == "store" {
				store, err := fallback.NewStore(fallback.Config{})
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, WithMethodPolicy(MatchMethods(echoMethod), Fallback(store.Handler())))
			}
			client := testingv1.NewEchoServiceClient(dialListener(b, lis, MustNew(opts...).DialOptions()...))
			ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
			defer cancel()
			req := &testingv1.EchoRequest{Message: strings.Repeat("x", 256)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Echo(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
