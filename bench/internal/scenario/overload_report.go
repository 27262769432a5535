package scenario

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// metric is one figure of an overload scenario, as the tables show it.
type metric struct {
	name   string
	higher bool // higher is better
	// get returns the figure, or false where the stack never reached it
	// (never recovered, no success): the worst value.
	get  func(OverloadResult) (float64, bool)
	show func(float64) string
}

func always(f func(OverloadResult) float64) func(OverloadResult) (float64, bool) {
	return func(r OverloadResult) (float64, bool) { return f(r), true }
}

func showFloat(v float64) string { return fmt.Sprintf("%.2f", v) }

// showPct shows a share; one below 1 % with two decimals, so that a small
// share is not shown as 0.0 % beside a ratio to it.
func showPct(v float64) string {
	if v > 0 && v < 0.01 {
		return fmt.Sprintf("%.2f %%", v*100)
	}
	return pct(v)
}
func showDur(v float64) string  { return fmtDur(time.Duration(v)) }
func showRate(v float64) string { return fmt.Sprintf("%.1f", v) }

var (
	mGoodputDuring = metric{"goodput during ↑", true, always(func(r OverloadResult) float64 { return r.GoodputDuring }), showFloat}
	mP50During     = metric{"p50 of successes during ↓", false, func(r OverloadResult) (float64, bool) {
		return float64(r.P50During), r.GoodputDuring > 0
	}, showDur}
	mP99During = metric{"p99 of successes during ↓", false, func(r OverloadResult) (float64, bool) {
		return float64(r.P99During), r.GoodputDuring > 0
	}, showDur}
	mGoodputAfter = metric{"goodput after ↑", true, always(func(r OverloadResult) float64 { return r.GoodputAfter }), showFloat}
	mWasted       = metric{"work for callers gone ↓", false, always(func(r OverloadResult) float64 { return r.WastedShare }), showPct}
	mRecovery     = metric{"back to ≥ 95 % ↓", false, func(r OverloadResult) (float64, bool) {
		return float64(r.RecoveryTime), r.Recovered
	}, showDur}
	mFirst = metric{"first success after ↓", false, func(r OverloadResult) (float64, bool) {
		return float64(r.FirstSuccess), r.HasFirstSuccess
	}, showDur}
	mSuccessAfter  = metric{"success after ↑", true, always(func(r OverloadResult) float64 { return r.SuccessAfter }), showPct}
	mAttempts      = metric{"attempts/call ↓", false, always(func(r OverloadResult) float64 { return r.AttemptsPerCall }), showFloat}
	mDeadAttempts  = metric{"attempts/s at the failing server, settled ↓", false, always(func(r OverloadResult) float64 { return r.DeadAttemptsPerSec }), showRate}
	mEarlyAttempts = metric{"attempts at it before ↓", false, always(func(r OverloadResult) float64 { return float64(r.EarlyDeadAttempts) }), func(v float64) string { return fmt.Sprintf("%.0f", v) }}
	mSuccess       = metric{"success ↑", true, always(func(r OverloadResult) float64 { return float64(r.OK) / float64(max(r.Calls, 1)) }), showPct}
	mFailedBack    = metric{"failed, deadline after back ↓", false, always(func(r OverloadResult) float64 { return float64(r.FailedDeadlineAfterBack) }), func(v float64) string { return fmt.Sprintf("%.0f", v) }}
	mLeafAttempts  = metric{"leaf attempts/call while failing ↓", false, always(func(r OverloadResult) float64 { return r.LeafAttemptsPerCall }), showFloat}
	mCallerAttempt = metric{"caller attempts/call ↓", false, always(func(r OverloadResult) float64 { return r.AttemptsPerCall }), showFloat}
)

