package interceptors

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestServiceConfigRejectsUnknownFields: a key grpc-go's parser would
// silently ignore — a typo, a name in the wrong case — is an error naming
// its JSON path (and the field it probably meant), wherever it is.
func TestServiceConfigRejectsUnknownFields(t *testing.T) {
	const retry = `"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]`
	for _, tc := range []struct{ js, want string }{
		{`{"methodConfig": [{"name": [{}], "retryPolicyy": {` + retry + `}}]}`,
			`methodConfig[0].retryPolicyy: unknown field; did you mean "retryPolicy"?`},
		{`{"methodConfig": [{"name": [{}], "RetryPolicy": {` + retry + `}}]}`,
			`methodConfig[0].RetryPolicy: unknown field; did you mean "retryPolicy"?`},
		{`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttemps": 3, ` + retry[len(`"maxAttempts": 3, `):] + `}}]}`,
			`methodConfig[0].retryPolicy.maxAttemps: unknown field; did you mean "maxAttempts"?`},
		{`{"methodConfig": [{"name": [{}], "retryPolicy": {` + retry + `, "perAttemptRecvTimeout": "1s"}}]}`,
			`methodConfig[0].retryPolicy.perAttemptRecvTimeout: unknown field; known here: maxAttempts, initialBackoff`},
		{`{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2, "hedgeDelay": "0.1s"}}]}`,
			`methodConfig[0].hedgingPolicy.hedgeDelay: unknown field; did you mean "hedgingDelay"?`},
		{`{"methodConfig": [{"name": [{"service": "s", "methods": "M"}]}]}`,
			`methodConfig[0].name[0].methods: unknown field; did you mean "method"?`},
		{`{"retryThrotling": {"maxTokens": 10, "tokenRatio": 0.1}}`,
			`retryThrotling: unknown field; did you mean "retryThrottling"?`},
		{`{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1, "tokenRate": 1}}`,
			`retryThrottling.tokenRate: unknown field; did you mean "tokenRatio"?`},
		{`{"methodConfig": [{"name": [{}], "waitForReady": "yes"}]}`,
			`methodConfig[0].waitForReady: must be a boolean, got "yes"`},
		{`{"methodConfig": [{"name": [{}], "maxRequestMessageBytes": 1.5}]}`,
			`methodConfig[0].maxRequestMessageBytes: must be an integer, got 1.5`},
	} {
		_, err := New(WithServiceConfig(tc.js))
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithServiceConfig(%s)\n  = %v\n  want an error with %q", tc.js, err, tc.want)
		}
	}
	// Every unknown field is named, in a stable order.
	_, err := New(WithServiceConfig(`{"zz": 1, "aa": 2, "methodConfig": [{"name": [{}], "x": 1}]}`))
	if err == nil {
		t.Fatal("three unknown fields accepted")
	}
	msg := err.Error()
	if a, z, x := strings.Index(msg, "aa: unknown"), strings.Index(msg, "zz: unknown"), strings.Index(msg, "methodConfig[0].x: unknown"); a < 0 || z < 0 || x < 0 || a > z {
		t.Errorf("three unknown fields: %q, want aa, zz (in that order) and methodConfig[0].x named", msg)
	}
}

// TestServiceConfigKeepsGRPCFields: the fields grpc-go reads and this
// library does not use are accepted, so that one file serves both; and
// grpc-go accepts that file too.
func TestServiceConfigKeepsGRPCFields(t *testing.T) {
	const js = `{
  "loadBalancingPolicy": "round_robin",
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "orders"},
  "methodConfig": [{
    "name": [{"service": "orders.v1.Orders"}],
    "waitForReady": true, "timeout": "2s",
    "maxRequestMessageBytes": 1048576, "maxResponseMessageBytes": 4194304,
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    "resilience": {"perAttemptTimeout": "0.4s"}}],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.5},
  "resilience": {"readyWait": "1s"}
}`
	m, err := New(WithServiceConfig(js))
	if err != nil {
		t.Fatalf("a service config with grpc-go's fields: %v", err)
	}
	if got := m.MethodPolicy("/orders.v1.Orders/Get").MaxAttempts; got != 4 {
		t.Errorf("MaxAttempts = %d, want 4 from the retryPolicy", got)
	}
	conn, err := grpc.NewClient("passthrough:///orders", grpc.WithDefaultServiceConfig(js),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc-go refuses the same file: %v", err)
	}
	conn.Close()
}
