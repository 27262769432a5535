package scenario

import (
	"fmt"
	"math"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// CheckOverload reports every number of r that is not well-formed, and
// every result that breaks a property no correct harness and stack can
// break whatever the timing: every selected (scenario, stack) ran once;
// counts add up; shares are within [0, 1] and times in order; the
// capacity-limited server never had more attempts in service than its
// workers; no more successes ended in a window than the server could have
// completed for callers whose deadline allowed it (so that bare, like
// every stack, stays at or below capacity, give or take the window's
// edges); no stack sent more than MaxAttempts attempts per call to a hop;
// nothing succeeded while the server failed or was down. It asserts
// nothing about which stack is better.
func CheckOverload(r *OverloadReport, o OverloadOptions) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pp := o.Params
	for _, sc := range OverloadScenarios {
		if !wants(o.Scenarios, sc) {
			continue
		}
		rows := r.Of(sc)
		if len(rows) != len(o.Stacks) {
			bad("%s: %d results, want %d", sc, len(rows), len(o.Stacks))
		}
		for i, x := range rows {
			if i < len(o.Stacks) && x.Stack != o.Stacks[i].Name {
				bad("%s: result %d is %s, want %s", sc, i, x.Stack, o.Stacks[i].Name)
			}
			for _, e := range checkResult(x, pp, o.policy(sc)) {
				bad("%s %s: %v", sc, x.Stack, e)
			}
		}
	}
	return errs
}

