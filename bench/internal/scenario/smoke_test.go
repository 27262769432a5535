package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSmoke runs every scenario for every stack very briefly and checks
// that each stack ran and every number is well-formed (see Check). It
// asserts nothing about which stack is better.
func TestSmoke(t *testing.T) {
	o := Options{Params: SmokeParams(), Policy: stacks.DefaultPolicy(), Stacks: stacks.All()}
	r, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range Check(r, o) {
		t.Error(e)
	}

	// Ours has a retry budget and a breaker: in an outage it must send
	// fewer than MaxAttempts attempts per call to the server. (Token
	// counting makes this hold whatever the timing: the budget stops
	// retries after MaxTokens/2 failed attempts.)
	for _, l := range r.Outage {
		if l.Stack == stacks.Ours || l.Stack == stacks.OursOtel {
			if limit := int64(o.Policy.MaxAttempts) * int64(l.Calls); l.ServerAttempts >= limit {
				t.Errorf("outage %s: %d attempts reached the server for %d calls, want fewer than %d", l.Stack, l.ServerAttempts, l.Calls, limit)
			}
		}
	}

	var md bytes.Buffer
	r.Markdown(&md)
	for _, section := range []string{"## Happy path", "## Transient failures", "## Full outage", "## Slow tail", "## Server restart"} {
		i := strings.Index(md.String(), section)
		if i < 0 {
			t.Errorf("Markdown has no %q section", section)
			continue
		}
		body := md.String()[i:]
		for _, st := range o.Stacks {
			if !strings.Contains(body, "| "+st.Name+" |") {
				t.Errorf("section %q has no row for %s", section, st.Name)
			}
		}
	}
	if strings.Contains(md.String(), "NaN") || strings.Contains(md.String(), "Inf") {
		t.Errorf("Markdown holds a NaN or Inf:\n%s", md.String())
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

// TestEveryRetryingStackMakesMaxAttempts checks the fairness the tables
// rest on: given the same Policy, one call against a server in outage
// reaches it exactly MaxAttempts times through every retrying stack (with
// full budgets and closed breakers), and once through the bare client.
func TestEveryRetryingStackMakesMaxAttempts(t *testing.T) {
	p := stacks.DefaultPolicy()
	p.PerAttemptTimeout = 5 * time.Second // never fires here
	srv, err := faultserver.Start(faultserver.Bufconn)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, st := range stacks.All() {
		t.Run(st.Name, func(t *testing.T) {
			c, err := dial(srv, st, p, true)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			req := newRequest()
			if err := c.warmup(1, req); err != nil {
				t.Fatal(err)
			}
			srv.SetFaults(OutageFaults)
			defer srv.SetFaults(faultserver.Faults{})
			client0, server0 := c.attempts.load(), srv.Hits()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = c.call(ctx, req)
			if got := status.Code(err); got != codes.Unavailable {
				t.Fatalf("call in outage: %v (code %v), want Unavailable", err, got)
			}
			want := int64(p.MaxAttempts)
			if st.Name == stacks.Bare {
				want = 1
			}
			if got := srv.Hits() - server0; got != want {
				t.Errorf("server saw %d attempts, want %d", got, want)
			}
			if got := c.attempts.load() - client0; got != want {
				t.Errorf("client started %d attempts, want %d", got, want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 1000)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		if got := percentile(ds, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}
