package scenario

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// TestOverloadSmoke runs every overload scenario for every stack against
// a slow server for a fraction of a second each, and checks that the
// harness works end to end: every (scenario, stack) ran, the invariants of
// CheckOverload hold (counts add up, the capacity-limited server never ran
// more than its workers at once, no stack's goodput beyond what the server
// could complete, nothing succeeded while the server failed or was down),
// and the report renders every section and row, without NaN, and
// marshals. It asserts nothing about which stack is better.
func TestOverloadSmoke(t *testing.T) {
	o := OverloadOptions{Params: SmokeOverloadParams(), Policy: stacks.OverloadPolicy(), Stacks: stacks.Overload()}
	r, err := RunOverload(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range CheckOverload(r, o) {
		t.Error(e)
	}
	for _, x := range r.Of(Spike) {
		if x.Work.Completed == 0 || x.Work.MaxBusy < 1 {
			t.Errorf("spike %s: the capacity-limited server did no work: %+v", x.Stack, x.Work)
		}
	}

	var md bytes.Buffer
	r.Markdown(&md)
	out := md.String()
	for _, section := range []string{"## Spike", "## Capacity drop", "## An outage that ends", "## A restart", "## A chain of services"} {
		i := strings.Index(out, section)
		if i < 0 {
			t.Errorf("Markdown has no %q section", section)
			continue
		}
		body := out[i:]
		if j := strings.Index(body[3:], "\n## "); j >= 0 {
			body = body[:j+3]
		}
		for _, st := range o.Stacks {
			if !strings.Contains(body, "| "+st.Name+" |") {
				t.Errorf("section %q has no row for %s", section, st.Name)
			}
		}
	}
	targets := out[strings.Index(out, "## Against the targets of issue 21"):]
	for _, tg := range issue21 {
		if !strings.Contains(targets, "| "+tg.what+" |") {
			t.Errorf("the targets have no row %q", tg.what)
		}
	}
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("Markdown holds a NaN or Inf:\n%s", out)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("JSON: %v", err)
	}
}
