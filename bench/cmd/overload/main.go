package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/grpc-resilience/resilience/bench/internal/scenario"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "overload:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "shorter phases (about two minutes) instead of the full run")
	jsonPath := flag.String("json", "results/overload.json", "where to write the raw results as JSON (empty: nowhere)")
	stackList := flag.String("stacks", "", "comma-separated stacks to run (default all): "+stacks.Names(stacks.Overload()))
	scenarioList := flag.String("scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(scenario.OverloadScenarios, ","))
	seed := flag.Uint64("seed", 0, "seed of the arrival times (0: the default, 1)")
	quiet := flag.Bool("q", false, "no progress on standard error")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	sts, err := stacks.SelectOverload(*stackList)
	if err != nil {
		return err
	}
	o := scenario.OverloadOptions{
		Params: scenario.FullOverloadParams(),
		Policy: stacks.OverloadPolicy(),
		Stacks: sts,
	}
	if *quick {
		o.Params = scenario.QuickOverloadParams()
	}
	if *seed != 0 {
		o.Params.Seed = *seed
	}
	if o.Scenarios, err = scenario.Select(*scenarioList, scenario.OverloadScenarios); err != nil {
		return err
	}
	if !*quiet {
		o.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := scenario.RunOverload(ctx, o)
	if err != nil {
		return err
	}
	r.Markdown(os.Stdout)
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, r); err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintln(os.Stderr, "raw results:", *jsonPath)
		}
	}
	return scenario.CheckFailed(os.Stderr, scenario.CheckOverload(r, o))
}

func writeJSON(path string, r *scenario.OverloadReport) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
