package scenario

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
)

// OverloadResult is what one stack did in one overload scenario. Times are
// offsets from the start of the load; "the trouble" is the spike, the
// reduced capacity, the outage, the server being down, or the leaf
// failing. Figures that a scenario does not define are zero and left out
// of the JSON.
type OverloadResult struct {
	Scenario string `json:"scenario"`
	Stack    string `json:"stack"`
	// Calls started, and how many succeeded.
	Calls int `json:"calls"`
	OK    int `json:"ok"`
	// ClientAttempts are the attempts the caller's client started
	// (stats.Begin); ServerAttempts those that reached the first server.
	ClientAttempts int64 `json:"client_attempts"`
	ServerAttempts int64 `json:"server_attempts"`
	// AttemptsPerCall is ClientAttempts / Calls: the amplification.
	AttemptsPerCall float64 `json:"attempts_per_call"`
	// TroubleStart and TroubleEnd are when the trouble began and ended, as
	// applied (the heal, the restart's listener accepting); EndBegun is when
	// ending it began (before a restart: the same as TroubleEnd otherwise).
	TroubleStart time.Duration `json:"trouble_start_ns"`
	TroubleEnd   time.Duration `json:"trouble_end_ns"`
	EndBegun     time.Duration `json:"end_begun_ns"`
	LoadEnd      time.Duration `json:"load_end_ns"`

	// SuccessDuring and SuccessAfter are the shares of the calls started
	// during the trouble and after it that succeeded.
	SuccessDuring float64 `json:"success_during"`
	SuccessAfter  float64 `json:"success_after"`
	// Recovered reports whether success came back after the trouble by
	// the RecoveryRule before the load ended; RecoveryTime is from the
	// trouble's end to the start of the first bin of the sustained run.
	Recovered    bool          `json:"recovered"`
	RecoveryTime time.Duration `json:"recovery_ns"`
	// FirstSuccess is from the trouble's end to the end of the first call
	// that succeeded after it (HasFirstSuccess false: none did).
	HasFirstSuccess bool          `json:"has_first_success"`
	FirstSuccess    time.Duration `json:"first_success_ns"`

	// Capacity scenarios (spike, drop). GoodputDuring is the successes
	// ending during the trouble per second, over the capacity the server
	// had then; GoodputAfter the same over the After phase, over the full
	// capacity. P50During and P99During are the latencies of those
	// successes. Work is the server's, over the whole load; WastedShare is
	// Work.Late / Work.Completed.
	GoodputDuring float64          `json:"goodput_during,omitempty"`
	GoodputAfter  float64          `json:"goodput_after,omitempty"`
	P50During     time.Duration    `json:"p50_during_ns,omitempty"`
	P99During     time.Duration    `json:"p99_during_ns,omitempty"`
	Work          faultserver.Work `json:"work"`
	WastedShare   float64          `json:"wasted_share"`
	Capacity      float64          `json:"capacity_per_s,omitempty"`

	// Outage: attempts per second that reached the failing server from
	// SettledAt (Settle after it began failing) to its end — the steady
	// state, per client (there is one) — and the attempts that reached it
	// before SettledAt, while the stack found out.
	SettledAt          time.Duration `json:"settled_at_ns,omitempty"`
	DeadAttemptsPerSec float64       `json:"dead_attempts_per_s,omitempty"`
	EarlyDeadAttempts  int64         `json:"early_dead_attempts,omitempty"`

	// Restart: failed calls whose caller deadline (none: never) fell after
	// the server was back.
	FailedDeadlineAfterBack int `json:"failed_deadline_after_back"`

	// Chain: attempts that reached each hop (F, M, L) over the whole load,
	// and attempts at the leaf while it failed per call started then.
	HopAttempts         []int64 `json:"hop_attempts,omitempty"`
	LeafAttemptsPerCall float64 `json:"leaf_attempts_per_call,omitempty"`

	// LaunchLagP99 and LaunchLagMax are how late the load generator
	// started calls against their arrival times: a large lag means the
	// process was starved of CPU, and the run's timings are disturbed.
	LaunchLagP99 time.Duration `json:"launch_lag_p99_ns"`
	LaunchLagMax time.Duration `json:"launch_lag_max_ns"`

	// OKInsideTrouble counts the calls started once the trouble had begun
	// that succeeded before its end began: none can, in the outage, the
	// restart and the chain (a check of the harness, not of the stack).
	OKInsideTrouble int `json:"ok_inside_trouble"`

	// Bins is the load in bins of Recovery.Bin from the load's start to
	// the end of its last call.
	Bins []Bin `json:"bins"`
	// Around is the share of the calls started in each bin of
	// Recovery.Bin from Around before the trouble's end that succeeded
	// (-1: no call started in that bin).
	Around []float64 `json:"around"`
}

// Bin counts one slice of time of a load.
type Bin struct {
	// Started calls, and how many of them succeeded.
	Started   int `json:"started"`
	StartedOK int `json:"started_ok"`
	// EndedOK counts the successes that ended in the bin.
	EndedOK int `json:"ended_ok"`
	// ServerAttempts reached the server of interest (the leaf in the
	// chain), sampled at about the bin's edges.
	ServerAttempts int64 `json:"server_attempts"`
}

