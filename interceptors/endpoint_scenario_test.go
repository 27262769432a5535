package interceptors

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/endpoint"
)

// fleetRun is what one run of calls against a fleet measured.
type fleetRun struct {
	calls, failedCalls     int
	attempts               int
	failedFirst            int // first attempt reached the bad endpoint
	steadyCalls            int // calls started after the first ejection
	steadyAttempts         int
	steadyFailedFirst      int
	hedged, sharedEndpoint int // calls with two attempts or more; of them, two on one endpoint
	latencies              []time.Duration
	ejectedAt              time.Duration // since the start; 0: no ejection
	callsBeforeEject       int
	failuresBeforeEject    int
}

func (r fleetRun) pct(q float64) time.Duration {
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

// runFleet makes callers x calls against f; bad is the index of the
// failing endpoint (-1: none); ejected reports the time of the first
// ejection (zero: none yet).
func runFleet(t *testing.T, f *fleet, callers, calls, bad int, ejected func() time.Time, opts ...grpc.CallOption) fleetRun {
	var res fleetRun
	var mu sync.Mutex
	var started atomic.Int64
	var failedSoFar atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				id := fmt.Sprintf("%s-%d-%d", t.Name(), g, i)
				steady := !ejected().IsZero()
				n := 0
				t0 := time.Now()
				err := f.call(context.Background(), id, append(opts, Attempts(&n))...)
				d := time.Since(t0)
				started.Add(1)
				got := f.servedBy(id)
				failedFirst := bad >= 0 && len(got) > 0 && got[0] == bad
				if failedFirst {
					failedSoFar.Add(1)
				}
				mu.Lock()
				res.calls++
				res.attempts += n
				res.latencies = append(res.latencies, d)
				if err != nil {
					res.failedCalls++
				}
				if failedFirst {
					res.failedFirst++
				}
				if steady {
					res.steadyCalls++
					res.steadyAttempts += n
					if failedFirst {
						res.steadyFailedFirst++
					}
				}
				if len(got) >= 2 {
					res.hedged++
					if got[0] == got[1] {
						res.sharedEndpoint++
					}
				}
				if at := ejected(); !at.IsZero() && res.ejectedAt == 0 {
					res.ejectedAt = at.Sub(start)
					res.callsBeforeEject = int(started.Load())
					res.failuresBeforeEject = int(failedSoFar.Load())
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(res.latencies)
	return res
}

// ejectClock records the first ejection's time.
type ejectClock struct {
	mu sync.Mutex
	at time.Time
}

func (e *ejectClock) onEject(_, _ string, ejected bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ejected && e.at.IsZero() {
		e.at = time.Now()
	}
}

func (e *ejectClock) first() time.Time {
	if e == nil {
		return time.Time{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.at
}

// TestEndpointScenario measures, through the interceptors with their
// defaults, 5 loopback endpoints of which one answers Unavailable to
// everything, and 5 of which one is slow by 50 ms with hedging on:
// WithEndpointEjection beside round_robin (our retries and hedges, no
// ejection). It logs the figures of BENCHMARKS.md; run it with
//
//	go test -run TestEndpointScenario -v -count=1 ./interceptors/
//
// and asserts only bounds that timing cannot break: after the ejection no
// first attempt fails, hedges never share an endpoint, and round_robin
// shows the problem.
func TestEndpointScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("scenario")
	}
	const callers, calls = 4, 1000
	t.Run("one endpoint down", func(t *testing.T) {
		ec := &ejectClock{}
		for _, mode := range []string{"round_robin", "resilience_endpoint"} {
			var f *fleet
			var ej func() time.Time
			if mode == "round_robin" {
				f = newFleet(t, 5, MustNew(), grpc.WithDefaultServiceConfig(roundRobin))
				ej = func() time.Time { return time.Time{} }
			} else {
				f = newFleet(t, 5, MustNew(WithEndpointEjection(endpoint.Config{OnEject: ec.onEject})))
				ej = ec.first
			}
			f.servers[2].failAll()
			n := calls
			if mode == "round_robin" {
				n = calls / 4 // its retries' backoff makes it slow; the share is what counts
			}
			r := runFleet(t, f, callers, n, 2, ej)
			t.Logf("%-19s %d calls: failed first attempts %.2f %%, attempts/call %.3f, failed calls %d",
				mode, r.calls, pct(r.failedFirst, r.calls), float64(r.attempts)/float64(r.calls), r.failedCalls)
			if mode == "round_robin" {
				if pct(r.failedFirst, r.calls) < 10 {
					t.Errorf("round_robin: only %.1f %% failed first attempts; the scenario does not show the problem", pct(r.failedFirst, r.calls))
				}
				continue
			}
			if r.ejectedAt == 0 {
				t.Fatal("the failing endpoint was never ejected")
			}
			t.Logf("%-19s ejected after %v, %d calls, %d failed first attempts; steady state (%d calls): failed first attempts %.2f %%, attempts/call %.4f",
				"", r.ejectedAt.Round(100*time.Microsecond), r.callsBeforeEject, r.failuresBeforeEject,
				r.steadyCalls, pct(r.steadyFailedFirst, r.steadyCalls), float64(r.steadyAttempts)/float64(r.steadyCalls))
			if r.steadyFailedFirst != 0 || r.failedCalls != 0 {
				t.Errorf("after the ejection %d first attempts failed; %d calls failed", r.steadyFailedFirst, r.failedCalls)
			}
		}
	})
	t.Run("one endpoint slow", func(t *testing.T) {
		hedge := Hedging(HedgePolicy{Delay: 5 * time.Millisecond, MaxAttempts: 2})
		for _, mode := range []string{"round_robin, no hedging", "round_robin", "resilience_endpoint"} {
			var f *fleet
			var opts []grpc.CallOption
			switch mode {
			case "resilience_endpoint":
				f = newFleet(t, 5, MustNew(WithEndpointEjection(endpoint.Config{})))
				opts = []grpc.CallOption{hedge}
			case "round_robin":
				f = newFleet(t, 5, MustNew(), grpc.WithDefaultServiceConfig(roundRobin))
				opts = []grpc.CallOption{hedge}
			default:
				f = newFleet(t, 5, MustNew(), grpc.WithDefaultServiceConfig(roundRobin))
			}
			must(t, f.servers[0].SetLatency(allMethods, 1, 50*time.Millisecond))
			r := runFleet(t, f, callers, calls/4, -1, func() time.Time { return time.Time{} }, opts...)
			t.Logf("%-24s %d calls: p50 %v, p90 %v, p99 %v, max %v; hedged %d, of them on one endpoint %d; attempts/call %.3f",
				mode, r.calls, r.pct(0.5).Round(10*time.Microsecond), r.pct(0.9).Round(10*time.Microsecond),
				r.pct(0.99).Round(10*time.Microsecond), r.latencies[len(r.latencies)-1].Round(10*time.Microsecond),
				r.hedged, r.sharedEndpoint, float64(r.attempts)/float64(r.calls))
			if mode == "resilience_endpoint" && r.sharedEndpoint != 0 {
				t.Errorf("%d hedged calls had two attempts on one endpoint", r.sharedEndpoint)
			}
		}
	})
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}
