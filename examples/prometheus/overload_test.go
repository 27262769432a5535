package main

import (
	"slices"
	"testing"

	"github.com/grpc-resilience/resilience/interceptors"
	"github.com/grpc-resilience/resilience/monitoring"
)

// TestOverloadGaugesUnderTheExporter checks the names monitoring gives the
// limiter and throttle gauges against the OpenTelemetry Prometheus
// exporter itself (the throttle's probability, a gauge in units of 1,
// takes _ratio), and their target label under each naming.
func TestOverloadGaugesUnderTheExporter(t *testing.T) {
	for _, tc := range []struct {
		names interceptors.MetricNames
		label string
	}{
		{interceptors.MetricNamesResilience, monitoring.LabelTarget},
		{interceptors.MetricNamesGRPC, monitoring.LabelGRPCTarget},
	} {
		scopes, labels := families(t, tc.names, "throttle")
		for _, fam := range []string{monitoring.LimiterLimit, monitoring.LimiterInFlight, monitoring.LimiterQueued, monitoring.ThrottleProbability} {
			if sc := scopes[fam]; len(sc) != 1 || sc[0] != "github.com/grpc-resilience/resilience/interceptors" {
				t.Errorf("names %d: family %s written by %v, want the interceptors alone (families: %v)", tc.names, fam, sc, keys(scopes))
			}
			if !slices.Contains(labels[fam], tc.label) {
				t.Errorf("names %d: family %s has labels %v, want %s", tc.names, fam, labels[fam], tc.label)
			}
		}
	}
}
