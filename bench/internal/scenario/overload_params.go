package scenario

import (
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
)

// Overload scenario names, in run order.
// (OutageEnds and LongRestart share their names with the classic Outage
// and Restart: each command has its own list.)
const (
	Spike        = "spike"
	CapacityDrop = "drop"
	OutageEnds   = "outage"
	LongRestart  = "restart"
	Chain        = "chain"
)

// OverloadScenarios lists every overload scenario in run order.
var OverloadScenarios = []string{Spike, CapacityDrop, OutageEnds, LongRestart, Chain}

// Phases are the three phases of a scenario: before the trouble, the
// trouble, and after it.
type Phases struct {
	Before time.Duration `json:"before_ns"`
	During time.Duration `json:"during_ns"`
	After  time.Duration `json:"after_ns"`
}

// Total is how long the load runs.
func (p Phases) Total() time.Duration { return p.Before + p.During + p.After }

// SpikeParams is an open-loop Poisson load of Base × capacity, Peak ×
// capacity during the trouble, every call with a Deadline.
type SpikeParams struct {
	Phases
	Base     float64       `json:"base"`
	Peak     float64       `json:"peak"`
	Deadline time.Duration `json:"deadline_ns"`
}

// DropParams is an open-loop Poisson load of Load × capacity, every call
// with a Deadline, while the server runs with Reduced capacity during the
// trouble.
type DropParams struct {
	Phases
	Load     float64              `json:"load"`
	Reduced  faultserver.Capacity `json:"reduced"`
	Deadline time.Duration        `json:"deadline_ns"`
}

// FailParams is an open-loop Poisson load of Rate calls per second with
// the server (in the chain: the leaf) failing or down during the trouble.
// A zero Deadline means calls carry none.
type FailParams struct {
	Phases
	Rate     float64       `json:"rate"`
	Deadline time.Duration `json:"deadline_ns"`
}

// RecoveryRule defines when calls succeed again after the trouble: the
// calls started in each Bin (aligned to the trouble's end) are counted,
// and success is back at the start of the first bin from which Sustain
// worth of consecutive bins each have at least Share of their calls
// succeed (a bin without calls counts as meeting it).
type RecoveryRule struct {
	Bin     time.Duration `json:"bin_ns"`
	Sustain time.Duration `json:"sustain_ns"`
	Share   float64       `json:"share"`
}

// OverloadParams sizes the overload comparison.
type OverloadParams struct {
	// Seed seeds the arrival times; every stack gets the same ones.
	Seed uint64 `json:"seed"`
	// Server is the capacity of the server of Spike and Drop (and the
	// failsafe-bulkhead stack's limit).
	Server  faultserver.Capacity `json:"server"`
	Spike   SpikeParams          `json:"spike"`
	Drop    DropParams           `json:"drop"`
	Outage  FailParams           `json:"outage"`
	Restart FailParams           `json:"restart"`
	Chain   FailParams           `json:"chain"`
	// Warmup is the number of sequential calls, all of which must
	// succeed, made before the load starts.
	Warmup   int          `json:"warmup"`
	Recovery RecoveryRule `json:"recovery"`
	// Around is how far before the trouble's end the fine series starts;
	// it runs AroundBins bins of Recovery.Bin.
	Around     time.Duration `json:"around_ns"`
	AroundBins int           `json:"around_bins"`
	// Straggle is how long calls without a deadline may run after the
	// load has ended; then they are cancelled (and count as failed).
	Straggle time.Duration `json:"straggle_ns"`
	// Settle is how long after the outage began the steady state of
	// attempts at the failing server is measured from (at most half the
	// outage); the attempts before are counted apart.
	Settle time.Duration `json:"settle_ns"`
}

// settle is Settle for an outage that lasts during: at most half of it.
func (p OverloadParams) settle(during time.Duration) time.Duration {
	return min(p.Settle, during/2)
}

// issue21Server is the server of issue 21: 4 workers of 2 ms (2,000
// attempts/s) and a queue of 500.
var issue21Server = faultserver.Capacity{Workers: 4, Service: 2 * time.Millisecond, Queue: 500}

