package scenario

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// OverloadOptions configures RunOverload.
type OverloadOptions struct {
	Params OverloadParams
	// Policy is the peers' configuration (stacks.OverloadPolicy); the
	// restart scenario applies stacks.Quickstart to it, and MaxConcurrency
	// is set to Params.Server.Workers.
	Policy stacks.Policy
	// Stacks to compare (stacks.Overload); bare is the base of the ratios.
	Stacks []stacks.Stack
	// Scenarios to run; empty runs all.
	Scenarios []string
	// Progress, if not nil, is told what runs.
	Progress io.Writer
}

// policy returns the Policy of a scenario.
func (o OverloadOptions) policy(scenario string) stacks.Policy {
	p := o.Policy
	p.RetryCodes = slices.Clone(p.RetryCodes)
	p.MaxConcurrency = o.Params.Server.Workers
	if scenario == LongRestart {
		p = stacks.Quickstart(p)
	}
	return p
}

// OverloadReport is everything one overload run measured.
type OverloadReport struct {
	Env     Env                 `json:"env"`
	Params  OverloadParams      `json:"params"`
	Stacks  []OverloadStackInfo `json:"stacks"`
	Results []OverloadResult    `json:"results"`
	Elapsed time.Duration       `json:"elapsed_ns"`
}

// OverloadStackInfo says how a stack was configured, in the restart
// scenario (the README's Quickstart settings) and in the others.
type OverloadStackInfo struct {
	Name          string `json:"name"`
	Config        string `json:"config"`
	RestartConfig string `json:"restart_config"`
}

// RunOverload runs the selected overload scenarios against every stack,
// one (scenario, stack) at a time, in this process.
func RunOverload(ctx context.Context, o OverloadOptions) (*OverloadReport, error) {
	start := time.Now()
	r := &OverloadReport{Env: CurrentEnv(), Params: o.Params}
	for _, st := range o.Stacks {
		r.Stacks = append(r.Stacks, OverloadStackInfo{
			Name:          st.Name,
			Config:        st.Config(o.policy(Spike)),
			RestartConfig: st.Config(o.policy(LongRestart)),
		})
	}
	for i, sc := range OverloadScenarios {
		if !wants(o.Scenarios, sc) {
			continue
		}
		for _, st := range o.Stacks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			progress(o.Progress, "%s %s", sc, st.Name)
			res, err := runOverloadOnce(sc, uint64(i), st, o)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", sc, st.Name, err)
			}
			r.Results = append(r.Results, res)
		}
	}
	r.Elapsed = time.Since(start)
	r.Env.LoadAvgEnd = loadAvg()
	return r, nil
}

// rig is what one (scenario, stack) run needs: the caller's client, the
// servers, what the trouble does, and how to take it all down.
type rig struct {
	caller   *client
	first    *faultserver.Server   // the server the caller calls
	watched  *faultserver.Server   // whose attempts the series counts
	hops     []*faultserver.Server // the chain's F, M, L
	begin    func() error          // starts the trouble (nil: nothing to do)
	end      func() error          // ends it
	teardown []func()              // in order
}

func (g *rig) close() {
	for _, f := range g.teardown {
		f()
	}
}

