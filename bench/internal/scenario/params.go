package scenario

import (
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
)

// Params sizes the scenarios.
type Params struct {
	// Happy is the happy-path measurement.
	Happy HappyParams
	// Transient, Outage and Slow are open-loop loads with faults.
	Transient LoadParams
	Outage    LoadParams
	Slow      LoadParams
	// Restart stops and restarts the server under load.
	Restart RestartParams
	// CallTimeout is the deadline every call of the load scenarios carries.
	CallTimeout time.Duration
	// Warmup is the number of calls made, sequentially and without faults,
	// before a load scenario is measured; they must all succeed.
	Warmup int
}

// HappyParams sizes the happy-path measurement.
type HappyParams struct {
	// Duration is how long each round of each (stack, transport, mode)
	// is measured, after calibration.
	Duration time.Duration
	// Rounds is how many times each stack is measured, round-robin with
	// the others; the median round is reported.
	Rounds int
	// Parallelism is the number of goroutines per GOMAXPROCS in parallel
	// mode (as testing.B.SetParallelism).
	Parallelism int
}

// LoadParams is an open-loop load: Rate calls per second for Duration.
type LoadParams struct {
	Rate     float64
	Duration time.Duration
	Faults   faultserver.Faults
}

// Calls returns the number of calls the load starts.
func (p LoadParams) Calls() int { return max(1, int(p.Rate*p.Duration.Seconds())) }

// RestartParams is an open-loop load during which the server runs for
// Before, is stopped for Down, and runs again on the same port for After.
type RestartParams struct {
	Rate                float64
	Before, Down, After time.Duration
}

// The fault mixes of the load scenarios.
var (
	TransientFaults = faultserver.Faults{FailFraction: 0.3}
	OutageFaults    = faultserver.Faults{Outage: true}
	SlowFaults      = faultserver.Faults{SlowFraction: 0.02, SlowDelay: 250 * time.Millisecond}
)

// FullParams is the full run: about three minutes on 2 cores.
func FullParams() Params {
	return Params{
		Happy:     HappyParams{Duration: 150 * time.Millisecond, Rounds: 7, Parallelism: 4},
		Transient: LoadParams{Rate: 400, Duration: 3 * time.Second, Faults: TransientFaults},
		Outage:    LoadParams{Rate: 200, Duration: 3 * time.Second, Faults: OutageFaults},
		Slow:      LoadParams{Rate: 1000, Duration: 4 * time.Second, Faults: SlowFaults},
		// After outlasts the 5 s open timeout of the breakers.
		Restart:     RestartParams{Rate: 200, Before: 500 * time.Millisecond, Down: time.Second, After: 5500 * time.Millisecond},
		CallTimeout: time.Second,
		Warmup:      20,
	}
}

// QuickParams is a run of about half a minute, for a first look.
func QuickParams() Params {
	return Params{
		Happy:       HappyParams{Duration: 50 * time.Millisecond, Rounds: 3, Parallelism: 4},
		Transient:   LoadParams{Rate: 400, Duration: 750 * time.Millisecond, Faults: TransientFaults},
		Outage:      LoadParams{Rate: 200, Duration: 750 * time.Millisecond, Faults: OutageFaults},
		Slow:        LoadParams{Rate: 800, Duration: time.Second, Faults: SlowFaults},
		Restart:     RestartParams{Rate: 200, Before: 200 * time.Millisecond, Down: 500 * time.Millisecond, After: 800 * time.Millisecond},
		CallTimeout: time.Second,
		Warmup:      10,
	}
}

// SmokeParams runs every scenario very briefly: enough to check that each
// stack runs and the numbers are well-formed, not to measure anything.
func SmokeParams() Params {
	return Params{
		Happy:       HappyParams{Duration: 10 * time.Millisecond, Rounds: 1, Parallelism: 2},
		Transient:   LoadParams{Rate: 200, Duration: 200 * time.Millisecond, Faults: TransientFaults},
		Outage:      LoadParams{Rate: 200, Duration: 200 * time.Millisecond, Faults: OutageFaults},
		Slow:        LoadParams{Rate: 200, Duration: 250 * time.Millisecond, Faults: SlowFaults},
		Restart:     RestartParams{Rate: 100, Before: 100 * time.Millisecond, Down: 200 * time.Millisecond, After: 500 * time.Millisecond},
		CallTimeout: time.Second,
		Warmup:      3,
	}
}
