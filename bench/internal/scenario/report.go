package scenario

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// Markdown writes the report as Markdown tables, with ratios to the bare
// client (the stack named "bare", or else the first one).
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	r.Env.markdown(w, r.Elapsed)

	p("## Stacks\n\n| stack | configuration |\n|---|---|\n")
	for _, s := range r.Stacks {
		p("| %s | %s |\n", s.Name, escape(s.Config))
	}
	p("\n")

	if len(r.Happy) > 0 {
		p("## Happy path\n\nns/op, B/op and allocs/op of one unary call (32-byte payload each way) with a caller deadline. B/op and allocs/op count the whole process, the in-process server included, as `testing.B` does; the server's share is the same for every stack.\n\n")
		for _, tr := range HappyTransports {
			for _, mode := range []string{Sequential, Parallel} {
				var rows []HappyResult
				for _, h := range r.Happy {
					if h.Transport == string(tr) && h.Mode == mode {
						rows = append(rows, h)
					}
				}
				if len(rows) == 0 {
					continue
				}
				g := "1 goroutine"
				if rows[0].Goroutines != 1 {
					g = fmt.Sprintf("%d goroutines", rows[0].Goroutines)
				}
				p("### %s, %s (%s, median of %d rounds)\n\n", tr, mode, g, rows[0].Rounds)
				p("| stack | ns/op | × bare | B/op | × bare | allocs/op | × bare |\n|---|--:|--:|--:|--:|--:|--:|\n")
				base := baseOf(rows, func(h HappyResult) string { return h.Stack })
				for _, h := range rows {
					p("| %s | %.0f | %s | %.0f | %s | %.1f | %s |\n", h.Stack,
						h.NsPerOp, ratio(h.NsPerOp, base.NsPerOp),
						h.BytesPerOp, ratio(h.BytesPerOp, base.BytesPerOp),
						h.AllocsPerOp, ratio(h.AllocsPerOp, base.AllocsPerOp))
				}
				p("\n")
			}
		}
	}

	deadline := fmtDur(r.Params.CallTimeout)
	if len(r.Transient) > 0 {
		lp := r.Params.Transient
		p("## Transient failures\n\n%.0f %% of attempts fail with Unavailable; %s, each call with a %s deadline, loopback TCP. Attempts are counted by the client (stats.Begin per attempt).\n\n",
			lp.Faults.FailFraction*100, loadDesc(lp), deadline)
		p("| stack | success | attempts/call | p50 | × bare | p99 | × bare |\n|---|--:|--:|--:|--:|--:|--:|\n")
		base := baseOf(r.Transient, func(l LoadResult) string { return l.Stack })
		for _, l := range r.Transient {
			p("| %s | %s | %.2f | %s | %s | %s | %s |\n", l.Stack, pct(l.SuccessRate), l.AttemptsPerCall,
				fmtDur(l.P50), ratioDur(l.P50, base.P50), fmtDur(l.P99), ratioDur(l.P99, base.P99))
		}
		p("\n")
	}
	if len(r.Outage) > 0 {
		lp := r.Params.Outage
		p("## Full outage\n\nThe server is up but every attempt fails with Unavailable; %s, each call with a %s deadline, loopback TCP. Attempts/call below 1 means calls refused by a breaker before reaching the network.\n\n",
			loadDesc(lp), deadline)
		p("| stack | success | attempts/call | attempts/s at the server | × bare | failed call p50 | failed call p99 |\n|---|--:|--:|--:|--:|--:|--:|\n")
		base := baseOf(r.Outage, func(l LoadResult) string { return l.Stack })
		for _, l := range r.Outage {
			p("| %s | %s | %.2f | %.0f | %s | %s | %s |\n", l.Stack, pct(l.SuccessRate), l.AttemptsPerCall,
				l.ServerAttemptsPerSec, ratio(l.ServerAttemptsPerSec, base.ServerAttemptsPerSec),
				fmtDur(l.FailedP50), fmtDur(l.FailedP99))
		}
		p("\n")
	}
	if len(r.Slow) > 0 {
		lp := r.Params.Slow
		p("## Slow tail\n\n%.0f %% of attempts are delayed by %s before the service handles them; %s, each call with a %s deadline, loopback TCP.\n\n",
			lp.Faults.SlowFraction*100, fmtDur(lp.Faults.SlowDelay), loadDesc(lp), deadline)
		p("| stack | success | attempts/call | p50 | p99 | × bare | p99.9 | × bare |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		base := baseOf(r.Slow, func(l LoadResult) string { return l.Stack })
		for _, l := range r.Slow {
			p("| %s | %s | %.2f | %s | %s | %s | %s | %s |\n", l.Stack, pct(l.SuccessRate), l.AttemptsPerCall,
				fmtDur(l.P50), fmtDur(l.P99), ratioDur(l.P99, base.P99), fmtDur(l.P999), ratioDur(l.P999, base.P999))
		}
		p("\n")
	}
	if len(r.Restart) > 0 {
		rp := r.Params.Restart
		p("## Server restart on the same port\n\n%.0f calls/s, each with a %s deadline; the server runs %s, is stopped hard (listener and connections closed) for %s, and runs again on the same port for %s. \"First success\" is from the new listener accepting to the end of the first successful call.\n\n",
			rp.Rate, deadline, fmtDur(rp.Before), fmtDur(rp.Down), fmtDur(rp.After))
		p("| stack | calls | failed | failed, started while down | failed, started after restart | first success after restart | × bare | attempts/call |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		base := baseOf(r.Restart, func(x RestartResult) string { return x.Stack })
		for _, x := range r.Restart {
			first, rat := "not within "+fmtDur(rp.After), "—"
			if x.Recovered {
				first = fmtDur(x.TimeToFirstSuccess)
				if base.Recovered {
					rat = ratioDur(x.TimeToFirstSuccess, base.TimeToFirstSuccess)
				}
			}
			p("| %s | %d | %d (%s) | %d | %d | %s | %s | %.2f |\n", x.Stack, x.Calls, x.Failed,
				pct(float64(x.Failed)/float64(max(x.Calls, 1))), x.FailedWhenDown, x.FailedAfter, first, rat, x.AttemptsPerCall)
		}
		p("\n")
	}
}

// markdown writes the environment section of a run that took elapsed.
func (e Env) markdown(w io.Writer, elapsed time.Duration) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Environment\n\n")
	p("- date: %s\n", e.Date)
	p("- machine: %s, %d cores (GOMAXPROCS %d), %s/%s\n", e.CPU, e.NumCPU, e.GOMAXPROCS, e.OS, e.Arch)
	p("- Go: %s\n", e.Go)
	for _, m := range reportedModules {
		if v, ok := e.Modules[m]; ok {
			p("- %s %s\n", m, v)
		}
	}
	p("- whole run: %s", elapsed.Round(time.Second))
	if e.LoadAvgStart != "" {
		p("; 1-minute load average %s at the start, %s at the end", e.LoadAvgStart, e.LoadAvgEnd)
	}
	p("\n\n")
}

func loadDesc(lp LoadParams) string {
	return fmt.Sprintf("%.0f calls/s for %s (%d calls)", lp.Rate, fmtDur(lp.Duration), lp.Calls())
}

// baseOf returns the row of the bare stack, or the first row.
func baseOf[T any](rows []T, name func(T) string) T {
	for _, r := range rows {
		if name(r) == stacks.Bare {
			return r
		}
	}
	return rows[0]
}

func ratio(v, base float64) string {
	if base == 0 || math.IsNaN(v) || math.IsNaN(base) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func ratioDur(v, base time.Duration) string { return ratio(float64(v), float64(base)) }

func pct(f float64) string { return fmt.Sprintf("%.1f %%", f*100) }

// fmtDur prints durations compactly: 87µs, 1.25ms, 250ms, 1.5s.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2gs", d.Seconds())
	}
}
