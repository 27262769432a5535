package monitoring

import (
	"encoding/json"
	"strings"
)

// Panel is one dashboard panel: a time series of PromQL queries.
type Panel struct {
	Title   string
	Unit    string // Grafana unit: "reqps", "percentunit", "s", "none"
	Queries []Query
}

// Query is one PromQL query of a panel, with its legend.
type Query struct {
	Expr   string
	Legend string
}

// Panels returns the dashboard's panels for the naming p selects. Apart
// from latency, the breaker state, the limiter and throttle gauges and the
// refusals by reason, they read the recorded series of [RecordingRules],
// so the rules must be loaded.
func Panels(p RuleParams) []Panel {
	n := p.withDefaults().naming()
	legend := "{{job}} → {{" + LabelServerAddress + "}}:{{" + LabelServerPort + "}}"
	callDur, attemptDur := CallDuration, AttemptDuration
	if p.GRPCNames {
		legend = "{{job}} → {{" + LabelGRPCTarget + "}}"
		callDur, attemptDur = GRPCCallDuration, GRPCAttemptDuration
	}
	quantile := func(q, hist string, matchers ...string) string {
		sel := hist + "_bucket"
		if len(matchers) > 0 {
			sel += "{" + strings.Join(matchers, ",") + "}"
		}
		return "histogram_quantile(" + q + ", sum by (le, job, " + n.by + ") (rate(" + sel + "[$__rate_interval])))"
	}
	// The limiter and throttle gauges are per target, not per call.
	gaugeLegend := "{{job}} → {{" + n.gaugeBy + "}}"
	return []Panel{
		{Title: "Calls and attempts per second", Unit: "reqps", Queries: []Query{
			{RecordCalls, "calls " + legend},
			{RecordAttempts, "attempts " + legend},
		}},
		{Title: "Retries per attempt, and baseline", Unit: "percentunit", Queries: []Query{
			{RecordRetryRatio, "now " + legend},
			{RecordRetryBaseline, "baseline " + legend},
		}},
		{Title: "Attempts failing with Unavailable, and baseline", Unit: "percentunit", Queries: []Query{
			{RecordUnavailableRatio, "now " + legend},
			{RecordUnavailBaseline, "baseline " + legend},
		}},
		{Title: "Circuit breaker state (0 closed, 1 half-open, 2 open)", Unit: "none", Queries: []Query{
			{"max by (job, instance, " + LabelBreakerKey + ") (" + BreakerState + ")", "{{instance}} {{" + LabelBreakerKey + "}}"},
		}},
		{Title: "Refused by breaker or retry budget, per second", Unit: "reqps", Queries: []Query{
			{RecordBreakerRejections, "breaker " + legend},
			{RecordBudgetThrottled, "budget " + legend},
		}},
		{Title: "Call and attempt latency, p99", Unit: "s", Queries: []Query{
			{quantile("0.99", callDur), "call " + legend},
			{quantile("0.99", attemptDur), "attempt " + legend},
		}},
		{Title: "Concurrency limit, attempts in flight and queued", Unit: "none", Queries: []Query{
			{"sum by (job, " + n.gaugeBy + ") (" + LimiterLimit + ")", "limit " + gaugeLegend},
			{"sum by (job, " + n.gaugeBy + ") (" + LimiterInFlight + ")", "in flight " + gaugeLegend},
			{"sum by (job, " + n.gaugeBy + ") (" + LimiterQueued + ")", "queued " + gaugeLegend},
		}},
		{Title: "Wait for a concurrency limit permit, p99 (admitted attempts)", Unit: "s", Queries: []Query{
			{quantile("0.99", LimiterQueueWait, LabelAdmitted+`="true"`), legend},
		}},
		{Title: "Refused by the client itself, per second, by reason", Unit: "reqps", Queries: []Query{
			{"sum by (job, " + n.by + ", " + LabelRefusal + ") (rate(" + Refusals + "[$__rate_interval]))", "{{" + LabelRefusal + "}} " + legend},
		}},
		{Title: "Share of attempts refused by the client, and throttle probability", Unit: "percentunit", Queries: []Query{
			{RecordRefusedRatio, "refused " + legend},
			{"max by (job, " + n.gaugeBy + ") (" + ThrottleProbability + ")", "throttle " + gaugeLegend},
		}},
	}
}

// Dashboard renders the Grafana dashboard JSON for the naming p selects.
// It takes its Prometheus data source from a variable.
func Dashboard(p RuleParams) []byte {
	title, uid := "gRPC client resilience", "grpc-resilience"
	if p.GRPCNames {
		title, uid = "gRPC client resilience (gRPC metric names)", "grpc-resilience-grpc"
	}
	ds := map[string]any{"type": "prometheus", "uid": "${datasource}"}
	var panels []any
	for i, pl := range Panels(p) {
		var targets []any
		for j, q := range pl.Queries {
			targets = append(targets, map[string]any{
				"datasource":   ds,
				"expr":         q.Expr,
				"legendFormat": q.Legend,
				"refId":        string(rune('A' + j)),
			})
		}
		panels = append(panels, map[string]any{
			"id":          i + 1,
			"type":        "timeseries",
			"title":       pl.Title,
			"datasource":  ds,
			"gridPos":     map[string]any{"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": pl.Unit}, "overrides": []any{}},
			"targets":     targets,
		})
	}
	d := map[string]any{
		"title":         title,
		"uid":           uid,
		"schemaVersion": 39,
		"editable":      true,
		"time":          map[string]any{"from": "now-6h", "to": "now"},
		"refresh":       "30s",
		"tags":          []string{"grpc", "resilience"},
		"templating": map[string]any{"list": []any{map[string]any{
			"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
		}}},
		"panels": panels,
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return append(out, '\n')
}
