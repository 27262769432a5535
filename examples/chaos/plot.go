package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/grpc-resilience/resilience/breaker"
)

// timeline is the run over time, as -plot draws it: each progress line's
// figures (what ended in each second, per client) and the resilient
// client's breaker transitions.
type timeline struct {
	names []string // of the clients, set before the run

	mu          sync.Mutex
	samples     []sample
	transitions []transition
}

// sample is what the clients did from the previous sample (or the start)
// until to, one totals per client in the clients' order, and the 99th
// percentile of the latency of the calls the server answered then, in
// milliseconds (-1: none).
type sample struct {
	to      time.Duration
	clients []totals
	p99     []float64
}

type transition struct {
	at time.Duration
	to breaker.State
}

// maxTransitions bounds the memory a flapping breaker can take.
const maxTransitions = 100_000

func (t *timeline) add(to time.Duration, clients []totals, p99 []float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samples = append(t.samples, sample{to, clients, p99})
}

func (t *timeline) transition(at time.Duration, to breaker.State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.transitions) < maxTransitions {
		t.transitions = append(t.transitions, transition{at, to})
	}
}

// validatePlot checks the -plot file name: its directory must exist and
// its extension says the format.
func validatePlot(name string) error {
	if name == "" {
		return nil
	}
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".svg", ".png":
	default:
		return fmt.Errorf("-plot: %q: the file name must end in .svg or .png, got %q", name, ext)
	}
	dir := filepath.Dir(name)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("-plot: %q: its directory: %w", name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("-plot: %q: %s is not a directory", name, dir)
	}
	return nil
}

var (
	plainColor     = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	resilientColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	staleColor     = color.RGBA{R: 0xae, G: 0xc7, B: 0xe8, A: 0xff}
	scheduleColor  = color.Gray{Y: 0x80}
	// The server's work for callers who had gone, per client.
	plainLateColor     = color.RGBA{R: 0xff, G: 0x98, B: 0x96, A: 0xff}
	resilientLateColor = color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff}
	// The resilient client's refusals, by reason.
	breakerColor = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	limiterColor = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	phaseShade   = color.Gray{Y: 0xf0}
	downShade    = color.RGBA{R: 0xfc, G: 0xdc, B: 0xd8, A: 0xff}
)

// plotFont is the font of the picture: Liberation Sans, metrically
// compatible with Arial and Helvetica, which the SVG names as fallbacks
// (svgFamily), so that a viewer without Liberation draws the text at the
// measured widths. The layout leaves room for wider sans-serif fonts too
// (DejaVu Sans); TestPlotTextFitsTheCanvas measures with the font the
// machine has.
var plotFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// svgFamily is what the SVG names instead of the bare "Liberation Sans".
const svgFamily = "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"

