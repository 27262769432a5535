package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Settings a call's policy may hold that cannot apply to it, the values of
// LogSetting and of the resilience.policy.setting attribute.
const (
	// IgnoredHedgingStream: the method policy hedges, and the call is a
	// stream, which is never hedged.
	IgnoredHedgingStream = "hedging"
	// IgnoredEndpointEjection: endpoint ejection is on, and the call went
	// through another load-balancing policy (a service config of the
	// channel's own replaced it).
	IgnoredEndpointEjection = "endpoint ejection"
)

// MsgPolicyIgnored (Warn) reports, once per setting, method and target,
// that a setting of a call's policy did not apply to it (LogSetting,
// LogReason).
const MsgPolicyIgnored = "resilience: policy setting not applied"

// LogSetting is the log attribute key of the setting that did not apply.
const LogSetting = "setting"

// ignoredReason says why a setting did not apply, the LogReason of
// MsgPolicyIgnored.
var ignoredReason = map[string]string{
	IgnoredHedgingStream:    "streams are never hedged",
	IgnoredEndpointEjection: "the channel's load-balancing policy is not resilience_endpoint: a service config of its own replaced it",
}

// attrPolicySetting names the setting on the policy ignored counter.
const attrPolicySetting = attribute.Key("resilience.policy.setting")

// maxIgnoredLogged bounds the (setting, method, target) keys remembered as
// logged; beyond it, further ones are counted, not logged.
const maxIgnoredLogged = 1024

type ignoredKey struct{ setting, method, target string }

// PolicyIgnored records that a call of method on target has a policy
// setting that did not apply to it (IgnoredHedgingStream,
// IgnoredEndpointEjection): it counts the call on the
// resilience.client.policy.ignored counter and logs a Warn record the
// first time for each setting, method and target.
func (t *Recorder) PolicyIgnored(method, target, setting string) {
	s := t.s
	if s == nil {
		return
	}
	if in := s.instruments(); in != nil {
		set := s.attrsFor(method, target).metricSetWith(attrPolicySetting.String(setting))
		in.policyIgnored.Add(context.Background(), 1, metric.WithAttributeSet(set))
	}
	if g := s.log; g != nil && g.firstIgnored(ignoredKey{setting, method, target}) {
		g.l.LogAttrs(context.Background(), slog.LevelWarn, MsgPolicyIgnored,
			slog.String(LogSetting, setting), slog.String(LogMethod, method), slog.String(LogTarget, target),
			slog.String(LogReason, ignoredReason[setting]))
	}
}

// firstIgnored reports whether k is seen for the first time.
func (g *logger) firstIgnored(k ignoredKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.ignored[k]; ok || len(g.ignored) >= maxIgnoredLogged {
		return false
	}
	if g.ignored == nil {
		g.ignored = make(map[ignoredKey]struct{})
	}
	g.ignored[k] = struct{}{}
	return true
}