func checkResult(x OverloadResult, pp OverloadParams, pol stacks.Policy) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, v := range map[string]float64{
		"attempts/call": x.AttemptsPerCall, "success during": x.SuccessDuring, "success after": x.SuccessAfter,
		"goodput during": x.GoodputDuring, "goodput after": x.GoodputAfter, "wasted share": x.WastedShare,
		"dead attempts/s": x.DeadAttemptsPerSec, "leaf attempts/call": x.LeafAttemptsPerCall,
	} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad("%s: %v is not a finite non-negative number", name, v)
		}
	}
	for name, v := range map[string]float64{"success during": x.SuccessDuring, "success after": x.SuccessAfter, "wasted share": x.WastedShare} {
		if v > 1 {
			bad("%s %v > 1", name, v)
		}
	}
	if x.Calls < 1 || x.OK < 0 || x.OK > x.Calls {
		bad("%d ok of %d calls", x.OK, x.Calls)
	}
	var started, startedOK, endedOK int
	for _, b := range x.Bins {
		started, startedOK, endedOK = started+b.Started, startedOK+b.StartedOK, endedOK+b.EndedOK
		if b.StartedOK > b.Started || b.ServerAttempts < 0 {
			bad("bin %+v does not add up", b)
		}
	}
	if started != x.Calls || startedOK != x.OK || endedOK != x.OK {
		bad("bins count %d started, %d of them ok, %d ok ended; the load had %d calls, %d ok", started, startedOK, endedOK, x.Calls, x.OK)
	}
	for _, v := range x.Around {
		if v != -1 && (v < 0 || v > 1) {
			bad("around-the-end share %v out of [0, 1]", v)
		}
	}
	if !(0 <= x.TroubleStart && x.TroubleStart <= x.EndBegun && x.EndBegun <= x.TroubleEnd && x.TroubleEnd <= x.LoadEnd+time.Second) {
		bad("marks out of order: trouble %v, end begun %v, ended %v, load end %v", x.TroubleStart, x.EndBegun, x.TroubleEnd, x.LoadEnd)
	}
	if x.Recovered && (x.RecoveryTime < 0 || x.RecoveryTime > x.LoadEnd-x.TroubleEnd) {
		bad("recovery %v outside the %v after the trouble", x.RecoveryTime, x.LoadEnd-x.TroubleEnd)
	}
	if x.HasFirstSuccess && x.FirstSuccess < 0 {
		bad("first success %v before the trouble ended", x.FirstSuccess)
	}
	if x.ServerAttempts > x.ClientAttempts {
		bad("the first server saw %d attempts, the client started %d", x.ServerAttempts, x.ClientAttempts)
	}
	perCall := int64(pol.MaxAttempts)
	if x.Stack == stacks.Bare {
		perCall = 1
	}
	if x.ServerAttempts > perCall*int64(x.Calls) {
		bad("%d attempts reached the first server for %d calls (at most %d per call)", x.ServerAttempts, x.Calls, perCall)
	}

	switch x.Scenario {
	case Spike, CapacityDrop:
		workers, service := pp.Server.Workers, pp.Server.Service
		if x.Scenario == CapacityDrop {
			workers, service = max(workers, pp.Drop.Reduced.Workers), min(service, pp.Drop.Reduced.Service)
		}
		if x.Work.MaxBusy > workers {
			bad("the server had %d attempts in service at once, with %d workers", x.Work.MaxBusy, workers)
		}
		if x.Work.Late > x.Work.Completed || x.Work.Completed+x.Work.Rejected > x.ServerAttempts {
			bad("server work %+v does not add up with %d attempts", x.Work, x.ServerAttempts)
		}
		_, _, deadline := loadShape(x.Scenario, pp)
		// A success ending in [a, b) started at or after a - deadline, and
		// its work was scheduled to end in [a - deadline, b); each worker
		// ends one piece of work per service time at most.
		bound := func(a, b time.Duration) float64 {
			return float64(workers) * (float64(b-a+deadline)/float64(service) + 1)
		}
		during := x.GoodputDuring * (x.TroubleEnd - x.TroubleStart).Seconds() * duringCapacity(x, pp)
		if lim := bound(x.TroubleStart, x.TroubleEnd); during > lim+0.5 {
			bad("%.0f successes ended during the trouble; the server could complete at most %.0f for them", during, lim)
		}
		after := x.GoodputAfter * (x.LoadEnd - x.TroubleEnd).Seconds() * x.Capacity
		if lim := bound(x.TroubleEnd, x.LoadEnd); after > lim+0.5 {
			bad("%.0f successes ended after the trouble; the server could complete at most %.0f for them", after, lim)
		}
		if x.GoodputDuring > 0 && !(0 < x.P50During && x.P50During <= x.P99During && x.P99During <= deadline+time.Second) {
			bad("latency of successes out of order: p50 %v, p99 %v", x.P50During, x.P99During)
		}
	case OutageEnds, LongRestart, Chain:
		if x.Scenario == OutageEnds && !(x.TroubleStart <= x.SettledAt && x.SettledAt <= x.EndBegun) {
			bad("settled at %v, outside the outage %v–%v", x.SettledAt, x.TroubleStart, x.EndBegun)
		}
		if x.OKInsideTrouble != 0 {
			bad("%d calls started after the trouble began succeeded before it ended", x.OKInsideTrouble)
		}
	}
	if x.Scenario == LongRestart && x.FailedDeadlineAfterBack > x.Calls-x.OK {
		bad("%d failed with a deadline after the restart, of %d failed", x.FailedDeadlineAfterBack, x.Calls-x.OK)
	}
	if x.Scenario == Chain {
		if len(x.HopAttempts) != 3 {
			bad("%d hops, want 3", len(x.HopAttempts))
		} else {
			prev := int64(x.Calls)
			for i, n := range x.HopAttempts {
				if n > perCall*prev {
					bad("hop %d saw %d attempts for %d at the hop before (at most %d each)", i, n, prev, perCall)
				}
				prev = n
			}
		}
	}
	return errs
}

// duringCapacity is the capacity a capacity scenario's goodput during the
// trouble is measured against.
func duringCapacity(x OverloadResult, pp OverloadParams) float64 {
	if x.Scenario == CapacityDrop {
		return pp.Drop.Reduced.PerSecond()
	}
	return x.Capacity
}