// newRig starts the servers and clients of a scenario for one stack.
func newRig(sc string, st stacks.Stack, p stacks.Policy, o OverloadOptions) (*rig, error) {
	g := &rig{}
	ok := false
	defer func() {
		if !ok {
			g.close()
		}
	}()
	server := func() (*faultserver.Server, error) {
		srv, err := faultserver.Start(faultserver.TCP)
		if err == nil {
			g.teardown = append(g.teardown, srv.Close)
		}
		return srv, err
	}
	connect := func(srv *faultserver.Server, count bool) (*client, error) {
		c, err := dial(srv, st, p, count)
		if err == nil {
			g.teardown = append(g.teardown, c.close)
		}
		return c, err
	}

	if sc == Chain {
		// Built from the leaf up; torn down from the caller down.
		var next *client
		for range 3 {
			srv, err := server()
			if err != nil {
				return nil, err
			}
			if next != nil {
				svc := next.svc
				srv.SetForward(func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
					return svc.UnaryCall(ctx, req)
				})
			}
			g.hops = append([]*faultserver.Server{srv}, g.hops...)
			if next, err = connect(srv, len(g.hops) == 3); err != nil {
				return nil, err
			}
		}
		slices.Reverse(g.teardown)
		g.caller, g.first, g.watched = next, g.hops[0], g.hops[2]
		leaf := g.hops[2]
		g.begin = func() error { leaf.SetFaults(OutageFaults); return nil }
		g.end = func() error { leaf.SetFaults(faultserver.Faults{}); return nil }
		ok = true
		return g, nil
	}

	srv, err := server()
	if err != nil {
		return nil, err
	}
	g.first, g.watched = srv, srv
	switch sc {
	case Spike, CapacityDrop:
		if err := srv.SetCapacity(o.Params.Server); err != nil {
			return nil, err
		}
		if sc == CapacityDrop {
			g.begin = func() error { return srv.SetCapacity(o.Params.Drop.Reduced) }
			g.end = func() error { return srv.SetCapacity(o.Params.Server) }
		}
	case OutageEnds:
		g.begin = func() error { srv.SetFaults(OutageFaults); return nil }
		g.end = func() error { srv.SetFaults(faultserver.Faults{}); return nil }
	case LongRestart:
		g.begin = func() error { srv.Stop(); return nil }
		g.end = srv.Restart
	default:
		return nil, fmt.Errorf("unknown scenario %q", sc)
	}
	if g.caller, err = connect(srv, true); err != nil {
		return nil, err
	}
	// The caller's client closes before the server.
	slices.Reverse(g.teardown)
	ok = true
	return g, nil
}

// loadShape is the load of a scenario: its phases, the rate of each phase,
// the capacity its goodput is measured against, and the calls' deadline.
func loadShape(sc string, pp OverloadParams) (ph Phases, rates [3]float64, deadline time.Duration) {
	capacity := pp.Server.PerSecond()
	switch sc {
	case Spike:
		s := pp.Spike
		return s.Phases, [3]float64{s.Base * capacity, s.Peak * capacity, s.Base * capacity}, s.Deadline
	case CapacityDrop:
		d := pp.Drop
		return d.Phases, [3]float64{d.Load * capacity, d.Load * capacity, d.Load * capacity}, d.Deadline
	}
	f := map[string]FailParams{OutageEnds: pp.Outage, LongRestart: pp.Restart, Chain: pp.Chain}[sc]
	return f.Phases, [3]float64{f.Rate, f.Rate, f.Rate}, f.Deadline
}

// marks are the moments a run's trouble began and ended, with the watched
// server's attempts at each.
type marks struct {
	start, settled, endBegun, end            time.Duration
	hitsAtStart, hitsAtSettled, hitsAtEndBeg int64
	err                                      error
}

