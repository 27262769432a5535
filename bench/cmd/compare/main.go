package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/grpc-resilience/resilience/bench/internal/scenario"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "short run (about half a minute) instead of the full one")
	asJSON := flag.Bool("json", false, "print the results as JSON instead of Markdown")
	stackList := flag.String("stacks", "", "comma-separated stacks to run (default all): "+stacks.Names(stacks.All()))
	scenarioList := flag.String("scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(scenario.AllScenarios, ","))
	quiet := flag.Bool("q", false, "no progress on standard error")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	sts, err := stacks.Select(*stackList)
	if err != nil {
		return err
	}
	o := scenario.Options{
		Params: scenario.FullParams(),
		Policy: stacks.DefaultPolicy(),
		Stacks: sts,
	}
	if *quick {
		o.Params = scenario.QuickParams()
	}
	if o.Scenarios, err = scenario.Select(*scenarioList, scenario.AllScenarios); err != nil {
		return err
	}
	if !*quiet {
		o.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := scenario.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		r.Markdown(os.Stdout)
	}
	return scenario.CheckFailed(os.Stderr, scenario.Check(r, o))
}
