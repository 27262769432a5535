package scenario

import (
	"fmt"
	"math"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// Check reports every number of r that is not well-formed, and every
// result that breaks a property no correct stack can break whatever the
// timing: a stack ran in every selected scenario, counts add up, rates are
// within [0,1], percentiles are ordered, no stack sends more than
// MaxAttempts attempts per call to the server, nothing succeeds in an
// outage. It asserts nothing about which stack is better.
func Check(r *Report, o Options) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	finite := func(what string, vs ...float64) {
		for _, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				bad("%s: %v is not a finite non-negative number", what, v)
			}
		}
	}
	maxAttempts := int64(o.Policy.MaxAttempts)

	if o.wants(Happy) {
		want := len(HappyTransports) * 2 * len(o.Stacks)
		if len(r.Happy) != want {
			bad("happy: %d results, want %d", len(r.Happy), want)
		}
		for _, h := range r.Happy {
			what := fmt.Sprintf("happy %s/%s/%s", h.Transport, h.Mode, h.Stack)
			finite(what, h.NsPerOp, h.BytesPerOp, h.AllocsPerOp)
			if h.N < 1 || h.NsPerOp <= 0 || h.AllocsPerOp <= 0 {
				bad("%s: n=%d ns/op=%v allocs/op=%v: a gRPC call takes time and allocates", what, h.N, h.NsPerOp, h.AllocsPerOp)
			}
		}
	}

	checkLoad := func(name string, rs []LoadResult) {
		if !o.wants(name) {
			return
		}
		if len(rs) != len(o.Stacks) {
			bad("%s: %d results, want %d", name, len(rs), len(o.Stacks))
		}
		for _, l := range rs {
			what := name + " " + l.Stack
			finite(what, l.SuccessRate, l.AttemptsPerCall, l.ServerAttemptsPerCall, l.ServerAttemptsPerSec)
			switch {
			case l.Calls < 1:
				bad("%s: no calls", what)
			case l.OK < 0 || l.OK > l.Calls:
				bad("%s: %d ok of %d calls", what, l.OK, l.Calls)
			case l.SuccessRate > 1:
				bad("%s: success rate %v > 1", what, l.SuccessRate)
			}
			if l.ServerAttempts > l.ClientAttempts {
				bad("%s: the server saw %d attempts, the client started %d", what, l.ServerAttempts, l.ClientAttempts)
			}
			if l.ServerAttempts > maxAttempts*int64(l.Calls) {
				bad("%s: %d attempts reached the server for %d calls (max %d per call)", what, l.ServerAttempts, l.Calls, maxAttempts)
			}
			if l.Stack == stacks.Bare && l.ServerAttempts > int64(l.Calls) {
				bad("%s: the bare client sent %d attempts for %d calls", what, l.ServerAttempts, l.Calls)
			}
			if !(l.P50 <= l.P99 && l.P99 <= l.P999) || l.P50 < 0 {
				bad("%s: percentiles out of order: p50 %v p99 %v p99.9 %v", what, l.P50, l.P99, l.P999)
			}
			if l.FailedP50 > l.FailedP99 || l.FailedP50 < 0 {
				bad("%s: failed-call percentiles out of order: %v, %v", what, l.FailedP50, l.FailedP99)
			}
			if l.OK == l.Calls && (l.FailedP50 != 0 || l.FailedP99 != 0) {
				bad("%s: failed-call latency without failed calls", what)
			}
			if l.P999 > o.Params.CallTimeout+time.Second {
				bad("%s: p99.9 %v far beyond the %v call deadline", what, l.P999, o.Params.CallTimeout)
			}
		}
	}
	checkLoad(Transient, r.Transient)
	checkLoad(Outage, r.Outage)
	checkLoad(Slow, r.Slow)
	if o.wants(Outage) {
		for _, l := range r.Outage {
			if l.OK != 0 {
				bad("outage %s: %d calls succeeded while every attempt fails", l.Stack, l.OK)
			}
		}
	}

	if o.wants(Restart) {
		if len(r.Restart) != len(o.Stacks) {
			bad("restart: %d results, want %d", len(r.Restart), len(o.Stacks))
		}
		for _, x := range r.Restart {
			what := "restart " + x.Stack
			finite(what, x.AttemptsPerCall)
			switch {
			case x.Calls < 1:
				bad("%s: no calls", what)
			case x.Failed < 0 || x.Failed > x.Calls || x.FailedWhenDown+x.FailedAfter > x.Failed:
				bad("%s: failed %d (%d while down, %d after) of %d", what, x.Failed, x.FailedWhenDown, x.FailedAfter, x.Calls)
			case x.Down <= 0:
				bad("%s: down for %v", what, x.Down)
			case x.Recovered && x.TimeToFirstSuccess < 0:
				bad("%s: negative time to first success %v", what, x.TimeToFirstSuccess)
			case !x.Recovered && x.TimeToFirstSuccess != 0:
				bad("%s: time to first success without recovery", what)
			}
			if x.ServerAttempts > x.ClientAttempts {
				bad("%s: the server saw %d attempts, the client started %d", what, x.ServerAttempts, x.ClientAttempts)
			}
		}
	}
	return errs
}