// writePlot draws the run of r into the file name, SVG or PNG by its
// extension: five panels over the same time axis (calls answered; attempts
// at the server and its work for callers who had gone, on a log scale; the
// latency of answers, on a log scale; the resilient client's refusals by
// reason; its breaker), the phases shaded and named, and the legends in
// three columns below the panels.
func writePlot(name string, r *results) (err error) {
	plot.DefaultFont = plotFont
	tl := r.timeline
	if tl == nil || len(r.Phases) == 0 {
		return errors.New("-plot: nothing recorded to draw")
	}
	tl.mu.Lock()
	samples, transitions := tl.samples, tl.transitions
	tl.mu.Unlock()
	names := tl.names
	end := r.Phases[len(r.Phases)-1].EndS
	if n := len(samples); n > 0 {
		end = max(end, samples[n-1].to.Seconds())
	}
	down, _ := time.ParseDuration(r.Config.Down)
	restartAt := r.Phases[len(r.Phases)-1].StartS

	// Per client and sample: the x of the sample (the middle of its
	// interval) and its figures.
	series := make([][]point, len(names))
	from := 0.0
	for _, s := range samples {
		to := s.to.Seconds()
		for i := range names {
			if i < len(s.clients) && i < len(s.p99) {
				series[i] = append(series[i], point{from, to, s.clients[i], s.p99[i]})
			}
		}
		from = to
	}
	// xy is the steps of f over client i's samples: each sample's value
	// held over its interval; samples without a value are left out.
	xy := func(i int, f func(point) (float64, bool)) plotter.XYs {
		return slices.Concat(runs(series[i], f)...)
	}
	share := func(part func(totals) int64) func(point) (float64, bool) {
		return func(p point) (float64, bool) {
			if p.t.calls == 0 {
				return 0, false
			}
			return 100 * float64(part(p.t)) / float64(p.t.calls), true
		}
	}

	newPanel := func(ylabel string, ymin, ymax float64) *plot.Plot {
		p := plot.New()
		p.X.Min, p.X.Max = 0, end
		p.Y.Min, p.Y.Max = ymin, ymax
		p.Y.Label.Text = ylabel
		p.Y.Label.TextStyle.Font.Size = vg.Points(10)
		p.Y.Tick.Label.Font.Size = vg.Points(9)
		p.X.Tick.Label.Font.Size = vg.Points(9)
		p.X.Tick.Marker = secondsTicks{}
		// Phases: alternate shading, and the time the server was stopped.
		for i, ph := range r.Phases {
			if i%2 == 1 {
				p.Add(band(ph.StartS, ph.EndS, ymin, ymax, phaseShade))
			}
		}
		if down > 0 {
			p.Add(band(restartAt, restartAt+down.Seconds(), ymin, ymax, downShade))
		}
		p.Add(plotter.NewGrid())
		return p
	}
	line := func(p *plot.Plot, pts plotter.XYs, c color.Color, width float64, dashed bool) *plotter.Line {
		l, err := plotter.NewLine(pts)
		if err != nil {
			l, _ = plotter.NewLine(plotter.XYs{})
		}
		l.Color = c
		l.Width = vg.Points(width)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		return l
	}

	var legends []*plot.Legend // pointers: a legend gets entries after the next is made
	newLegend := func() *plot.Legend {
		l := new(plot.NewLegend())
		legends = append(legends, l)
		l.Top, l.Left = true, true
		l.TextStyle.Font.Size = vg.Points(9)
		l.ThumbnailWidth = vg.Points(18)
		return l
	}

	// 1. Calls answered, of those that ended in each second.
	answered := newPanel("calls answered (%)", 0, 118)
	answered.Title.Text = fmt.Sprintf("chaos demo: %d phases × %gs, %g calls/s per client, seed %d",
		len(r.Phases), r.Phases[0].EndS-r.Phases[0].StartS, r.Config.Rate, r.Config.Seed)
	answered.Title.TextStyle.Font.Size = vg.Points(11)
	l1 := newLegend()
	var phaseLabels plotter.XYLabels
	for _, ph := range r.Phases {
		phaseLabels.XYs = append(phaseLabels.XYs, plotter.XY{X: (ph.StartS + ph.EndS) / 2, Y: 104})
		phaseLabels.Labels = append(phaseLabels.Labels, ph.Name)
	}
	if labels, err := plotter.NewLabels(phaseLabels); err == nil {
		for i := range labels.TextStyle {
			labels.TextStyle[i].XAlign = draw.XCenter
			labels.TextStyle[i].Font = font.From(plotFont, 10)
		}
		answered.Add(labels)
	}
	// The resilient client's lines are drawn first and wider, so that
	// where both clients have the same value both lines show; the legends
	// list the clients in their order.
	type entry struct {
		name  string
		thumb plot.Thumbnailer
	}
	entries := make([][]entry, len(names))
	var serverLine func() // drawn last, dashed over the plain client's line
	for _, i := range resilientFirst(names) {
		n := names[i]
		ok := xy(i, share(func(t totals) int64 { return t.ok }))
		if n != "resilient" {
			entries[i] = append(entries[i], entry{n + ": answered", line(answered, ok, colorOf(n), lineWidth(n), false)})
			continue
		}
		// The resilient client's answers: from the server, and above
		// them, up to all its answers, those from stale copies.
		fromServer := xy(i, share(func(t totals) int64 { return t.ok - t.stale }))
		poly := between(fromServer, ok)
		if poly != nil {
			poly.Color = staleColor
			poly.LineStyle.Width = 0
			answered.Add(poly)
		}
		entries[i] = append(entries[i], entry{n + ": answered", line(answered, ok, colorOf(n), lineWidth(n), false)})
		idx := i
		serverLine = func() {
			// Over the plain client's line, dashed: where both are at 0
			// (the outage), the plain one shows between the dashes.
			entries[idx] = append(entries[idx], entry{n + ": answered by the server", line(answered, fromServer, resilientColor, 1.5, true)})
			if poly != nil {
				entries[idx] = append(entries[idx], entry{n + ": answered from a stale copy", poly})
			}
		}
	}
	if serverLine != nil {
		serverLine()
	}
	for _, es := range entries {
		for _, e := range es {
			l1.Add(e.name, e.thumb)
		}
	}

	// 2. Attempts that reached the server, per second, on a log scale
	// of attempts + 1: the outage's probes show, and so does 0; with
	// them, the calls scheduled, and the attempts the server served
	// after their caller had gone (the overload phase).
	perSecond := func(f func(totals) int64) func(point) (float64, bool) {
		return func(p point) (float64, bool) {
			if p.to-p.from < 0.05 { // the final sliver after the schedule
				return 0, false
			}
			return float64(f(p.t)) / (p.to - p.from), true
		}
	}
	plus1 := func(f func(point) (float64, bool)) func(point) (float64, bool) {
		return func(p point) (float64, bool) {
			y, ok := f(p)
			return y + 1, ok
		}
	}
	rates := make([]plotter.XYs, len(names))
	lates := make([]plotter.XYs, len(names))
	maxAttempts := 0.0
	var scheduled plotter.XYs
	for _, seg := range r.Schedule {
		scheduled = append(scheduled, plotter.XY{X: seg.FromS, Y: seg.Rate + 1}, plotter.XY{X: seg.ToS, Y: seg.Rate + 1})
		maxAttempts = max(maxAttempts, seg.Rate+1)
	}
	for i := range names {
		rates[i] = xy(i, plus1(perSecond(func(t totals) int64 { return t.attempts })))
		lates[i] = xy(i, plus1(perSecond(func(t totals) int64 { return t.late })))
		for _, p := range rates[i] {
			maxAttempts = max(maxAttempts, p.Y)
		}
	}
	attempts := newPanel("attempts at the server (/s)", 1, 2*maxAttempts)
	attempts.Y.Scale = plot.LogScale{}
	attempts.Y.Tick.Marker = shiftedLogTicks{}
	l2 := newLegend()
	l2.Add("calls scheduled, per client", line(attempts, scheduled, scheduleColor, 1.5, true))
	rateLines := make([]*plotter.Line, len(names))
	lateLines := make([]*plotter.Line, len(names))
	for _, i := range resilientFirst(names) {
		rateLines[i] = line(attempts, rates[i], colorOf(names[i]), lineWidth(names[i]), false)
	}
	for _, i := range resilientFirst(names) {
		lateLines[i] = line(attempts, lates[i], lateColorOf(names[i]), 1.5, true)
	}
	for i, l := range rateLines {
		l2.Add(names[i]+": attempts", l)
	}
	for i, l := range lateLines {
		l2.Add(names[i]+": served after the caller left", l)
	}

	// 3. The latency of the calls the server answered: each second's
	// 99th percentile, on a log scale; no line where the server answered
	// nothing.
	latency := newPanel("p99 of answers (ms)", 0.5, 3000)
	latency.Y.Scale = plot.LogScale{}
	latency.Y.Tick.Marker = msTicks{}
	latencyLines := make([]*plotter.Line, len(names))
	for _, i := range resilientFirst(names) {
		for _, run := range runs(series[i], func(p point) (float64, bool) { return p.p99, p.p99 >= 0 }) {
			l := line(latency, run, colorOf(names[i]), lineWidth(names[i]), false)
			if latencyLines[i] == nil {
				latencyLines[i] = l
			}
		}
	}
	for i, l := range latencyLines {
		if l != nil {
			l1.Add(names[i]+": p99 of answers by the server", l)
		}
	}

	// 4. The resilient client's calls refused before any attempt, per
	// second, by reason.
	var byBreaker, byLimiter plotter.XYs
	maxRefused := 10.0
	for i, n := range names {
		if n == "resilient" {
			byBreaker = xy(i, perSecond(func(t totals) int64 { return t.refusedBreaker }))
			byLimiter = xy(i, perSecond(func(t totals) int64 { return t.refusedLimiter }))
		}
	}
	for _, p := range append(slices.Clone(byBreaker), byLimiter...) {
		maxRefused = max(maxRefused, 1.15*p.Y)
	}
	refused := newPanel("refused, resilient (/s)", 0, maxRefused)
	l3 := newLegend()
	l3.Add("resilient: refused by the breaker", line(refused, byBreaker, breakerColor, 2, false))
	l3.Add("resilient: refused by the limiter", line(refused, byLimiter, limiterColor, 2, false))

	// 5. The resilient client's breaker, from its transitions.
	state := newPanel("breaker (resilient)", -0.3, 2.3)
	state.Y.Tick.Marker = plot.ConstantTicks{
		{Value: float64(stateLevel(breaker.StateClosed)), Label: "closed"},
		{Value: float64(stateLevel(breaker.StateHalfOpen)), Label: "half-open"},
		{Value: float64(stateLevel(breaker.StateOpen)), Label: "open"},
	}
	state.X.Label.Text = "seconds since the start (each second: the calls that ended in it, the attempts that reached the server in it)"
	state.X.Label.TextStyle.Font.Size = vg.Points(10)
	steps := plotter.XYs{{X: 0, Y: float64(stateLevel(breaker.StateClosed))}}
	for _, tr := range transitions {
		x := tr.at.Seconds()
		steps = append(steps, plotter.XY{X: x, Y: steps[len(steps)-1].Y}, plotter.XY{X: x, Y: float64(stateLevel(tr.to))})
	}
	steps = append(steps, plotter.XY{X: end, Y: steps[len(steps)-1].Y})
	l3.Add("resilient: breaker state", line(state, steps, resilientColor, 2, false))
	l3.Add("server stopped (restart phase)", band(0, 0, 0, 0, downShade))

	// Five panels over the whole width, the legends below them in three
	// columns (a column is wider than its longest entry in any common
	// sans-serif font): answers and their latency; attempts; refusals and
	// the breaker.
	const width, height = 11 * vg.Inch, 13 * vg.Inch
	const legendHeight = 1.25 * vg.Inch
	ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(name)), ".")
	c, err := draw.NewFormattedCanvas(width, height, ext)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	dc := draw.New(c)
	plots := [][]*plot.Plot{{answered}, {attempts}, {latency}, {refused}, {state}}
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(4),
		PadLeft: vg.Points(8), PadRight: vg.Points(16), PadY: vg.Points(12)}
	canvases := plot.Align(plots, tiles, draw.Crop(dc, 0, 0, legendHeight, 0))
	for i, row := range plots {
		row[0].Draw(canvases[i][0])
	}
	const margin = 0.5 * vg.Inch
	colWidth := (width - 2*margin) / vg.Length(len(legends))
	for i := range legends {
		lc := draw.Crop(dc, margin+vg.Length(i)*colWidth, 0, 0, 0)
		lc.Max.X = lc.Min.X + colWidth - vg.Points(8)
		lc.Max.Y = legendHeight - vg.Points(6)
		legends[i].Draw(lc)
	}
	var out bytes.Buffer
	if _, err := c.WriteTo(&out); err != nil {
		return fmt.Errorf("-plot: drawing %s: %w", name, err)
	}
	data := out.Bytes()
	if ext == "svg" {
		data = bytes.ReplaceAll(data, []byte("font-family:Liberation Sans;"), []byte(svgFamily))
	}

	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("-plot: %w", cerr)
		}
		if err != nil {
			os.Remove(name)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("-plot: writing %s: %w", name, err)
	}
	return nil
}