// overloadMetrics are the figures of a scenario, the headline first.
func overloadMetrics(sc string) []metric {
	switch sc {
	case Spike, CapacityDrop:
		return []metric{mGoodputDuring, mP50During, mP99During, mGoodputAfter, mRecovery, mWasted, mAttempts}
	case OutageEnds:
		return []metric{mDeadAttempts, mEarlyAttempts, mFirst, mRecovery, mSuccessAfter, mAttempts}
	case LongRestart:
		return []metric{mSuccess, mFailedBack, mFirst, mRecovery, mAttempts}
	case Chain:
		return []metric{mLeafAttempts, mFirst, mRecovery, mSuccessAfter, mCallerAttempt}
	}
	return nil
}

// isOurs reports whether a stack is of the ours family.
func isOurs(name string) bool {
	return slices.ContainsFunc(stacks.OursFamily, func(v stacks.OursVariant) bool { return v.Name == name })
}

// isPeer reports whether a stack is one of the peers: neither bare nor ours.
func isPeer(name string) bool { return name != stacks.Bare && !isOurs(name) }

// Of returns the results of one scenario, in stack order.
func (r *OverloadReport) Of(sc string) []OverloadResult {
	var out []OverloadResult
	for _, x := range r.Results {
		if x.Scenario == sc {
			out = append(out, x)
		}
	}
	return out
}

// find returns the result of a stack in rows.
func find(rows []OverloadResult, name string) (OverloadResult, bool) {
	for _, x := range rows {
		if x.Stack == name {
			return x, true
		}
	}
	return OverloadResult{}, false
}

// bestPeer returns the peer with the best value of m in rows.
func bestPeer(rows []OverloadResult, m metric) (OverloadResult, float64, bool) {
	var (
		best  OverloadResult
		bestV float64
		found bool
	)
	for _, x := range rows {
		if !isPeer(x.Stack) {
			continue
		}
		v, ok := m.get(x)
		if !ok {
			continue
		}
		if !found || (m.higher && v > bestV) || (!m.higher && v < bestV) {
			best, bestV, found = x, v, true
		}
	}
	return best, bestV, found
}

// disturbed names the stacks whose load started some call more than a
// bin late.
func disturbed(rows []OverloadResult, bin time.Duration) []string {
	var names []string
	for _, x := range rows {
		if x.LaunchLagMax > bin {
			names = append(names, x.Stack)
		}
	}
	return names
}

// afterPhase is how long the load ran after the trouble, to the 100 ms.
func afterPhase(x OverloadResult) time.Duration {
	return (x.LoadEnd - x.TroubleEnd).Round(100 * time.Millisecond)
}

// cell shows m of x, or what it never reached.
func cell(m metric, x OverloadResult, load time.Duration) string {
	v, ok := m.get(x)
	if !ok {
		return "never (" + fmtDur(load) + ")"
	}
	return m.show(v)
}

func ratioCell(m metric, x OverloadResult, base float64, baseOK bool) string {
	v, ok := m.get(x)
	if !ok || !baseOK {
		return "—"
	}
	return ratio(v, base)
}

// Markdown writes the report: environment, stacks, then per scenario a
// table of every figure, ours against bare and the best peer, a series per
// second and one per bin around the trouble's end; last, ours against the
// targets of issue 21.
func (r *OverloadReport) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	r.Env.markdown(w, r.Elapsed)
	p("## Stacks\n\n| stack | configuration | in the restart |\n|---|---|---|\n")
	for _, s := range r.Stacks {
		restart := "same"
		if s.RestartConfig != s.Config {
			restart = s.RestartConfig
		}
		p("| %s | %s | %s |\n", s.Name, escape(s.Config), escape(restart))
	}
	p("\n")
	for _, sc := range OverloadScenarios {
		rows := r.Of(sc)
		if len(rows) == 0 {
			continue
		}
		r.scenarioMarkdown(w, sc, rows)
	}
	r.targetsMarkdown(w)
}

