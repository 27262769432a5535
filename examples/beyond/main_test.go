package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickRun runs every scenario briefly and checks the properties that
// do not depend on how fast this machine is.
func TestQuickRun(t *testing.T) {
	results, err := measure(true)
	if err != nil {
		t.Fatal(err)
	}
	get := func(scenario, client string) Result {
		for _, r := range results {
			if r.Scenario == scenario && r.Client == client {
				return r
			}
		}
		t.Fatalf("no result for %s/%s", scenario, client)
		return Result{}
	}
	if r := get("restart", "resilience"); r.Failed != 0 || r.FirstSuccessAfter < 0 {
		t.Errorf("restart: resilient client failed %d calls (first success after %v), want 0", r.Failed, r.FirstSuccessAfter)
	}
	if r := get("restart", "plain"); r.Failed == 0 {
		t.Errorf("restart: the plain client failed no call; the scenario does not exercise the restart")
	}
	if r := get("outage", "3 attempts + budget"); r.AttemptsPerCall > 1.1 {
		t.Errorf("outage: %.3f attempts per call with the budget, want <= 1.1", r.AttemptsPerCall)
	}
	if r := get("outage", "3 attempts, no budget"); r.AttemptsPerCall != 3 {
		t.Errorf("outage: %.3f attempts per call without the budget, want 3", r.AttemptsPerCall)
	}
	if r := get("outage", "defaults: budget + breaker"); r.AttemptsPerCall >= get("outage", "3 attempts + budget").AttemptsPerCall {
		t.Errorf("outage: %.3f attempts per call with the breaker, want fewer than with the budget alone", r.AttemptsPerCall)
	}
	if r := get("hedging", "hedged"); r.Failed != 0 || r.AttemptsPerCall > 1.25 {
		t.Errorf("hedging: %d failed, %.3f attempts per call; want 0 and a few hedges", r.Failed, r.AttemptsPerCall)
	}
}