// point is a sample of one client: its interval, its figures and the p99
// of the latency of the calls the server answered in it (-1: none).
type point struct {
	from, to float64
	t        totals
	p99      float64
}

// runs returns the steps of f over points, each point's value held over
// its interval, split where f has no value, so that a line shows nothing
// where there is nothing to show.
func runs(points []point, f func(point) (float64, bool)) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for _, p := range points {
		y, ok := f(p)
		if !ok {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, plotter.XY{X: p.from, Y: y}, plotter.XY{X: p.to, Y: y})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// msTicks marks a log scale of milliseconds: 1 ms, 10 ms, 100 ms, 1 s, …
// (major, labelled) and 2…9 × each (minor).
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for p := 1.0; p <= hi; p *= 10 {
		label := fmt.Sprintf("%gms", p)
		if p >= 1000 {
			label = fmt.Sprintf("%gs", p/1000)
		}
		if p >= lo {
			ts = append(ts, plot.Tick{Value: p, Label: label})
		}
		for k := 2.0; k <= 9; k++ {
			if v := k * p; v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v})
			}
		}
	}
	return ts
}

// shiftedLogTicks marks a log scale of v + 1 with the values v: 0, 1, 10,
// 100, … (major, labelled) and 2…9 × each power of ten (minor).
type shiftedLogTicks struct{}

