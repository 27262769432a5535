package scenario

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPoissonFollowsThePhases(t *testing.T) {
	ends := []time.Duration{2 * time.Second, 3 * time.Second, 5 * time.Second}
	rates := []float64{1000, 4000, 0}
	at := poisson(rand.New(rand.NewPCG(7, 0)), rates, ends)
	if !slices.IsSorted(at) {
		t.Fatal("arrivals out of order")
	}
	var first, second, third int
	for _, a := range at {
		switch {
		case a < 0:
			t.Fatalf("arrival at %v", a)
		case a < ends[0]:
			first++
		case a < ends[1]:
			second++
		case a < ends[2]:
			third++
		default:
			t.Fatalf("arrival at %v after the last phase", a)
		}
	}
	// 2,000 and 4,000 expected; 5 standard deviations (about 225 and 320).
	if math.Abs(float64(first)-2000) > 225 || math.Abs(float64(second)-4000) > 320 || third != 0 {
		t.Errorf("arrivals per phase %d, %d, %d; want about 2000, 4000, 0", first, second, third)
	}
	again := poisson(rand.New(rand.NewPCG(7, 0)), rates, ends)
	if !slices.Equal(at, again) {
		t.Error("the same seed gave other arrivals")
	}
	if other := poisson(rand.New(rand.NewPCG(8, 0)), rates, ends); slices.Equal(at, other) {
		t.Error("another seed gave the same arrivals")
	}
}

// calls returns one call started every 10 ms from `from` to `to`, ok as
// ok says for its start.
func calls(from, to time.Duration, ok func(start time.Duration) bool) []callRecord {
	var recs []callRecord
	for s := from; s < to; s += 10 * time.Millisecond {
		recs = append(recs, callRecord{start: s, end: s + 5*time.Millisecond, ok: ok(s)})
	}
	return recs
}

func TestRecoveryAfter(t *testing.T) {
	rule := RecoveryRule{Bin: 100 * time.Millisecond, Sustain: 500 * time.Millisecond, Share: 0.95}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name string
		ok   func(time.Duration) bool
		want time.Duration
		rec  bool
	}{
		{"at once", func(time.Duration) bool { return true }, 0, true},
		{"after 300 ms", func(s time.Duration) bool { return s >= ms(1300) }, ms(300), true},
		// One failure in a bin of 10 calls is 90 %: that bin does not count.
		{"a lapse restarts the run", func(s time.Duration) bool { return s >= ms(1100) && s != ms(1400) }, ms(500), true},
		{"never", func(time.Duration) bool { return false }, 0, false},
		// Back only for the last 400 ms: too short to be sustained.
		{"too late", func(s time.Duration) bool { return s >= ms(1600) }, 0, false},
	} {
		recs := calls(0, ms(2000), tc.ok)
		got, ok := recoveryAfter(recs, ms(1000), ms(2000), rule)
		if got != tc.want || ok != tc.rec {
			t.Errorf("%s: recovery %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.rec)
		}
	}
}

func TestFirstSuccessAfter(t *testing.T) {
	recs := []callRecord{
		{start: 0, end: 50, ok: true},
		{start: 10, end: 300, ok: false},
		{start: 20, end: 250, ok: true},
		{start: 30, end: 120, ok: true},
	}
	if got, ok := firstSuccessAfter(recs, 100); !ok || got != 20 {
		t.Errorf("first success after 100: %v, %v; want 20, true", got, ok)
	}
	if _, ok := firstSuccessAfter(recs, 250); ok {
		t.Error("a success after the last one")
	}
}

func TestAnalyzeCountsAddUp(t *testing.T) {
	p := FullOverloadParams()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	recs := calls(0, ms(3000), func(s time.Duration) bool { return s < ms(1000) || s >= ms(2000) })
	recs = append(recs, callRecord{start: ms(2995), end: ms(4200), ok: true}) // ends after the load
	r := OverloadResult{Scenario: OutageEnds, TroubleStart: ms(1000), EndBegun: ms(2000), TroubleEnd: ms(2000), LoadEnd: ms(3000)}
	samples := []sample{{0, 0}, {ms(1500), 40}, {ms(3100), 100}}
	at := make([]time.Duration, len(recs))
	for i, rec := range recs {
		at[i] = rec.start
	}
	at[7] -= ms(3) // launched 3 ms late
	analyze(&r, recs, at, samples, p)
	if r.LaunchLagMax != ms(3) || r.LaunchLagP99 != 0 {
		t.Errorf("launch lag p99 %v, max %v; want 0, 3ms", r.LaunchLagP99, r.LaunchLagMax)
	}
	if r.Calls != 301 || r.OK != 201 {
		t.Fatalf("calls %d, ok %d; want 301, 201", r.Calls, r.OK)
	}
	if r.SuccessDuring != 0 || r.SuccessAfter != 1 || !r.Recovered || r.RecoveryTime != 0 {
		t.Errorf("success during %v, after %v, recovery %v %v; want 0, 1, 0 true", r.SuccessDuring, r.SuccessAfter, r.RecoveryTime, r.Recovered)
	}
	if !r.HasFirstSuccess || r.FirstSuccess != ms(5) {
		t.Errorf("first success %v, %v; want 5ms", r.FirstSuccess, r.HasFirstSuccess)
	}
	var started, ok, ended int
	var hits int64
	for _, b := range r.Bins {
		started, ok, ended, hits = started+b.Started, ok+b.StartedOK, ended+b.EndedOK, hits+b.ServerAttempts
	}
	if started != r.Calls || ok != r.OK || ended != r.OK || hits != 100 {
		t.Errorf("bins: %d started, %d ok, %d ended ok, %d attempts; want %d, %d, %d, 100", started, ok, ended, hits, r.Calls, r.OK, r.OK)
	}
	if len(r.Bins) != 43 {
		t.Errorf("%d bins, want 43 (to the end of the last call)", len(r.Bins))
	}
	if r.OKInsideTrouble != 0 {
		t.Errorf("OKInsideTrouble %d, want 0", r.OKInsideTrouble)
	}
	if len(r.Around) != p.AroundBins || r.Around[0] != 0 || r.Around[5] != 1 {
		t.Errorf("around %v: want %d bins, 0 before the end, 1 after", r.Around, p.AroundBins)
	}
}
