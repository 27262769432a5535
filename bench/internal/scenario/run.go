package scenario

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// Scenario names, in run order.
const (
	Happy     = "happy"
	Transient = "transient"
	Outage    = "outage"
	Slow      = "slow"
	Restart   = "restart"
)

// AllScenarios lists every scenario in run order.
var AllScenarios = []string{Happy, Transient, Outage, Slow, Restart}

// Options configures Run.
type Options struct {
	Params Params
	Policy stacks.Policy
	// Stacks to compare; the first should be bare, the base of the ratios.
	Stacks []stacks.Stack
	// Scenarios to run; empty runs all.
	Scenarios []string
	// Progress, if not nil, is told what runs.
	Progress io.Writer
}

func (o Options) progress(format string, args ...any) { progress(o.Progress, format, args...) }

func (o Options) wants(name string) bool { return wants(o.Scenarios, name) }

// progress tells w, if not nil, what runs.
func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// Select returns the scenarios named in a comma-separated list, each of
// which must be in all; an empty list selects all (nil).
func Select(list string, all []string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(all, s) {
			return nil, fmt.Errorf("unknown scenario %q (want one of %s)", s, strings.Join(all, ","))
		}
		out = append(out, s)
	}
	return out, nil
}

// CheckFailed writes the failed sanity checks to w, one a line, and
// returns an error counting them, or nil if there are none.
func CheckFailed(w io.Writer, errs []error) error {
	for _, e := range errs {
		fmt.Fprintln(w, "check:", e)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d sanity checks failed", len(errs))
	}
	return nil
}

// wants reports whether a selection of scenarios (empty: all) has name.
func wants(selected []string, name string) bool {
	return len(selected) == 0 || slices.Contains(selected, name)
}

// Report is everything one run measured, with the environment it ran in.
type Report struct {
	Env       Env             `json:"env"`
	Params    Params          `json:"params"`
	Stacks    []StackInfo     `json:"stacks"`
	Happy     []HappyResult   `json:"happy,omitempty"`
	Transient []LoadResult    `json:"transient,omitempty"`
	Outage    []LoadResult    `json:"outage,omitempty"`
	Slow      []LoadResult    `json:"slow,omitempty"`
	Restart   []RestartResult `json:"restart,omitempty"`
	Elapsed   time.Duration   `json:"elapsed_ns"`
}

// StackInfo says how a stack was configured.
type StackInfo struct {
	Name   string `json:"name"`
	Config string `json:"config"`
}

// Env describes the machine and the versions.
type Env struct {
	Date       string            `json:"date"`
	Go         string            `json:"go"`
	OS         string            `json:"os"`
	Arch       string            `json:"arch"`
	CPU        string            `json:"cpu"`
	NumCPU     int               `json:"num_cpu"`
	GOMAXPROCS int               `json:"gomaxprocs"`
	Modules    map[string]string `json:"modules"`
	// LoadAvg is /proc/loadavg's 1-minute load at the start and the end
	// of the run: other work on the machine skews the timings.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

// Modules whose versions the report names.
var reportedModules = []string{
	"google.golang.org/grpc",
	"github.com/grpc-ecosystem/go-grpc-middleware/v2",
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc",
	"go.opentelemetry.io/otel/sdk",
	"github.com/failsafe-go/failsafe-go",
	"github.com/grpc-resilience/resilience",
}

// CurrentEnv describes this process's machine and build.
func CurrentEnv() Env {
	e := Env{
		Date:         time.Now().UTC().Format("2006-01-02"),
		Go:           runtime.Version(),
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		CPU:          cpuModel(),
		NumCPU:       runtime.NumCPU(),
		GOMAXPROCS:   runtime.GOMAXPROCS(0),
		Modules:      map[string]string{},
		LoadAvgStart: loadAvg(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if r := d.Replace; r != nil {
				v = "=> " + r.Path
				if r.Version != "" && r.Version != "(devel)" {
					v += " " + r.Version
				} else if strings.HasPrefix(r.Path, ".") {
					v += " (the working tree)"
				}
			}
			e.Modules[d.Path] = v
		}
	}
	return e
}

// loadAvg returns the 1-minute load average, or "" where unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// Run runs the selected scenarios against every stack, one at a time, in
// this process.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	r := &Report{Env: CurrentEnv(), Params: o.Params}
	for _, st := range o.Stacks {
		r.Stacks = append(r.Stacks, StackInfo{Name: st.Name, Config: st.Config(o.Policy)})
	}
	var err error
	if o.wants(Happy) {
		if r.Happy, err = runHappy(ctx, o); err != nil {
			return nil, err
		}
	}
	loads := []struct {
		name string
		lp   LoadParams
		out  *[]LoadResult
	}{
		{Transient, o.Params.Transient, &r.Transient},
		{Outage, o.Params.Outage, &r.Outage},
		{Slow, o.Params.Slow, &r.Slow},
	}
	for _, l := range loads {
		if !o.wants(l.name) {
			continue
		}
		for _, st := range o.Stacks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			o.progress("%s %s", l.name, st.Name)
			res, err := LoadOnce(st, o.Policy, l.lp, o.Params.CallTimeout, o.Params.Warmup)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.name, err)
			}
			*l.out = append(*l.out, res)
		}
	}
	if o.wants(Restart) {
		for _, st := range o.Stacks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			o.progress("%s %s", Restart, st.Name)
			res, err := RestartOnce(st, o.Policy, o.Params.Restart, o.Params.CallTimeout, o.Params.Warmup)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", Restart, err)
			}
			r.Restart = append(r.Restart, res)
		}
	}
	r.Elapsed = time.Since(start)
	r.Env.LoadAvgEnd = loadAvg()
	return r, nil
}
