// Command chaos is the project's demo: it drives the same traffic through a
// plain gRPC client and through the resilience interceptors, side by side,
// while an in-process EchoService goes through a scripted fault timeline,
// and compares the two clients phase by phase.
//
//	go -C examples run ./chaos                      # 5 phases × 8 s
//	go -C examples run ./chaos -duration 15s -json  # shorter, JSON results
//	go -C examples run ./chaos -plot chaos.svg      # and a picture of the run
//
// It needs no flags and no services. The timeline (the -duration is split
// evenly over the five phases):
//
//	noise     a fraction of attempts (-noise, 30 %) fail with Unavailable
//	slow      a fraction of attempts (-tail, 5 %) take -tail-latency (100 ms) longer
//	overload  the server has a finite capacity: -workers (4) attempts at
//	          once, -service (20 ms) each, so 200/s, and a FIFO queue of
//	          -queue (500) more, beyond which it answers Unavailable; it
//	          serves queued attempts even when their caller has gone. From
//	          a quarter to half of the phase the load is -spike (2) times
//	          its capacity, 400 calls/s, instead of -rate
//	outage    every attempt fails with Unavailable: the server is up but broken
//	restart   the server is stopped for -down (a fifth of the phase), then
//	          serves again on the same TCP port
//
// # Two clients, two servers, one schedule
//
// Each client talks to a server of its own (a grpc.Server with
// resiliencetest.Faults, on a resiliencetest.Listener on loopback TCP), and
// both servers follow the same script with the same seed, switched at the
// same instants. Separate servers keep the comparison clean: every attempt
// a server sees comes from its client, counted exactly by the server
// itself, and one client's retries can neither use up the other's fault
// draws nor slow the other's server down (in the overload phase each
// server has the capacity in full). One shared server would need every
// attempt to be tagged with its client, for example through metadata, and
// would couple the two.
//
// Both clients get the same open-loop schedule: -rate calls per second
// (the spike's rate during the spike), the same calls at the same instants
// for both, whatever the previous calls are doing, with at most
// -concurrency calls in flight per client (a call that finds them all busy
// waits for a slot; the default, 1000, is more than the schedule ever
// needs). Every call has a deadline of -timeout from its scheduled time,
// and its latency is measured from that time, so time spent queued counts,
// as it would for a user. The two clients therefore make exactly the same
// calls in every phase, and their figures compare directly.
//
// The plain client is grpc.NewClient with insecure credentials and
// grpc.WithDisableRetry (grpc-go's defaults otherwise). The resilient one
// adds interceptors.New(...).DialOptions() with the library's defaults
// (the breaker's fast recovery schedule, the adaptive concurrency limit
// and every other) and one opt-in per-method policy, which the demo prints
// at start: Echo is answered from a stale copy when the server cannot
// (-stale). Hedging, off by default in the library, is off here too;
// -hedge 25ms turns it on for Echo (with -hedge-percentile, at that
// percentile of its observed latency), for the slow phase's tail, and
// shows what hedges cost a server at capacity.
//
// An attempt is counted for the phase in which it reached the server, a
// call for the phase in which it was scheduled, the server's work for
// callers who had gone for the phase in which the work ended.
//
// # The picture
//
// With -plot (a file name ending in .svg or .png, in a directory that
// exists) the demo draws the run at the end, per second and for both
// clients, from the figures of the progress lines: the share of the calls
// ending in that second that were answered (the resilient client's split
// into answers from the server and from stale copies); the attempts that
// reached the server, beside the calls scheduled and the attempts the
// server served after their caller had gone; the 99th percentile latency
// of the answers from the server; the resilient client's calls refused by
// its breaker and by its concurrency limiter; and its breaker state, from
// its transitions. The phases are shaded and named, and the time the
// server was stopped in the restart phase is marked.
//
// # Telemetry
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set (for example
// http://127.0.0.1:4317), traces and metrics are exported over OTLP/gRPC
// (the exporters read the other OTEL_EXPORTER_OTLP_* and OTEL_TRACES_SAMPLER
// variables too): service chaos-client has a root span per call, "chaos
// plain" or "chaos resilient", with the interceptors' call and attempt
// spans, or otelgrpc's client spans, under it; service chaos-server has the
// servers' spans. Without the variable nothing is exported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage was printed, as asked
		}
		log.Fatal(err)
	}
}