func escape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// title and description of a scenario, from its parameters.
func (r *OverloadReport) describe(sc string) (string, string) {
	pp := r.Params
	srv := pp.Server
	server := fmt.Sprintf("a server of %d workers × %s (%.0f/s), a FIFO queue of %d, Unavailable when full, doing queued work even for callers that have gone",
		srv.Workers, fmtDur(srv.Service), srv.PerSecond(), srv.Queue)
	switch sc {
	case Spike:
		s := pp.Spike
		return "Spike", fmt.Sprintf("%s; open-loop Poisson arrivals at %.1f × capacity for %s, %.1f × for %s, %.1f × for %s; every call with a %s deadline.",
			server, s.Base, fmtDur(s.Before), s.Peak, fmtDur(s.During), s.Base, fmtDur(s.After), fmtDur(s.Deadline))
	case CapacityDrop:
		d := pp.Drop
		return "Capacity drop", fmt.Sprintf("%s; open-loop Poisson arrivals at %.1f × capacity throughout, every call with a %s deadline; after %s the server runs %d workers × %s (%.0f/s) for %s, then as before for %s. Goodput during is over the reduced capacity.",
			server, d.Load, fmtDur(d.Deadline), fmtDur(d.Before), d.Reduced.Workers, fmtDur(d.Reduced.Service), d.Reduced.PerSecond(), fmtDur(d.During), fmtDur(d.After))
	case OutageEnds:
		o := pp.Outage
		return "An outage that ends", fmt.Sprintf("Open-loop Poisson arrivals at %.0f calls/s, each with a %s deadline; the server (no capacity limit) answers Unavailable to everything from %s for %s, then is healthy for %s. One client: \"attempts/s at the failing server, settled\" counts from %s after it began failing to its end, per client; \"attempts at it before\" counts the attempts of that first %s.",
			o.Rate, fmtDur(o.Deadline), fmtDur(o.Before), fmtDur(o.During), fmtDur(o.After), fmtDur(pp.settle(o.During)), fmtDur(pp.settle(o.During)))
	case LongRestart:
		o := pp.Restart
		return "A restart", fmt.Sprintf("Open-loop Poisson arrivals at %.0f calls/s with no caller deadline (calls still running %s after the load are cancelled and count as failed); after %s the server is stopped hard (listener and connections closed) and runs again on the same port %s later, for %s. Every stack with the README's Quickstart settings (see Stacks). \"Failed, deadline after back\": failed calls whose caller deadline fell after the server was back — with no caller deadline, every failed call.",
			o.Rate, fmtDur(pp.Straggle), fmtDur(o.Before), fmtDur(o.During), fmtDur(o.After))
	case Chain:
		o := pp.Chain
		return "A chain of services", fmt.Sprintf("caller → F → M → L, three servers on loopback, each hop a client of the stack under test passing the incoming context on; open-loop Poisson arrivals at %.0f calls/s, each with a %s deadline; L answers Unavailable to everything from %s for %s, then is healthy for %s.",
			o.Rate, fmtDur(o.Deadline), fmtDur(o.Before), fmtDur(o.During), fmtDur(o.After))
	}
	return sc, ""
}

func (r *OverloadReport) scenarioMarkdown(w io.Writer, sc string, rows []OverloadResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	title, desc := r.describe(sc)
	ms := overloadMetrics(sc)
	load := afterPhase(rows[0])
	p("## %s\n\n%s\n\n", title, desc)

	p("| stack | calls |")
	for _, m := range ms {
		p(" %s |", m.name)
	}
	p(" launch lag p99 / max |\n|---|--:|%s--:|\n", strings.Repeat("--:|", len(ms)))
	for _, x := range rows {
		p("| %s | %d |", x.Stack, x.Calls)
		for _, m := range ms {
			p(" %s |", cell(m, x, load))
		}
		p(" %s / %s |\n", fmtDur(x.LaunchLagP99), fmtDur(x.LaunchLagMax))
	}
	p("\n")
	if d := disturbed(rows, r.Params.Recovery.Bin); len(d) > 0 {
		p("**Disturbed:** the load generator started calls more than %s late in the runs of %s: the machine starved the process, and those rows say more about it than about the stack. Rerun on a quieter machine.\n\n",
			fmtDur(r.Params.Recovery.Bin), strings.Join(d, ", "))
	}

	// Ours against bare and the best peer, figure by figure.
	base, hasBase := find(rows, stacks.Bare)
	var ours []OverloadResult
	for _, x := range rows {
		if isOurs(x.Stack) {
			ours = append(ours, x)
		}
	}
	if len(ours) > 0 {
		p("| figure | bare | best peer |")
		for _, o := range ours {
			p(" %s | × bare | × best peer |", o.Stack)
		}
		p("\n|---|--:|---|%s\n", strings.Repeat("--:|--:|--:|", len(ours)))
		for _, m := range ms {
			bv, bok := m.get(base)
			bareCell := "—"
			if hasBase {
				bareCell = cell(m, base, load)
			}
			peer, pv, pok := bestPeer(rows, m)
			peerCell := "—"
			if pok {
				peerCell = peer.Stack + " " + m.show(pv)
			}
			p("| %s | %s | %s |", m.name, bareCell, peerCell)
			for _, o := range ours {
				p(" %s | %s | %s |", cell(m, o, load), ratioCell(m, o, bv, hasBase && bok), ratioCell(m, o, pv, pok))
			}
			p("\n")
		}
		p("\n")
	}

	r.seriesMarkdown(w, sc, rows)
}

