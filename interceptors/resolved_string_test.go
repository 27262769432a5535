package interceptors

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/budget"
)

// TestResolvedPolicyPrintsValues: %v and %+v of a ResolvedPolicy show the
// values of its pointer fields, and the budget in force has its defaults
// filled in (WithRetryBudget's zero TokenRatio means 1).
func TestResolvedPolicyPrintsValues(t *testing.T) {
	m := MustNew(WithRetryBudget(budget.Config{MaxTokens: 10}),
		WithMethodPolicy(MatchMethods(echoMethod), Hedging(HedgePolicy{Delay: 25 * time.Millisecond, MaxAttempts: 2})))
	p := m.MethodPolicy(echoMethod)
	if p.RetryBudget == nil || p.RetryBudget.TokenRatio != 1 || p.RetryBudget.MaxTokens != 10 {
		t.Errorf("RetryBudget = %+v, want MaxTokens 10, TokenRatio 1 (the default of a zero field)", p.RetryBudget)
	}
	want := "MaxAttempts 3, RetryCodes [DeadlineExceeded Unavailable], Backoff exponential(50ms × 2^(n-1), max 2s, shortened by up to 20%), " +
		"PerAttemptTimeout none, Timeout 10s, Hedging up to 2 in flight, the next after 25ms, Breaker on, " +
		"RetryBudget 10 tokens, 1 back per success (retries stop at 5)"
	for _, format := range []string{"%v", "%+v", "%s"} {
		if got := fmt.Sprintf(format, p); got != want {
			t.Errorf("Sprintf(%q) =\n  %s\nwant\n  %s", format, got, want)
		}
		if got := fmt.Sprintf(format, p); strings.Contains(got, "0x") {
			t.Errorf("Sprintf(%q) prints a pointer: %s", format, got)
		}
	}

	sc := MustNew(WithServiceConfig(`{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.02s"},
		"resilience": {"hedgingPercentile": 0.95}}], "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1}}`), WithoutBreaker())
	want = "MaxAttempts 3, RetryCodes [], Backoff exponential(50ms × 2^(n-1), max 2s, shortened by up to 20%), PerAttemptTimeout none, Timeout 10s, " +
		"Hedging up to 3 in flight, the next after p95 (20ms until known), Breaker off, RetryBudget 100 tokens, 0.1 back per success (retries stop at 50)"
	if got := fmt.Sprint(sc.MethodPolicy(echoMethod)); got != want {
		t.Errorf("service config:\n  %s\nwant\n  %s", got, want)
	}
	if got := fmt.Sprint(MustNew(WithoutRetryBudget()).MethodPolicy(echoMethod)); !strings.HasSuffix(got, "RetryBudget off") {
		t.Errorf("no budget: %s", got)
	}
}
