package monitoring

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the shipped files from the generators")

func shipped() map[string][]byte {
	grpc := DefaultRuleParams()
	grpc.GRPCNames = true
	return map[string][]byte{
		"resilience.rules.yml":      Rules(DefaultRuleParams()),
		"resilience-grpc.rules.yml": Rules(grpc),
		"dashboard.json":            Dashboard(DefaultRuleParams()),
		"dashboard-grpc.json":       Dashboard(grpc),
	}
}

func TestShippedFilesAreGenerated(t *testing.T) {
	for name, want := range shipped() {
		if *update {
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the package generates: run go test ./monitoring -update", name)
		}
	}
}

func TestPrometheusNames(t *testing.T) {
	// The names as the OpenTelemetry Prometheus exporter writes them;
	// examples/prometheus checks them against the exporter itself.
	for got, want := range map[string]string{
		Attempts:            "resilience_client_attempts_total",
		Retries:             "resilience_client_retries_total",
		CallDuration:        "resilience_client_call_duration_seconds",
		BreakerState:        "resilience_client_breaker_state",
		BudgetThrottled:     "resilience_client_budget_throttled_total",
		GRPCAttemptStarted:  "grpc_client_attempt_started_total",
		GRPCCallRetries:     "grpc_client_call_retries",
		GRPCCallRetryDelay:  "grpc_client_call_retry_delay_seconds",
		GRPCAttemptDuration: "grpc_client_attempt_duration_seconds",
		Refusals:            "resilience_client_refusals_total",
		LimiterQueueWait:    "resilience_client_limiter_queue_wait_seconds",
		LimiterLimit:        "resilience_client_limiter_limit",
		LimiterInFlight:     "resilience_client_limiter_in_flight",
		LimiterQueued:       "resilience_client_limiter_queued",
		ThrottleProbability: "resilience_client_throttle_probability_ratio",
	} {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
}

var (
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// Parts of a query that hold no metric name: strings, label
	// matchers, ranges, grouping clauses, Grafana variables.
	noNames = regexp.MustCompile(`"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|\$\w+|\boffset\s+\w+`)
)

var promqlWords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}

// metricNames returns the metric names a PromQL expression reads: the
// identifiers that are not functions, keywords or label names.
func metricNames(expr string) []string {
	expr = noNames.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range identifier.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " ")
		if strings.HasPrefix(rest, "(") || slices.Contains(promqlWords, name) {
			continue // a function or an aggregation
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // the exponent or suffix of a number
		}
		out = append(out, name)
	}
	return out
}

// known are the names a query may read: the metrics (histograms by their
// series) and the recorded series.
func known() map[string]bool {
	k := map[string]bool{}
	for _, m := range Metrics {
		k[m] = true
	}
	for _, h := range Histograms {
		k[h+"_bucket"], k[h+"_sum"], k[h+"_count"] = true, true, true
		delete(k, h)
	}
	for _, grpc := range []bool{false, true} {
		for _, r := range RecordingRules(RuleParams{GRPCNames: grpc}) {
			k[r.Record] = true
		}
	}
	return k
}

func TestMetricNamesOfAQuery(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x="y"}[$__rate_interval]))) > 1e3 unless b:c offset 1h / 2 * d`)
	if want := []string{"a_bucket", "b:c", "d"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
}

func TestDashboardsReadOnlyKnownNames(t *testing.T) {
	k := known()
	for _, file := range []string{"dashboard.json", "dashboard-grpc.json"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		queries := 0
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				queries++
				names := metricNames(tg.Expr)
				if len(names) == 0 {
					t.Errorf("%s: panel %q: query %q reads no metric", file, p.Title, tg.Expr)
				}
				for _, n := range names {
					if !k[n] {
						t.Errorf("%s: panel %q reads %q, which is neither a metric nor a recorded series", file, p.Title, n)
					}
				}
			}
		}
		if queries < 10 {
			t.Errorf("%s has %d queries, want the whole dashboard", file, queries)
		}
	}
}

func TestRulesReadOnlyKnownNames(t *testing.T) {
	k := known()
	for _, grpc := range []bool{false, true} {
		p := RuleParams{GRPCNames: grpc}
		for _, r := range append(RecordingRules(p), AlertingRules(p)...) {
			for _, n := range metricNames(r.Expr) {
				if !k[n] {
					t.Errorf("rule %s%s (grpc names %v) reads unknown %q", r.Record, r.Alert, grpc, n)
				}
			}
		}
	}
}

// The overload gates are on both dashboards: the limiter and throttle
// gauges, the queue wait, the refusals by reason and the share the alert
// reads, each on the target label of its naming.
func TestOverloadIsOnTheDashboards(t *testing.T) {
	for _, grpc := range []bool{false, true} {
		p := RuleParams{GRPCNames: grpc}
		target := LabelTarget
		if grpc {
			target = LabelGRPCTarget
		}
		read := map[string]string{} // metric or recorded series -> its query
		for _, pl := range Panels(p) {
			for _, q := range pl.Queries {
				for _, n := range metricNames(q.Expr) {
					read[n] = q.Expr
				}
			}
		}
		for _, gauge := range []string{LimiterLimit, LimiterInFlight, LimiterQueued, ThrottleProbability} {
			if q, ok := read[gauge]; !ok || !strings.Contains(q, "by (job, "+target+")") {
				t.Errorf("grpc names %v: the dashboard reads %s as %q, want it by job and %s", grpc, gauge, q, target)
			}
		}
		for _, name := range []string{Refusals, LimiterQueueWait + "_bucket", RecordRefusedRatio} {
			if _, ok := read[name]; !ok {
				t.Errorf("grpc names %v: no panel reads %s", grpc, name)
			}
		}
		if q := read[Refusals]; !strings.Contains(q, LabelRefusal) {
			t.Errorf("grpc names %v: refusals read as %q, want them by %s", grpc, q, LabelRefusal)
		}
		var alert *Rule
		for _, r := range AlertingRules(p) {
			if r.Alert == AlertShedding {
				alert = &r
			}
		}
		if alert == nil || !slices.Contains(metricNames(alert.Expr), RecordRefusedRatio) {
			t.Errorf("grpc names %v: %s = %+v, want it on %s", grpc, AlertShedding, alert, RecordRefusedRatio)
		}
	}
}