// seriesMarkdown writes the per-second series of a scenario and the fine
// series of success around the trouble's end.
func (r *OverloadReport) seriesMarkdown(w io.Writer, sc string, rows []OverloadResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	bin := r.Params.Recovery.Bin
	perSecond := max(1, int(time.Second/bin))
	x0 := rows[0]
	seconds := int((x0.LoadEnd + time.Second - 1) / time.Second)
	type series struct {
		title string
		value func(bs []Bin) string
	}
	successPct := series{"success of the calls started, %", func(bs []Bin) string {
		var started, ok int
		for _, b := range bs {
			started, ok = started+b.Started, ok+b.StartedOK
		}
		if started == 0 {
			return "·"
		}
		return fmt.Sprintf("%.0f", 100*float64(ok)/float64(started))
	}}
	attempts := func(where string) series {
		return series{"attempts/s reaching " + where, func(bs []Bin) string {
			var n int64
			for _, b := range bs {
				n += b.ServerAttempts
			}
			return fmt.Sprintf("%.0f", float64(n)/(time.Duration(len(bs))*bin).Seconds())
		}}
	}
	var all []series
	switch sc {
	case Spike, CapacityDrop:
		capacity := x0.Capacity
		all = []series{{"goodput, × full capacity", func(bs []Bin) string {
			var n int
			for _, b := range bs {
				n += b.EndedOK
			}
			return fmt.Sprintf("%.2f", float64(n)/(time.Duration(len(bs))*bin).Seconds()/capacity)
		}}}
	case OutageEnds:
		all = []series{attempts("the server"), successPct}
	case LongRestart:
		all = []series{successPct}
	case Chain:
		all = []series{attempts("L"), successPct}
	}
	trouble := fmt.Sprintf("the trouble from %.1f s to %.1f s", x0.TroubleStart.Seconds(), x0.TroubleEnd.Seconds())
	for _, s := range all {
		p("Per second (%s): %s\n\n| stack |", trouble, s.title)
		for i := range seconds {
			p(" %d |", i)
		}
		p("\n|---|%s\n", strings.Repeat("--:|", seconds))
		for _, x := range rows {
			p("| %s |", x.Stack)
			for i := range seconds {
				p(" %s |", s.value(x.Bins[min(len(x.Bins), i*perSecond):min(len(x.Bins), (i+1)*perSecond)]))
			}
			p("\n")
		}
		p("\n")
	}

	n := len(x0.Around)
	p("Per %s around the trouble's end (0 = the end): success of the calls started, %%\n\n| stack |", fmtDur(bin))
	for i := range n {
		p(" %+d |", (time.Duration(i)*bin - r.Params.Around).Milliseconds())
	}
	p("\n|---|%s\n", strings.Repeat("--:|", n))
	for _, x := range rows {
		p("| %s |", x.Stack)
		for _, v := range x.Around {
			if v < 0 {
				p(" · |")
			} else {
				p(" %.0f |", 100*v)
			}
		}
		p("\n")
	}
	p("\n")
}