func (shiftedLogTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	ts = append(ts, plot.Tick{Value: 1, Label: "0"})
	for p := 1.0; p+1 <= hi; p *= 10 {
		ts = append(ts, plot.Tick{Value: p + 1, Label: fmt.Sprintf("%g", p)})
		for k := 2.0; k <= 9; k++ {
			if v := k*p + 1; v <= hi {
				ts = append(ts, plot.Tick{Value: v})
			}
		}
	}
	return ts
}

// resilientFirst returns the indexes of names, the resilient client's
// first: it is drawn first, under the plain one's narrower lines.
func resilientFirst(names []string) []int {
	var idx []int
	for i, n := range names {
		if n == "resilient" {
			idx = append([]int{i}, idx...)
		} else {
			idx = append(idx, i)
		}
	}
	return idx
}

func lineWidth(client string) float64 {
	if client == "resilient" {
		return 3.5
	}
	return 1.5
}

func colorOf(client string) color.Color {
	if client == "plain" {
		return plainColor
	}
	return resilientColor
}

// lateColorOf is the colour of the client's late work: its own, lighter.
func lateColorOf(client string) color.Color {
	if client == "plain" {
		return plainLateColor
	}
	return resilientLateColor
}

// stateLevel places a breaker state on the breaker panel's y axis.
func stateLevel(s breaker.State) int {
	switch s {
	case breaker.StateOpen:
		return 2
	case breaker.StateHalfOpen:
		return 1
	default:
		return 0
	}
}