// FullOverloadParams is the full run, about five minutes on 2 cores.
func FullOverloadParams() OverloadParams {
	return OverloadParams{
		Seed:   1,
		Server: issue21Server,
		Spike: SpikeParams{
			Phases: Phases{Before: 2 * time.Second, During: 2 * time.Second, After: 6 * time.Second},
			Base:   0.7, Peak: 1.5, Deadline: 100 * time.Millisecond,
		},
		Drop: DropParams{
			Phases:  Phases{Before: 2 * time.Second, During: 2 * time.Second, After: 6 * time.Second},
			Load:    0.7,
			Reduced: faultserver.Capacity{Workers: 4, Service: 4 * time.Millisecond, Queue: 500},
			// the same deadline as the spike
			Deadline: 100 * time.Millisecond,
		},
		Outage:     FailParams{Phases: Phases{Before: time.Second, During: 3 * time.Second, After: 3 * time.Second}, Rate: 200, Deadline: time.Second},
		Restart:    FailParams{Phases: Phases{Before: time.Second, During: 3 * time.Second, After: 4 * time.Second}, Rate: 50},
		Chain:      FailParams{Phases: Phases{Before: time.Second, During: 2 * time.Second, After: 3 * time.Second}, Rate: 100, Deadline: time.Second},
		Warmup:     20,
		Recovery:   RecoveryRule{Bin: 100 * time.Millisecond, Sustain: 500 * time.Millisecond, Share: 0.95},
		Around:     500 * time.Millisecond,
		AroundBins: 20,
		Straggle:   15 * time.Second,
		Settle:     time.Second,
	}
}

// QuickOverloadParams is a shorter run, about two minutes: the same loads,
// shorter phases (the restart 2.5 s instead of 3 s).
func QuickOverloadParams() OverloadParams {
	p := FullOverloadParams()
	p.Spike.Phases = Phases{Before: 500 * time.Millisecond, During: time.Second, After: 1500 * time.Millisecond}
	p.Drop.Phases = p.Spike.Phases
	p.Outage.Phases = Phases{Before: 500 * time.Millisecond, During: 2 * time.Second, After: time.Second}
	p.Restart.Phases = Phases{Before: 500 * time.Millisecond, During: 2500 * time.Millisecond, After: 1500 * time.Millisecond}
	p.Chain.Phases = Phases{Before: 500 * time.Millisecond, During: time.Second, After: time.Second}
	p.Warmup = 10
	p.AroundBins = 15
	return p
}

// SmokeOverloadParams runs every overload scenario very briefly against a
// slower server (4 workers of 10 ms: 400 attempts/s), so that the race
// detector keeps up: enough to check that the harness works end to end,
// not to measure anything.
func SmokeOverloadParams() OverloadParams {
	p := FullOverloadParams()
	p.Server = faultserver.Capacity{Workers: 4, Service: 10 * time.Millisecond, Queue: 100}
	p.Spike.Phases = Phases{Before: 200 * time.Millisecond, During: 400 * time.Millisecond, After: 400 * time.Millisecond}
	p.Drop.Phases = p.Spike.Phases
	p.Drop.Reduced = faultserver.Capacity{Workers: 2, Service: 10 * time.Millisecond, Queue: 100}
	p.Outage = FailParams{Phases: Phases{Before: 100 * time.Millisecond, During: 300 * time.Millisecond, After: 300 * time.Millisecond}, Rate: 100, Deadline: time.Second}
	p.Restart = FailParams{Phases: Phases{Before: 100 * time.Millisecond, During: 300 * time.Millisecond, After: 300 * time.Millisecond}, Rate: 50}
	p.Chain = FailParams{Phases: Phases{Before: 100 * time.Millisecond, During: 300 * time.Millisecond, After: 300 * time.Millisecond}, Rate: 50, Deadline: time.Second}
	p.Warmup = 3
	p.AroundBins = 8
	return p
}