// config holds the demo's settings, one flag each.
type config struct {
	Duration        time.Duration
	Rate            float64
	Concurrency     int
	Timeout         time.Duration
	Noise           float64
	Tail            float64
	TailLatency     time.Duration
	Down            time.Duration
	Workers         int
	Service         time.Duration
	Queue           int
	Spike           float64
	Hedge           time.Duration
	HedgePercentile float64
	Keys            int
	Stale           bool
	Seed            uint64
	JSON            bool
	Plot            string
	otlpEndpoint    string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", 40*time.Second, "whole run, split evenly over the 5 phases")
	fs.Float64Var(&c.Rate, "rate", 100, "calls per second, per client (but during the overload phase's spike)")
	fs.IntVar(&c.Concurrency, "concurrency", 1000, "most calls in flight per client")
	fs.DurationVar(&c.Timeout, "timeout", time.Second, "deadline of each call, from its scheduled time")
	fs.Float64Var(&c.Noise, "noise", 0.3, "fraction of attempts failing with Unavailable in the noise phase")
	fs.Float64Var(&c.Tail, "tail", 0.05, "fraction of attempts delayed in the slow phase")
	fs.DurationVar(&c.TailLatency, "tail-latency", 100*time.Millisecond, "delay of the slow attempts")
	fs.DurationVar(&c.Down, "down", 0, "how long the server is stopped in the restart phase (0: a fifth of the phase)")
	fs.IntVar(&c.Workers, "workers", 4, "overload phase: attempts the server serves at once")
	fs.DurationVar(&c.Service, "service", 20*time.Millisecond, "overload phase: time the server takes per attempt")
	fs.IntVar(&c.Queue, "queue", 500, "overload phase: attempts the server queues for a worker (FIFO; one more is answered Unavailable)")
	fs.Float64Var(&c.Spike, "spike", 2, "overload phase: load during the spike, times the server's capacity (workers/service)")
	fs.DurationVar(&c.Hedge, "hedge", 0, "hedge Echo in the resilient client after this delay, e.g. 25ms (0: no hedging, the library default)")
	fs.Float64Var(&c.HedgePercentile, "hedge-percentile", 0, "with -hedge, hedge Echo at this percentile of its observed latency, e.g. 0.95, after -hedge until enough are seen (0: always after -hedge)")
	fs.IntVar(&c.Keys, "keys", 50, "distinct requests the clients make (call i asks for item i mod keys)")
	fs.BoolVar(&c.Stale, "stale", true, "the resilient client answers Echo from a stale copy when the server cannot (fallback)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the servers' fault draws")
	fs.BoolVar(&c.JSON, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	fs.StringVar(&c.Plot, "plot", "", "draw the run per second into this file, .svg or .png (its directory must exist)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.otlpEndpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if c.Down == 0 {
		c.Down = c.phaseDuration() / 5
	}
	return c, c.validate()
}

func (c config) phaseDuration() time.Duration { return c.Duration / time.Duration(len(phaseNames)) }

// capacity is the attempts per second the server completes in the
// overload phase while it is busy.
func (c config) capacity() float64 { return float64(c.Workers) / c.Service.Seconds() }

func (c config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-"+name+": "+format, args...))
	}
	if c.Duration < 400*time.Millisecond {
		bad("duration", "must be at least 400ms, got %v", c.Duration)
	}
	if !(c.Rate > 0 && c.Rate <= 100000) {
		bad("rate", "must be in (0, 100000], got %v", c.Rate)
	}
	if c.Concurrency < 1 {
		bad("concurrency", "must be at least 1, got %d", c.Concurrency)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be > 0, got %v", c.Timeout)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"noise", c.Noise}, {"tail", c.Tail}} {
		if !(f.v >= 0 && f.v <= 1) {
			bad(f.name, "must be in [0, 1], got %v", f.v)
		}
	}
	if c.TailLatency < 0 {
		bad("tail-latency", "must be >= 0, got %v", c.TailLatency)
	}
	if c.Down < 0 || (c.Duration > 0 && c.Down >= c.phaseDuration()) {
		bad("down", "must be >= 0 and shorter than a phase (%v), got %v", c.phaseDuration(), c.Down)
	}
	if c.Workers < 1 {
		bad("workers", "must be at least 1, got %d", c.Workers)
	}
	if c.Service <= 0 {
		bad("service", "must be > 0, got %v", c.Service)
	}
	if c.Queue < 0 {
		bad("queue", "must be >= 0, got %d", c.Queue)
	}
	if !(c.Spike > 0 && c.Spike <= 100) {
		bad("spike", "must be in (0, 100], got %v", c.Spike)
	}
	if c.Workers >= 1 && c.Service > 0 && c.Spike > 0 && c.capacity()*c.Spike > 100000 {
		bad("spike", "the spike's load, %v x %.0f/s, must be at most 100000/s", c.Spike, c.capacity())
	}
	if c.Hedge < 0 {
		bad("hedge", "must be >= 0, got %v", c.Hedge)
	}
	if !(c.HedgePercentile >= 0 && c.HedgePercentile < 1) {
		bad("hedge-percentile", "must be in [0, 1), got %v", c.HedgePercentile)
	}
	if c.Keys < 1 {
		bad("keys", "must be at least 1, got %d", c.Keys)
	}
	if err := validatePlot(c.Plot); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// run runs the demo with the command line args: progress goes to stdout, or
// to stderr with -json; the results go to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	progress := stdout
	if cfg.JSON {
		progress = stderr
	}
	res, err := runDemo(ctx, cfg, progress)
	if err != nil {
		return err
	}
	if cfg.Plot != "" {
		if err := writePlot(cfg.Plot, res); err != nil {
			return err
		}
		fmt.Fprintf(progress, "plot: %s\n", cfg.Plot)
	}
	if cfg.JSON {
		return writeJSON(stdout, res)
	}
	return writeTable(stdout, res)
}