// band is a filled rectangle from x0 to x1, y0 to y1, without an outline.
func band(x0, x1, y0, y1 float64, c color.Color) *plotter.Polygon {
	p, _ := plotter.NewPolygon(plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	p.Color = c
	p.LineStyle.Width = 0
	return p
}

// between is the area between the lines lo and hi, which have the same x
// values; nil when there is none.
func between(lo, hi plotter.XYs) *plotter.Polygon {
	if len(lo) == 0 || len(lo) != len(hi) {
		return nil
	}
	ring := append(plotter.XYs{}, lo...)
	for i := len(hi) - 1; i >= 0; i-- {
		ring = append(ring, hi[i])
	}
	p, err := plotter.NewPolygon(ring)
	if err != nil {
		return nil
	}
	return p
}

// secondsTicks marks every 5 s (labelled every 10 s) on short runs, and
// falls back to the default ticks on long ones.
type secondsTicks struct{}

func (secondsTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi-lo > 300 {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	step := 5.0
	if hi-lo <= 20 {
		step = 1
	}
	var ts []plot.Tick
	for v := 0.0; v <= hi+1e-9; v += step {
		t := plot.Tick{Value: v}
		if step == 1 || int(v)%10 == 0 {
			t.Label = fmt.Sprintf("%gs", v)
		}
		ts = append(ts, t)
	}
	return ts
}
