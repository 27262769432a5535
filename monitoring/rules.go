package monitoring

import (
	"bytes"
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RuleParams are the settings of a rule file. Zero fields take the
// defaults of [DefaultRuleParams].
type RuleParams struct {
	// GRPCNames selects the rules for interceptors.MetricNamesGRPC.
	GRPCNames bool
	// Window is the range of the rates (default 5m).
	Window time.Duration
	// BaselineWindow is the range a ratio's baseline averages over
	// (default 1d), ending BaselineOffset ago (default 1h; negative: now).
	BaselineWindow time.Duration
	BaselineOffset time.Duration
	// RatioFloor is the least retry or Unavailable ratio that alerts
	// (default 0.05), BaselineFactor how many times its baseline it must
	// also be (default 2).
	RatioFloor     float64
	BaselineFactor float64
	// RatioFor, BreakerFor and BudgetFor are the alerts' for durations
	// (defaults 10m, 5m, 5m).
	RatioFor   time.Duration
	BreakerFor time.Duration
	BudgetFor  time.Duration
	// ShedRatio is the least share of a target's attempts that the client
	// refuses itself (concurrency limit, throttling) that alerts (default
	// 0.05), for ShedFor (default 5m).
	ShedRatio float64
	ShedFor   time.Duration
}

// DefaultRuleParams returns the settings of the shipped rule files, for
// the default names.
func DefaultRuleParams() RuleParams {
	return RuleParams{
		Window:         5 * time.Minute,
		BaselineWindow: 24 * time.Hour,
		BaselineOffset: time.Hour,
		RatioFloor:     0.05,
		BaselineFactor: 2,
		RatioFor:       10 * time.Minute,
		BreakerFor:     5 * time.Minute,
		BudgetFor:      5 * time.Minute,
		ShedRatio:      0.05,
		ShedFor:        5 * time.Minute,
	}
}

func (p RuleParams) withDefaults() RuleParams {
	d := DefaultRuleParams()
	p.Window = cmp.Or(p.Window, d.Window)
	p.BaselineWindow = cmp.Or(p.BaselineWindow, d.BaselineWindow)
	p.BaselineOffset = cmp.Or(p.BaselineOffset, d.BaselineOffset)
	p.RatioFor = cmp.Or(p.RatioFor, d.RatioFor)
	p.BreakerFor = cmp.Or(p.BreakerFor, d.BreakerFor)
	p.BudgetFor = cmp.Or(p.BudgetFor, d.BudgetFor)
	p.ShedFor = cmp.Or(p.ShedFor, d.ShedFor)
	p.ShedRatio = cmp.Or(p.ShedRatio, d.ShedRatio)
	p.RatioFloor = cmp.Or(p.RatioFloor, d.RatioFloor)
	p.BaselineFactor = cmp.Or(p.BaselineFactor, d.BaselineFactor)
	return p
}

// Recorded series, the same under both namings. Each has the labels job
// and the target's (server_address and server_port, or grpc_target).
const (
	RecordCalls             = "resilience:calls:rate"
	RecordAttempts          = "resilience:attempts:rate"
	RecordUnavailable       = "resilience:attempts_unavailable:rate"
	RecordRetries           = "resilience:retries:rate"
	RecordBreakerRejections = "resilience:breaker_rejections:rate"
	RecordBudgetThrottled   = "resilience:budget_throttled:rate"
	RecordFallbacksServed   = "resilience:fallbacks_served:rate"
	RecordRetryRatio        = "resilience:retry_ratio"
	RecordUnavailableRatio  = "resilience:unavailable_ratio"
	RecordRetryBaseline     = "resilience:retry_ratio:baseline"
	RecordUnavailBaseline   = "resilience:unavailable_ratio:baseline"
	// RecordRefusals is the rate of attempts the client refused itself
	// (limiter and throttle), RecordRefusedRatio their share of the
	// attempts it meant to make: refused / (refused + made).
	RecordRefusals     = "resilience:refusals:rate"
	RecordRefusedRatio = "resilience:refused_ratio"
)

// Alert names.
const (
	AlertRetryRatio     = "ResilienceRetryRatioHigh"
	AlertUnavailable    = "ResilienceUnavailableHigh"
	AlertBreakerOpen    = "ResilienceBreakerOpen"
	AlertBudgetThrottle = "ResilienceRetryBudgetThrottling"
	AlertServingStale   = "ResilienceServingFallbacks"
	AlertShedding       = "ResilienceClientShedding"
)

// Rule is one recording or alerting rule.
type Rule struct {
	Record      string
	Alert       string
	Expr        string
	For         string
	Labels      [][2]string
	Annotations [][2]string
}

// naming is what differs between the two metric namings.
type naming struct {
	by          string // the target's labels
	gaugeBy     string // the target's label on the limiter and throttle gauges
	targetText  string // the target in annotations
	calls       string // counter of calls
	attempts    string // counter of completed attempts
	unavailable string // the same, failed with Unavailable
	retries     string // counter of retries
}

func (p RuleParams) naming() naming {
	if p.GRPCNames {
		return naming{
			by:          LabelGRPCTarget,
			gaugeBy:     LabelGRPCTarget,
			targetText:  "{{ $labels." + LabelGRPCTarget + " }}",
			calls:       GRPCCallDuration + "_count",
			attempts:    GRPCAttemptDuration + "_count",
			unavailable: GRPCAttemptDuration + `_count{` + LabelGRPCStatus + `="UNAVAILABLE"}`,
			retries:     GRPCCallRetries + "_sum",
		}
	}
	return naming{
		by:          LabelServerAddress + ", " + LabelServerPort,
		gaugeBy:     LabelTarget,
		targetText:  "{{ $labels." + LabelServerAddress + " }}:{{ $labels." + LabelServerPort + " }}",
		calls:       CallDuration + "_count",
		attempts:    Attempts,
		unavailable: Attempts + `{` + LabelStatusCode + `="UNAVAILABLE"}`,
		retries:     Retries,
	}
}

// RecordingRules returns the recording rules for p.
func RecordingRules(p RuleParams) []Rule {
	p = p.withDefaults()
	n := p.naming()
	w := promDuration(p.Window)
	sum := func(series string) string {
		return "sum by (job, " + n.by + ") (rate(" + series + "[" + w + "]))"
	}
	// orZero makes a rate of a counter that has no series yet (no retry
	// so far) 0 wherever attempts are made, so that ratios and their
	// baselines do not skip the healthy times.
	orZero := func(series string) string {
		return sum(series) + "\nor\n" + sum(n.attempts) + " * 0"
	}
	baseline := func(ratio string) string {
		e := "avg_over_time(" + ratio + "[" + promDuration(p.BaselineWindow) + "]"
		if p.BaselineOffset > 0 {
			e += " offset " + promDuration(p.BaselineOffset)
		}
		return e + ")"
	}
	return []Rule{
		{Record: RecordCalls, Expr: sum(n.calls)},
		{Record: RecordAttempts, Expr: sum(n.attempts)},
		{Record: RecordUnavailable, Expr: orZero(n.unavailable)},
		{Record: RecordRetries, Expr: orZero(n.retries)},
		{Record: RecordBreakerRejections, Expr: orZero(BreakerRejections)},
		{Record: RecordBudgetThrottled, Expr: orZero(BudgetThrottled)},
		// By job only: the fallback counter carries the method and target
		// attributes of either naming.
		{Record: RecordFallbacksServed, Expr: "sum by (job) (rate(" + Fallbacks + "{" + LabelFallbackResult + `="served"}[` + w + "]))"},
		{Record: RecordRetryRatio, Expr: RecordRetries + " / " + RecordAttempts},
		{Record: RecordUnavailableRatio, Expr: RecordUnavailable + " / " + RecordAttempts},
		{Record: RecordRetryBaseline, Expr: baseline(RecordRetryRatio)},
		{Record: RecordUnavailBaseline, Expr: baseline(RecordUnavailableRatio)},
		// Refused attempts never reach the transport: they are not in
		// the attempts counted above.
		{Record: RecordRefusals, Expr: orZero(Refusals)},
		{Record: RecordRefusedRatio, Expr: RecordRefusals + " / (" + RecordAttempts + " + " + RecordRefusals + ")"},
	}
}

// AlertingRules returns the alerting rules for p.
func AlertingRules(p RuleParams) []Rule {
	p = p.withDefaults()
	n := p.naming()
	floor := strconv.FormatFloat(p.RatioFloor, 'g', -1, 64)
	factor := strconv.FormatFloat(p.BaselineFactor, 'g', -1, 64)
	shed := strconv.FormatFloat(p.ShedRatio, 'g', -1, 64)
	aboveBaseline := func(ratio, baseline string) string {
		// unless: a ratio without a baseline (a new target) is held to
		// the floor alone.
		return ratio + " > " + floor + "\nunless\n" + ratio + " <= " + factor + " * " + baseline
	}
	return []Rule{
		{
			Alert: AlertRetryRatio, Expr: aboveBaseline(RecordRetryRatio, RecordRetryBaseline), For: promDuration(p.RatioFor),
			Labels: [][2]string{{"severity", "warning"}},
			Annotations: [][2]string{
				{"summary", "Retries to " + n.targetText + " are above their baseline"},
				{"description", "Job {{ $labels.job }} retries more than " + floor + " of its attempts to " + n.targetText +
					", and more than " + factor + " times its usual ratio: the downstream is degrading."},
			},
		},
		{
			Alert: AlertUnavailable, Expr: aboveBaseline(RecordUnavailableRatio, RecordUnavailBaseline), For: promDuration(p.RatioFor),
			Labels: [][2]string{{"severity", "warning"}},
			Annotations: [][2]string{
				{"summary", "Attempts to " + n.targetText + " fail with Unavailable above their baseline"},
				{"description", "More than " + floor + " of job {{ $labels.job }}'s attempts to " + n.targetText +
					" fail with UNAVAILABLE, and more than " + factor + " times the usual share: connection errors or an overloaded downstream."},
			},
		},
		{
			Alert: AlertBreakerOpen, Expr: "max by (job, instance, " + LabelBreakerKey + ") (" + BreakerState + ") > 0", For: promDuration(p.BreakerFor),
			Labels: [][2]string{{"severity", "critical"}},
			Annotations: [][2]string{
				{"summary", "Circuit breaker {{ $labels." + LabelBreakerKey + " }} has not closed for " + promDuration(p.BreakerFor)},
				{"description", "The breaker {{ $labels." + LabelBreakerKey + " }} of {{ $labels.instance }} ({{ $labels.job }}) has been open or half-open for " +
					promDuration(p.BreakerFor) + ": its calls fail fast and its probes keep failing."},
			},
		},
		{
			Alert: AlertBudgetThrottle, Expr: RecordBudgetThrottled + " > 0", For: promDuration(p.BudgetFor),
			Labels: [][2]string{{"severity", "warning"}},
			Annotations: [][2]string{
				{"summary", "The retry budget is refusing retries to " + n.targetText},
				{"description", "Job {{ $labels.job }} has been refusing retries to " + n.targetText + " for " + promDuration(p.BudgetFor) +
					": so many of its attempts fail that retrying would multiply the load; calls fail after one attempt."},
			},
		},
		{
			Alert: AlertShedding, Expr: RecordRefusedRatio + " > " + shed, For: promDuration(p.ShedFor),
			Labels: [][2]string{{"severity", "warning"}},
			Annotations: [][2]string{
				{"summary", "Job {{ $labels.job }} refuses its own attempts to " + n.targetText},
				{"description", "For " + promDuration(p.ShedFor) + ", job {{ $labels.job }} has refused more than " + shed +
					" of its attempts to " + n.targetText + " itself (concurrency limit or client-side throttling): the downstream " +
					"cannot take this client's load, and the excess fails fast instead of queueing there. See the limit, attempts in flight and refusals by reason."},
			},
		},
		{
			Alert: AlertServingStale, Expr: RecordFallbacksServed + " > 0", For: promDuration(p.BudgetFor),
			Labels: [][2]string{{"severity", "warning"}},
			Annotations: [][2]string{
				{"summary", "Job {{ $labels.job }} is answering calls from fallbacks"},
				{"description", "For " + promDuration(p.BudgetFor) + ", job {{ $labels.job }} has answered failed calls from fallbacks (stale copies or defaults): its callers get old data while the downstream cannot answer."},
			},
		},
	}
}

// Rules renders the Prometheus rule file for p: one group of recording
// rules, one of alerts.
func Rules(p RuleParams) []byte {
	var b bytes.Buffer
	names := "default names (interceptors.MetricNamesResilience)"
	if p.GRPCNames {
		names = "gRPC's names (interceptors.MetricNamesGRPC)"
	}
	fmt.Fprintf(&b, "# Prometheus rules for the resilience interceptors' metrics, %s.\n", names)
	b.WriteString("# Generated by github.com/grpc-resilience/resilience/monitoring: do not edit.\n")
	b.WriteString("groups:\n")
	writeGroup(&b, "resilience.rules", RecordingRules(p))
	writeGroup(&b, "resilience.alerts", AlertingRules(p))
	return b.Bytes()
}

func writeGroup(b *bytes.Buffer, name string, rules []Rule) {
	fmt.Fprintf(b, "  - name: %s\n    rules:\n", name)
	for _, r := range rules {
		if r.Record != "" {
			fmt.Fprintf(b, "      - record: %s\n", r.Record)
		} else {
			fmt.Fprintf(b, "      - alert: %s\n", r.Alert)
		}
		b.WriteString("        expr: |-\n")
		for line := range strings.SplitSeq(r.Expr, "\n") {
			fmt.Fprintf(b, "          %s\n", line)
		}
		if r.For != "" {
			fmt.Fprintf(b, "        for: %s\n", r.For)
		}
		writeMap(b, "labels", r.Labels)
		writeMap(b, "annotations", r.Annotations)
	}
}

func writeMap(b *bytes.Buffer, name string, kvs [][2]string) {
	if len(kvs) == 0 {
		return
	}
	fmt.Fprintf(b, "        %s:\n", name)
	for _, kv := range kvs {
		fmt.Fprintf(b, "          %s: %s\n", kv[0], strconv.Quote(kv[1]))
	}
}

// promDuration writes d as a Prometheus duration: "5m", "1d", "10s".
func promDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d >= time.Second && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
