package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recordingHandler keeps every record it is handed, at every level.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.records...)
}

// render gives a record as "LEVEL msg k=v k=v", attributes in order.
func render(r slog.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	return b.String()
}

func newLogRecorder() (Recorder, *recordingHandler) {
	h := &recordingHandler{}
	opts := Options{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		Logger:         slog.New(h),
	}
	return New(opts), h
}

const target = "dns:///orders:443"

// failedCall runs a call whose attempts all fail with err; between them,
// between(n) runs after attempt n (it schedules the retry by default).
func failedCall(r Recorder, attempts int, err error, between func(c *Call, n int)) {
	cctx, c := r.StartCall(context.Background(), method, target)
	for n := 1; n <= attempts; n++ {
		_, a := c.StartAttempt(cctx, n)
		a.End(err)
		if between != nil {
			between(&c, n)
		} else if n < attempts {
			c.RetryScheduled(n+1, time.Millisecond, status.Code(err))
		}
	}
	c.End(err)
}

func TestLogCallOutcomes(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "secret-payload echoed by the server")
	for _, tc := range []struct {
		name string
		run  func(r Recorder)
		want string // "" for no record
	}{
		{"gave up after retries", func(r Recorder) { failedCall(r, 3, unavailable, nil) },
			"WARN " + MsgGaveUp + " method=" + method + " target=" + target + " attempts=3 code=UNAVAILABLE"},
		{"budget refused the retry", func(r Recorder) {
			failedCall(r, 1, unavailable, func(c *Call, _ int) { c.BudgetExhausted() })
		}, "INFO " + MsgStopped + " method=" + method + " target=" + target + " attempts=1 code=UNAVAILABLE reason=" + ReasonBudget},
		{"pushback stopped retries", func(r Recorder) {
			failedCall(r, 2, unavailable, func(c *Call, n int) {
				if n == 1 {
					c.RetryScheduled(2, 0, codes.Unavailable)
				} else {
					c.Pushback(-1)
				}
			})
		}, "INFO " + MsgStopped + " method=" + method + " target=" + target + " attempts=2 code=UNAVAILABLE reason=" + ReasonPushback},
		{"breaker refused the retry", func(r Recorder) {
			failedCall(r, 1, unavailable, func(c *Call, _ int) { c.BreakerRejected(status.Error(codes.Unavailable, "open")) })
		}, "INFO " + MsgStopped + " method=" + method + " target=" + target + " attempts=1 code=UNAVAILABLE reason=" + ReasonBreaker},
		{"breaker refused the first attempt", func(r Recorder) {
			_, c := r.StartCall(context.Background(), method, target)
			err := status.Error(codes.Unavailable, "open")
			c.BreakerRejected(err)
			c.End(err)
		}, ""},
		{"failure not retried", func(r Recorder) { failedCall(r, 1, status.Error(codes.NotFound, "no"), nil) }, ""},
		{"caller cancelled after retries", func(r Recorder) { failedCall(r, 2, status.Error(codes.Canceled, "bye"), nil) }, ""},
		{"succeeded after a retry", func(r Recorder) {
			cctx, c := r.StartCall(context.Background(), method, target)
			_, a := c.StartAttempt(cctx, 1)
			a.End(unavailable)
			c.RetryScheduled(2, 0, codes.Unavailable)
			_, a = c.StartAttempt(cctx, 2)
			a.End(nil)
			c.End(nil)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, h := newLogRecorder()
			tc.run(r)
			recs := h.all()
			switch {
			case tc.want == "" && len(recs) != 0:
				t.Errorf("logged %q, want nothing", render(recs[0]))
			case tc.want != "" && len(recs) != 1:
				t.Fatalf("%d records, want 1: %s", len(recs), tc.want)
			case tc.want != "" && render(recs[0]) != tc.want:
				t.Errorf("logged\n\t%s\nwant\n\t%s", render(recs[0]), tc.want)
			}
			for _, rec := range recs {
				if strings.Contains(render(rec), "secret") {
					t.Errorf("record carries the status message: %s", render(rec))
				}
			}
		})
	}
}

func TestLogRateLimitPerTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newLogRecorder()
		err := status.Error(codes.Unavailable, "down")
		for range logBurst + 3 {
			failedCall(r, 2, err, nil)
		}
		if n := len(h.all()); n != logBurst {
			t.Fatalf("%d records for %d failed calls in one window, want %d", n, logBurst+3, logBurst)
		}
		// Another target has a limit of its own.
		_, c := r.StartCall(context.Background(), method, "dns:///billing:443")
		c.StartAttempt(context.Background(), 1)
		c.StartAttempt(context.Background(), 2)
		c.End(err)
		if n := len(h.all()); n != logBurst+1 {
			t.Fatalf("another target's failure not logged: %d records", n)
		}
		time.Sleep(logWindow)
		failedCall(r, 2, err, nil)
		recs := h.all()
		last := render(recs[len(recs)-1])
		if want := " suppressed=3"; !strings.HasSuffix(last, want) {
			t.Errorf("first record of the next window = %q, want it to end with %q", last, want)
		}
	})
}

func TestLogBreakerTransitions(t *testing.T) {
	r, h := newLogRecorder()
	r.BreakerState("dns:///orders:443", BreakerClosed) // a new breaker's first point: no transition
	r.BreakerTransition("dns:///orders:443", BreakerClosed, BreakerOpen)
	r.BreakerTransition("dns:///orders:443", BreakerOpen, BreakerHalfOpen)
	r.BreakerTransition("dns:///orders:443", BreakerHalfOpen, BreakerClosed)
	var got []string
	for _, rec := range h.all() {
		got = append(got, render(rec))
	}
	want := []string{
		"WARN " + MsgBreakerOpened + " breaker=dns:///orders:443 from=closed",
		"INFO " + MsgBreakerHalfOpen + " breaker=dns:///orders:443 from=open",
		"INFO " + MsgBreakerClosed + " breaker=dns:///orders:443 from=half-open",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestLogHappyPathCostsNothing: with a logger, a successful call (even
// one that needed a retry) neither logs nor allocates.
func TestLogHappyPathCostsNothing(t *testing.T) {
	r, h := newLogRecorder()
	ctx := context.Background()
	fail := status.Error(codes.Unavailable, "down")
	if n := testing.AllocsPerRun(100, func() { hookSequence(r, ctx, fail) }); n != 0 {
		t.Errorf("a retried, successful call's hooks allocate %v times with a logger, want 0", n)
	}
	if n := len(h.all()); n != 0 {
		t.Errorf("%d records for successful calls, want 0", n)
	}
}

func BenchmarkHooksWithLogger(b *testing.B) {
	r, _ := newLogRecorder()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cctx, c := r.StartCall(ctx, method, target)
		_, a := c.StartAttempt(cctx, 1)
		a.End(nil)
		c.End(nil)
	}
}