// runOverloadOnce runs one scenario for one stack against fresh servers
// and clients.
func runOverloadOnce(sc string, stream uint64, st stacks.Stack, o OverloadOptions) (OverloadResult, error) {
	pp := o.Params
	g, err := newRig(sc, st, o.policy(sc), o)
	if err != nil {
		return OverloadResult{}, err
	}
	defer g.close()
	req := newRequest()
	if err := g.caller.warmup(pp.Warmup, req); err != nil {
		return OverloadResult{}, err
	}

	ph, rates, deadline := loadShape(sc, pp)
	at := poisson(rand.New(rand.NewPCG(pp.Seed, stream)), rates[:],
		[]time.Duration{ph.Before, ph.Before + ph.During, ph.Total()})
	client0, work0 := g.caller.attempts.load(), g.first.Work()
	hops0 := make([]int64, len(g.hops))
	for i, h := range g.hops {
		hops0[i] = h.Hits()
	}
	server0 := g.first.Hits()

	t0 := time.Now()
	// Calls without a deadline are cancelled Straggle after the load ends.
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	straggle := time.AfterFunc(ph.Total()+pp.Straggle, cancel)
	defer straggle.Stop()

	done := make(chan marks, 1)
	go func() { done <- script(t0, ph, pp.settle(ph.During), g) }()
	stopSampling := make(chan struct{})
	sampled := make(chan []sample, 1)
	go func() { sampled <- sampleHits(t0, pp.Recovery.Bin, g.watched, stopSampling) }()

	recs := openLoop(t0, at, func() bool {
		ctx := parent
		if deadline > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(parent, deadline)
			defer cancel()
		}
		return g.caller.call(ctx, req) == nil
	})
	m := <-done
	close(stopSampling)
	samples := <-sampled
	if m.err != nil {
		return OverloadResult{}, m.err
	}

	r := OverloadResult{
		Scenario:       sc,
		Stack:          st.Name,
		ClientAttempts: g.caller.attempts.load() - client0,
		TroubleStart:   m.start,
		TroubleEnd:     m.end,
		EndBegun:       m.endBegun,
		LoadEnd:        ph.Total(),
	}
	if sc == Spike { // the load itself changes, exactly on schedule
		r.TroubleStart, r.EndBegun, r.TroubleEnd = ph.Before, ph.Before+ph.During, ph.Before+ph.During
	}
	// Stop waits for every handler: the work still queued for callers that
	// have gone is done, and counted, before Work is read.
	g.first.Stop()
	r.ServerAttempts = g.first.Hits() - server0
	analyze(&r, recs, at, samples, pp)

	switch sc {
	case Spike, CapacityDrop:
		r.Capacity = pp.Server.PerSecond()
		ok := successesEnding(recs, r.TroubleStart, r.TroubleEnd)
		r.GoodputDuring = float64(len(ok)) / (r.TroubleEnd - r.TroubleStart).Seconds() / duringCapacity(r, pp)
		r.P50During, r.P99During = percentile(ok, 0.50), percentile(ok, 0.99)
		after := successesEnding(recs, r.TroubleEnd, r.LoadEnd)
		r.GoodputAfter = float64(len(after)) / (r.LoadEnd - r.TroubleEnd).Seconds() / r.Capacity
		r.Work = g.first.Work().Sub(work0)
		if r.Work.Completed > 0 {
			r.WastedShare = float64(r.Work.Late) / float64(r.Work.Completed)
		}
	case OutageEnds:
		r.SettledAt = m.settled
		r.DeadAttemptsPerSec = float64(m.hitsAtEndBeg-m.hitsAtSettled) / (m.endBegun - m.settled).Seconds()
		r.EarlyDeadAttempts = m.hitsAtSettled - m.hitsAtStart
	case LongRestart:
		for _, rec := range recs {
			if !rec.ok && (deadline == 0 || rec.start+deadline > r.TroubleEnd) {
				r.FailedDeadlineAfterBack++
			}
		}
	case Chain:
		for i, h := range g.hops {
			r.HopAttempts = append(r.HopAttempts, h.Hits()-hops0[i])
		}
		if started, _ := countStarted(recs, m.start, m.endBegun); started > 0 {
			r.LeafAttemptsPerCall = float64(m.hitsAtEndBeg-m.hitsAtStart) / float64(started)
		}
	}
	return r, nil
}

// script plays the trouble on the load's clock: it begins it Before after
// t0 and ends it During later, and notes the watched server's attempts
// settle after the beginning.
func script(t0 time.Time, ph Phases, settle time.Duration, g *rig) marks {
	var m marks
	time.Sleep(time.Until(t0.Add(ph.Before)))
	if g.begin != nil {
		m.err = g.begin()
	}
	m.start = time.Since(t0)
	m.hitsAtStart = g.watched.Hits()
	time.Sleep(time.Until(t0.Add(ph.Before + settle)))
	m.settled = time.Since(t0)
	m.hitsAtSettled = g.watched.Hits()
	time.Sleep(time.Until(t0.Add(ph.Before + ph.During)))
	m.hitsAtEndBeg = g.watched.Hits()
	m.endBegun = time.Since(t0)
	if g.end != nil && m.err == nil {
		m.err = g.end()
	}
	m.end = time.Since(t0)
	return m
}

// sampleHits records srv's attempt count every interval until stop.
func sampleHits(t0 time.Time, interval time.Duration, srv *faultserver.Server, stop <-chan struct{}) []sample {
	out := []sample{{at: time.Since(t0), hits: srv.Hits()}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			out = append(out, sample{at: time.Since(t0), hits: srv.Hits()})
		case <-stop:
			return append(out, sample{at: time.Since(t0), hits: srv.Hits()})
		}
	}
}
