package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// results are the figures of a run.
type results struct {
	Config      jsonConfig `json:"config"`
	Phases      []phase    `json:"phases"`
	Schedule    []segment  `json:"schedule"`
	Rows        []row      `json:"results"`
	Interrupted bool       `json:"interrupted,omitempty"`

	timeline *timeline // for -plot
}

// jsonConfig is the config as -json prints it, durations as strings.
type jsonConfig struct {
	Duration    string  `json:"duration"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	Timeout     string  `json:"timeout"`
	Noise       float64 `json:"noise"`
	Tail        float64 `json:"tail"`
	TailLatency string  `json:"tail_latency"`
	Down        string  `json:"down"`
	Workers     int     `json:"workers"`
	Service     string  `json:"service"`
	Queue       int     `json:"queue"`
	Spike       float64 `json:"spike"`
	Hedge       string  `json:"hedge"`
	HedgeAt     float64 `json:"hedge_percentile"`
	Keys        int     `json:"keys"`
	StaleCopies bool    `json:"stale_copies"`
	Seed        uint64  `json:"seed"`
}

type phase struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	StartS      float64 `json:"start_s"`
	EndS        float64 `json:"end_s"`
}

// segment is a stretch of the timeline at one rate of calls per second,
// per client.
type segment struct {
	FromS float64 `json:"from_s"`
	ToS   float64 `json:"to_s"`
	Rate  float64 `json:"rate"`
}

// row is one client's figures for one phase, or for the whole run (phase
// "all").
type row struct {
	Phase  string `json:"phase"`
	Client string `json:"client"`
	// Calls scheduled in the phase; the same for both clients.
	Calls int64 `json:"calls"`
	// OK is the calls that were answered: by the server, or (the
	// resilient client) by the fallback from a stale copy.
	OK int64 `json:"ok"`
	// Server is the calls among OK the server answered.
	Server int64 `json:"by_server"`
	// Stale is the calls among OK the fallback answered from a stale copy.
	Stale int64 `json:"stale"`
	// Attempts is the attempts that reached the server in the phase.
	Attempts int64 `json:"attempts"`
	// RefusedBreaker and RefusedLimiter are the calls refused before any
	// attempt, without touching the network, by the open breaker and by
	// the concurrency limiter (at once, or after waiting in its queue as
	// long as the deadline allowed).
	RefusedBreaker int64 `json:"refused_by_breaker"`
	RefusedLimiter int64 `json:"refused_by_limiter"`
	// LateWork is the attempts the server served, in the phase, after
	// their caller had gone; measured only where the server has a finite
	// capacity (the overload phase, and the outage after it, when the
	// server works off what is left of its queue), nil elsewhere.
	LateWork *int64 `json:"late_work,omitempty"`
	// P50MS and P99MS are latency percentiles of the calls the server
	// answered, from their scheduled time, in milliseconds (0: none).
	P50MS float64 `json:"server_p50_ms"`
	P99MS float64 `json:"server_p99_ms"`
}

func (d *demo) results(clients []*client, interrupted bool) *results {
	c := d.cfg
	r := &results{
		Config: jsonConfig{
			Duration: c.Duration.String(), Rate: c.Rate, Concurrency: c.Concurrency, Timeout: c.Timeout.String(),
			Noise: c.Noise, Tail: c.Tail, TailLatency: c.TailLatency.String(), Down: c.Down.String(),
			Workers: c.Workers, Service: c.Service.String(), Queue: c.Queue, Spike: c.Spike,
			Hedge: c.Hedge.String(), HedgeAt: c.HedgePercentile, Keys: c.Keys, StaleCopies: c.Stale, Seed: c.Seed,
		},
		Interrupted: interrupted,
		timeline:    &d.timeline,
	}
	for p := range numPhases {
		r.Phases = append(r.Phases, phase{
			Name: phaseNames[p], Description: d.phaseDescription(p),
			StartS: (time.Duration(p) * d.phaseDur).Seconds(), EndS: (time.Duration(p+1) * d.phaseDur).Seconds(),
		})
	}
	from, to := d.spike()
	r.Schedule = []segment{
		{0, from.Seconds(), c.Rate},
		{from.Seconds(), to.Seconds(), d.spikeRate()},
		{to.Seconds(), (time.Duration(numPhases) * d.phaseDur).Seconds(), c.Rate},
	}
	all := make([]row, len(clients))
	allLat := make([][]time.Duration, len(clients))
	for p := range numPhases {
		for i, cl := range clients {
			ps := &cl.phases[p]
			ps.mu.Lock()
			lat := slices.Clone(ps.latencies)
			ps.mu.Unlock()
			x := row{
				Phase: phaseNames[p], Client: cl.name,
				Calls: ps.calls.Load(), OK: ps.ok.Load(), Stale: ps.stale.Load(), Attempts: ps.attempts.Load(),
				RefusedBreaker: ps.refusedBreaker.Load(), RefusedLimiter: ps.refusedLimiter.Load(),
			}
			if x.Calls == 0 && x.Attempts == 0 {
				continue // not reached (interrupted)
			}
			if d.hasCapacity(p) {
				late := ps.late.Load()
				x.LateWork = &late
				if all[i].LateWork == nil {
					all[i].LateWork = new(int64)
				}
				*all[i].LateWork += late
			}
			x.Server = x.OK - x.Stale
			x.P50MS, x.P99MS = quantileMS(lat, 0.50), quantileMS(lat, 0.99)
			r.Rows = append(r.Rows, x)
			all[i].Calls += x.Calls
			all[i].OK += x.OK
			all[i].Stale += x.Stale
			all[i].Attempts += x.Attempts
			all[i].RefusedBreaker += x.RefusedBreaker
			all[i].RefusedLimiter += x.RefusedLimiter
			allLat[i] = append(allLat[i], lat...)
		}
	}
	for i, cl := range clients {
		all[i].Phase, all[i].Client = "all", cl.name
		all[i].Server = all[i].OK - all[i].Stale
		all[i].P50MS, all[i].P99MS = quantileMS(allLat[i], 0.50), quantileMS(allLat[i], 0.99)
		r.Rows = append(r.Rows, all[i])
	}
	return r
}

// quantileMS returns the q-quantile (nearest rank) of d in milliseconds.
func quantileMS(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	v := d[min(max(i, 0), len(d)-1)]
	return float64(v.Microseconds()) / 1000
}

func writeJSON(w io.Writer, r *results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeTable(w io.Writer, r *results) error {
	fmt.Fprintln(w)
	if r.Interrupted {
		fmt.Fprintln(w, "(interrupted: the last phase is partial)")
	}
	t := table{
		right: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true},
		rows: [][]string{{"phase", "client", "calls", "by server", "server %", "stale", "answered %",
			"attempts", "refused: breaker", "limiter", "late work", "p50", "p99"}},
	}
	prev := ""
	for _, x := range r.Rows {
		if x.Phase == "all" && prev != "all" {
			t.rows = append(t.rows, nil)
		}
		name := x.Phase
		if name == prev {
			name = ""
		}
		prev = x.Phase
		// The plain client has no breaker, no limiter and no fallback.
		breakerRefused, limiterRefused, stale := "-", "-", "-"
		if x.Client != "plain" {
			breakerRefused = strconv.FormatInt(x.RefusedBreaker, 10)
			limiterRefused = strconv.FormatInt(x.RefusedLimiter, 10)
			stale = strconv.FormatInt(x.Stale, 10)
		}
		late := "-" // not measured: no capacity limit
		if x.LateWork != nil {
			late = strconv.FormatInt(*x.LateWork, 10)
		}
		p50, p99 := "-", "-"
		if x.Server > 0 {
			p50, p99 = formatMS(x.P50MS), formatMS(x.P99MS)
		}
		t.rows = append(t.rows, []string{name, x.Client, strconv.FormatInt(x.Calls, 10),
			strconv.FormatInt(x.Server, 10), percentOf(x.Server, x.Calls), stale, percentOf(x.OK, x.Calls),
			strconv.FormatInt(x.Attempts, 10), breakerRefused, limiterRefused, late, p50, p99})
	}
	t.write(w)
	_, err := fmt.Fprintln(w, strings.TrimSpace(`
by server: calls the server answered; stale: calls the resilient client's fallback answered from the
  newest earlier reply to the same request (never silently: counted here); answered %: both together;
attempts: attempts that reached the server (the resilient client's retries and hedges included);
refused: calls refused before any attempt, without touching the network, by the open breaker, or
  by the concurrency limiter (at once, or after waiting in its queue as long as the deadline
  allowed); calls that waited for a connection or a probe slot are not counted; a stale copy may
  answer either;
late work: attempts the server at capacity (from the overload phase until the restart) served after
  their caller had gone;
p50, p99: latency of the calls the server answered, from their scheduled time.`))
	return err
}

// table prints rows in aligned columns; a nil row is a blank line.
type table struct {
	rows  [][]string
	right []bool // per column: align right
}

func (t table) write(w io.Writer) {
	var widths []int
	for _, r := range t.rows {
		for i, cell := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, cell := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i < len(t.right) && t.right[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// percentOf is a as a percentage of b, "-" when b is 0.
func percentOf(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func formatMS(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