// target is one figure issue 21 asks of ours.
type target struct {
	what string
	// check returns the figure as shown and whether it meets the target;
	// ok false when the scenario did not run.
	check func(r *OverloadReport, ours string) (shown string, met, ok bool)
}

// figure returns a check of one metric of one scenario against a bound.
func figure(sc string, m metric, meets func(v float64, reached bool) bool) func(*OverloadReport, string) (string, bool, bool) {
	return func(r *OverloadReport, ours string) (string, bool, bool) {
		rows := r.Of(sc)
		x, ok := find(rows, ours)
		if !ok {
			return "", false, false
		}
		v, reached := m.get(x)
		return cell(m, x, afterPhase(x)), meets(v, reached), true
	}
}

// against returns a check of one metric of one scenario against another
// stack's in the same run.
func against(sc string, m metric, other string) func(*OverloadReport, string) (string, bool, bool) {
	return func(r *OverloadReport, ours string) (string, bool, bool) {
		rows := r.Of(sc)
		x, ok := find(rows, ours)
		y, oky := find(rows, other)
		if !ok || !oky {
			return "", false, false
		}
		v, _ := m.get(x)
		u, _ := m.get(y)
		return fmt.Sprintf("%s vs %s", m.show(v), m.show(u)), v >= u, true
	}
}

func atLeast(bound float64) func(float64, bool) bool {
	return func(v float64, reached bool) bool { return reached && v >= bound }
}

func atMost(bound float64) func(float64, bool) bool {
	return func(v float64, reached bool) bool { return reached && v <= bound }
}

const ms100 = float64(100 * time.Millisecond)

// issue21 are the figures issue 21 asks of ours.
var issue21 = []target{
	{"spike: goodput during ≥ 0.95", figure(Spike, mGoodputDuring, atLeast(0.95))},
	{"spike: goodput during ≥ failsafe-limiter's", against(Spike, mGoodputDuring, stacks.FailsafeLimiter)},
	{"drop: goodput during ≥ 0.95 of the reduced capacity", figure(CapacityDrop, mGoodputDuring, atLeast(0.95))},
	{"spike: back to ≥ 95 % within 100 ms", figure(Spike, mRecovery, atMost(ms100))},
	{"drop: back to ≥ 95 % within 100 ms", figure(CapacityDrop, mRecovery, atMost(ms100))},
	{"spike: work for callers gone ≤ 1 %", figure(Spike, mWasted, atMost(0.01))},
	{"drop: work for callers gone ≤ 1 %", figure(CapacityDrop, mWasted, atMost(0.01))},
	{"outage: ≤ 10 attempts/s per client while failing", figure(OutageEnds, mDeadAttempts, atMost(10))},
	{"outage: first success ≤ 100 ms after it heals", figure(OutageEnds, mFirst, atMost(ms100))},
	{"restart: success ≥ bare's", against(LongRestart, mSuccess, stacks.Bare)},
	{"restart: no failed call whose deadline fell after the server was back", figure(LongRestart, mFailedBack, atMost(0))},
	{"chain: ≤ 1.2 attempts at the leaf per call while it fails", figure(Chain, mLeafAttempts, atMost(1.2))},
	{"chain: first success ≤ 100 ms after the leaf heals", figure(Chain, mFirst, atMost(ms100))},
}

func (r *OverloadReport) targetsMarkdown(w io.Writer) {
	var ours []string
	for _, s := range r.Stacks {
		if isOurs(s.Name) {
			ours = append(ours, s.Name)
		}
	}
	if len(ours) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Against the targets of issue 21\n\n| target |")
	for _, o := range ours {
		p(" %s |", o)
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(ours)))
	for _, t := range issue21 {
		line := fmt.Sprintf("| %s |", t.what)
		ran := false
		for _, o := range ours {
			shown, met, ok := t.check(r, o)
			switch {
			case !ok:
				line += " not run |"
			case met:
				line += " " + shown + ": met |"
				ran = true
			default:
				line += " " + shown + ": **not met** |"
				ran = true
			}
		}
		if ran {
			p("%s\n", line)
		}
	}
	p("\n")
}