// poisson returns the arrival times of an open-loop Poisson load whose
// rate per second is rates[i] from the end of phase i-1 to ends[i].
func poisson(rng *rand.Rand, rates []float64, ends []time.Duration) []time.Duration {
	var at []time.Duration
	var t time.Duration
	for i, rate := range rates {
		for rate > 0 {
			t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
			if t >= ends[i] {
				break
			}
			at = append(at, t)
		}
		t = ends[i] // memoryless: the next phase starts afresh
	}
	return at
}

// sample is a cumulative count of server attempts at an offset.
type sample struct {
	at   time.Duration
	hits int64
}

// analyze computes the part of an OverloadResult every scenario has from
// its call records, their arrival times, the marks and the server samples.
func analyze(r *OverloadResult, recs []callRecord, at []time.Duration, samples []sample, p OverloadParams) {
	r.Calls = len(recs)
	lags := make([]time.Duration, len(recs))
	for i, rec := range recs {
		lags[i] = max(0, rec.start-at[i])
	}
	r.LaunchLagP99, r.LaunchLagMax = percentile(lags, 0.99), percentile(lags, 1)
	for _, rec := range recs {
		if rec.ok {
			r.OK++
		}
	}
	if r.Calls > 0 {
		r.AttemptsPerCall = float64(r.ClientAttempts) / float64(r.Calls)
	}
	r.SuccessDuring = shareOK(recs, r.TroubleStart, r.TroubleEnd)
	r.SuccessAfter = shareOK(recs, r.TroubleEnd, r.LoadEnd)
	r.RecoveryTime, r.Recovered = recoveryAfter(recs, r.TroubleEnd, r.LoadEnd, p.Recovery)
	r.FirstSuccess, r.HasFirstSuccess = firstSuccessAfter(recs, r.TroubleEnd)

	if r.Scenario == OutageEnds || r.Scenario == LongRestart || r.Scenario == Chain {
		for _, rec := range recs {
			if rec.ok && rec.start >= r.TroubleStart && rec.end < r.EndBegun {
				r.OKInsideTrouble++
			}
		}
	}

	bin := p.Recovery.Bin
	last := r.LoadEnd
	for _, rec := range recs {
		last = max(last, rec.end)
	}
	r.Bins = make([]Bin, int(last/bin)+1)
	for _, rec := range recs {
		b := &r.Bins[rec.start/bin]
		b.Started++
		if rec.ok {
			b.StartedOK++
			r.Bins[rec.end/bin].EndedOK++
		}
	}
	for i := 1; i < len(samples); i++ {
		if b := int(samples[i].at / bin); b < len(r.Bins) {
			r.Bins[b].ServerAttempts += samples[i].hits - samples[i-1].hits
		}
	}
	r.Around = make([]float64, p.AroundBins)
	from := r.TroubleEnd - p.Around
	for i := range r.Around {
		started, ok := countStarted(recs, from+time.Duration(i)*bin, from+time.Duration(i+1)*bin)
		r.Around[i] = -1
		if started > 0 {
			r.Around[i] = float64(ok) / float64(started)
		}
	}
}

// countStarted counts the calls started in [from, to) and how many of
// them succeeded.
func countStarted(recs []callRecord, from, to time.Duration) (started, ok int) {
	for _, rec := range recs {
		if rec.start >= from && rec.start < to {
			started++
			if rec.ok {
				ok++
			}
		}
	}
	return started, ok
}

// shareOK is the share of the calls started in [from, to) that
// succeeded, 0 if none started.
func shareOK(recs []callRecord, from, to time.Duration) float64 {
	started, ok := countStarted(recs, from, to)
	if started == 0 {
		return 0
	}
	return float64(ok) / float64(started)
}

// successesEnding returns the latencies of the successes that ended in
// [from, to).
func successesEnding(recs []callRecord, from, to time.Duration) []time.Duration {
	var ds []time.Duration
	for _, rec := range recs {
		if rec.ok && rec.end >= from && rec.end < to {
			ds = append(ds, rec.end-rec.start)
		}
	}
	return ds
}

// recoveryAfter applies rule to the calls started from `from` on, in bins
// that end by `until`.
func recoveryAfter(recs []callRecord, from, until time.Duration, rule RecoveryRule) (time.Duration, bool) {
	n := int((until - from) / rule.Bin)
	if n <= 0 {
		return 0, false
	}
	started := make([]int, n)
	ok := make([]int, n)
	for _, rec := range recs {
		if rec.start < from {
			continue
		}
		if i := int((rec.start - from) / rule.Bin); i < n {
			started[i]++
			if rec.ok {
				ok[i]++
			}
		}
	}
	need := max(1, int(math.Ceil(float64(rule.Sustain)/float64(rule.Bin))))
	run := 0
	for i := range n {
		if started[i] == 0 || float64(ok[i]) >= rule.Share*float64(started[i]) {
			run++
			if run == need {
				return time.Duration(i-need+1) * rule.Bin, true
			}
		} else {
			run = 0
		}
	}
	return 0, false
}

// firstSuccessAfter returns the time from t to the earliest end of a
// success that ended after t.
func firstSuccessAfter(recs []callRecord, t time.Duration) (time.Duration, bool) {
	first := time.Duration(-1)
	for _, rec := range recs {
		if rec.ok && rec.end > t && (first < 0 || rec.end < first) {
			first = rec.end
		}
	}
	if first < 0 {
		return 0, false
	}
	return first - t, true
}
