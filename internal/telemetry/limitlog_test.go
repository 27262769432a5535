package telemetry

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimitLogRecordsTheChangesWorthKnowing(t *testing.T) {
	at := "target=" + target
	type change struct {
		from, to int
		want     string // "" for no record
	}
	for _, tc := range []struct {
		name    string
		changes []change
	}{
		{"falls and recovers", []change{
			{1000, 20, "WARN " + MsgLimitFell + " " + at + " limit=20 from=1000"}, // the first queue measured
			{20, 25, ""},
			{25, 14, ""}, // fell already; 14 is the new low
			{14, 27, ""}, // not yet twice the low
			{27, 28, "INFO " + MsgLimitRecovered + " " + at + " limit=28 from=14"},
			{28, 40, ""},
			{40, 21, ""}, // not half of the highest, 40
			{21, 20, "WARN " + MsgLimitFell + " " + at + " limit=20 from=40"},
		}},
		{"reaches the minimum", []change{
			{30, 20, ""},
			{20, 1, "WARN " + MsgLimitMinimum + " " + at + " limit=1 from=20"},
			{1, 2, ""}, // twice the low, but one step
			{2, 1, ""}, // back at the minimum it was reported at
			{1, 5, "INFO " + MsgLimitRecovered + " " + at + " limit=5 from=1"},
		}},
		{"small limits", []change{
			{6, 3, ""}, // half, but a few steps
			{3, 1, "WARN " + MsgLimitMinimum + " " + at + " limit=1 from=3"},
		}},
		{"falls, then reaches the minimum", []change{
			{100, 40, "WARN " + MsgLimitFell + " " + at + " limit=40 from=100"},
			{40, 1, "WARN " + MsgLimitMinimum + " " + at + " limit=1 from=40"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, h := newLogRecorder()
			hook := r.LimitLog(target, "", 1)
			for _, c := range tc.changes {
				before := len(h.all())
				hook(c.from, c.to)
				recs := h.all()[before:]
				switch {
				case c.want == "" && len(recs) != 0:
					t.Errorf("%d → %d logged %q, want nothing", c.from, c.to, render(recs[0]))
				case c.want != "" && (len(recs) != 1 || render(recs[0]) != c.want):
					var got []string
					for _, rec := range recs {
						got = append(got, render(rec))
					}
					t.Errorf("%d → %d logged %q, want %q", c.from, c.to, got, c.want)
				}
			}
		})
	}
}

func TestLimitLogNamesTheMethodOfAPerMethodLimiter(t *testing.T) {
	r, h := newLogRecorder()
	r.LimitLog(target, method, 1)(100, 10)
	recs := h.all()
	if want := "WARN " + MsgLimitFell + " target=" + target + " method=" + method + " limit=10 from=100"; len(recs) != 1 || render(recs[0]) != want {
		t.Errorf("logged %d records (%v), want %q", len(recs), recs, want)
	}
}

func TestLimitLogIsRateLimitedPerLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newLogRecorder()
		hook := r.LimitLog(target, "", 1)
		flap := func(n int) {
			for range n {
				hook(100, 10)
				hook(10, 100)
			}
		}
		flap(logBurst) // 2·logBurst records in one window
		if n := len(h.all()); n != logBurst {
			t.Fatalf("%d records in one window, want %d", n, logBurst)
		}
		// Another limiter of the target, and the target's call records,
		// have limits of their own.
		r.LimitLog(target, method, 1)(100, 10)
		if n := len(h.all()); n != logBurst+1 {
			t.Fatalf("another limiter's record not logged: %d records", n)
		}
		time.Sleep(logWindow)
		hook(100, 10)
		recs := h.all()
		if last, want := render(recs[len(recs)-1]), " suppressed=5"; !strings.HasSuffix(last, want) {
			t.Errorf("first record of the next window = %q, want it to end with %q", last, want)
		}
	})
}

func TestLimitLogOffWithoutALogger(t *testing.T) {
	r := New(Options{})
	if hook := r.LimitLog(target, "", 1); hook != nil {
		t.Error("LimitLog returned a hook without a logger: limiters would call it for nothing")
	}
	var zero Recorder
	if hook := zero.LimitLog(target, "", 1); hook != nil {
		t.Error("the zero Recorder returned a hook")
	}
}
