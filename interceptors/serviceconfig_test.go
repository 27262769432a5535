package interceptors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/engine"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

const (
	svc          = "resilience.testing.v1.EchoService"
	streamMethod = "/" + svc + "/ServerStream"
)

// fullServiceConfig uses every field this library reads, the extension
// included.
const fullServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [
    {"name": [{}], "timeout": "2s",
     "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "1s",
                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
    {"name": [{"service": "` + svc + `"}],
     "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.1s", "maxBackoff": "0.1s",
                     "backoffMultiplier": 1, "retryableStatusCodes": [14, "RESOURCE_EXHAUSTED"]},
     "resilience": {"perAttemptTimeout": "0.25s", "breaker": false}},
    {"name": [{"service": "` + svc + `", "method": "Echo"}], "timeout": "1.5s",
     "hedgingPolicy": {"maxAttempts": 4, "hedgingDelay": "0.02s", "nonFatalStatusCodes": ["UNAVAILABLE"]},
     "resilience": {"hedgingPercentile": 0.9}}
  ],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.5},
  "resilience": {"readyWait": "1s", "breaker": {"consecutiveFailures": 7, "openTimeout": "3s"}}
}`

func TestServiceConfigResolvesWithGRPCPrecedence(t *testing.T) {
	m, err := New(WithServiceConfig(fullServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	echo := m.MethodPolicy(echoMethod)
	if echo.Hedging == nil || echo.Hedging.MaxAttempts != 4 || echo.Hedging.Delay != 20*time.Millisecond || echo.Hedging.Percentile != 0.9 {
		t.Errorf("Echo hedging = %+v, want the method entry's", echo.Hedging)
	}
	if echo.Timeout != 1500*time.Millisecond || echo.MaxAttempts != 4 || fmt.Sprint(echo.RetryCodes) != "[Unavailable]" {
		t.Errorf("Echo = %+v, want the method entry: timeout 1.5s, 4 attempts, non-fatal [Unavailable]", echo)
	}
	stream := m.MethodPolicy(streamMethod)
	if stream.MaxAttempts != 2 || stream.PerAttemptTimeout != 250*time.Millisecond || stream.Breaker || stream.Hedging != nil {
		t.Errorf("ServerStream = %+v, want the service entry: 2 attempts, 250ms per attempt, no breaker", stream)
	}
	if fmt.Sprint(stream.RetryCodes) != "[ResourceExhausted Unavailable]" {
		t.Errorf("ServerStream codes %v, want the service entry's", stream.RetryCodes)
	}
	if stream.Timeout != DefaultCallTimeout {
		t.Errorf("ServerStream timeout %v: an entry without timeout leaves the default", stream.Timeout)
	}
	other := m.MethodPolicy("/other.Service/Do")
	if other.MaxAttempts != 3 || other.Timeout != 2*time.Second || !other.Breaker {
		t.Errorf("other service = %+v, want the default entry: 3 attempts, 2s", other)
	}
	if b, ok := other.Backoff.(*engine.GRPCBackoff); !ok || b.Initial != 10*time.Millisecond || b.Max != time.Second || b.Multiplier != 2 {
		t.Errorf("default entry backoff %#v, want grpc-go's distribution from the JSON", other.Backoff)
	}
	if got := other.RetryBudget; got == nil || *got != (budget.Config{MaxTokens: 10, TokenRatio: 0.5}) {
		t.Errorf("budget %+v, want retryThrottling's", got)
	}
	if m.cfg.readyWait != time.Second || m.cfg.breaker.ConsecutiveFailures != 7 || m.cfg.breaker.OpenTimeout != 3*time.Second {
		t.Errorf("extension: readyWait %v, breaker %+v", m.cfg.readyWait, m.cfg.breaker)
	}

	// grpc-go's own parser takes the same JSON, extension and all.
	conn, err := grpc.NewClient("passthrough:///x", grpc.WithDefaultServiceConfig(fullServiceConfig),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc-go refuses the JSON: %v", err)
	}
	conn.Close()
}

func TestServiceConfigLayers(t *testing.T) {
	js := `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 5, "initialBackoff": "1s",
		"maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`
	m := MustNew(MaxAttempts(2), PerAttemptTimeout(time.Second), WithServiceConfig(js),
		WithMethodPolicy(MatchMethods(echoMethod), MaxAttempts(1)))
	if p := m.MethodPolicy(streamMethod); p.MaxAttempts != 5 || p.PerAttemptTimeout != time.Second {
		t.Errorf("stream: %+v, want the JSON's 5 attempts over New's 2, New's per-attempt timeout kept", p)
	}
	if p := m.MethodPolicy(echoMethod); p.MaxAttempts != 1 {
		t.Errorf("Echo: %d attempts, want the method policy's 1 over the JSON", p.MaxAttempts)
	}
}

func TestServiceConfigErrorsNameThePath(t *testing.T) {
	retry := func(fields string) string {
		return `{"methodConfig": [{"name": [{}]}, {"name": [{"service": "s"}], "retryPolicy": {` + fields + `}}]}`
	}
	const good = `"initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]`
	for _, tc := range []struct{ js, want string }{
		{retry(`"maxAttempts": 1, ` + good), "methodConfig[1].retryPolicy.maxAttempts: must be >= 2, got 1"},
		{retry(`"maxAttempts": 2.5, ` + good), "methodConfig[1].retryPolicy.maxAttempts: must be a 32-bit integer, got 2.5"},
		{retry(`"maxAttempts": 2, "initialBackoff": "0s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]`),
			`methodConfig[1].retryPolicy.initialBackoff: must be > 0, got "0s"`},
		{retry(`"maxAttempts": 2, "initialBackoff": "1", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]`),
			`methodConfig[1].retryPolicy.initialBackoff: malformed duration "1": want seconds such as "1.5s"`},
		{retry(`"maxAttempts": 2, "initialBackoff": "-1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]`),
			`methodConfig[1].retryPolicy.initialBackoff: must be >= 0, got "-1s"`},
		{retry(`"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 0, "retryableStatusCodes": ["UNAVAILABLE"]`),
			"methodConfig[1].retryPolicy.backoffMultiplier: must be > 0, got 0"},
		{retry(`"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": []`),
			"methodConfig[1].retryPolicy.retryableStatusCodes: must not be empty"},
		{retry(`"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["OK"]`),
			"methodConfig[1].retryPolicy.retryableStatusCodes[0]: OK is not a failure"},
		{retry(`"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["Unavailable"]`),
			`methodConfig[1].retryPolicy.retryableStatusCodes[0]: not a status code: "Unavailable"`},
		{retry(good), "methodConfig[1].retryPolicy.maxAttempts: required"},
		{`{"methodConfig": [{"name": [{"method": "M"}]}]}`, `methodConfig[0].name[0]: method "M" needs a service`},
		{`{"methodConfig": [{"name": [{"service": "s"}]}, {"name": [{"service": "s"}]}]}`, `methodConfig[1].name[0]: duplicate name "/s/"`},
		{`{"methodConfig": [{"name": [{}], "retryPolicy": {}, "hedgingPolicy": {"maxAttempts": 2}}]}`, "methodConfig[0]: retryPolicy and hedgingPolicy are mutually exclusive"},
		{`{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 1}}]}`, "methodConfig[0].hedgingPolicy.maxAttempts: must be >= 2, got 1"},
		{`{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}`, "retryThrottling.maxTokens: must be in (0, 1000], got 0"},
		{`{"retryThrottling": {"maxTokens": 10, "tokenRatio": -1}}`, "retryThrottling.tokenRatio: must be > 0, got -1"},
		{`{"methodConfig": [{"name": [{}], "resilience": {"perAttemptTimout": "1s"}}]}`, "methodConfig[0].resilience.perAttemptTimout: unknown field"},
		{`{"methodConfig": [{"name": [{}], "resilience": {"hedgingPercentile": 0.9}}]}`, "methodConfig[0].resilience.hedgingPercentile: needs a hedgingPolicy in the same entry"},
		{`{"resilience": {"breaker": {"failureRatio": 1.5}}}`, "resilience.breaker.failureRatio: must be in (0, 1], got 1.5"},
		{`[]`, "top level: must be an object, got an array"},
		{`{"methodConfig": {}}`, "methodConfig: must be an array, got an object"},
		{`{`, "invalid JSON"},
	} {
		_, err := New(WithServiceConfig(tc.js))
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithServiceConfig: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithServiceConfig(%s)\n  = %v\n  want an error with %q", tc.js, err, tc.want)
		}
	}
	// Every error at once.
	_, err := New(WithServiceConfig(`{"methodConfig": [{"name": [{"method": "M"}], "timeout": "x"}], "retryThrottling": {"maxTokens": -1, "tokenRatio": 1}}`))
	for _, want := range []string{"methodConfig[0].timeout", "methodConfig[0].name[0]", "retryThrottling.maxTokens"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("three bad fields: %v, want %s named", err, want)
		}
	}
}

func TestSetServiceConfigSwapsAtomically(t *testing.T) {
	cfg := func(n int) string {
		return fmt.Sprintf(`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": %d, "initialBackoff": "0.000001s",
			"maxBackoff": "0.000001s", "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, n)
	}
	m := MustNew(WithServiceConfig(cfg(2)), WithoutBreaker(), WithoutRetryBudget())
	h := newHarnessDial(t, m.DialOptions()...)
	h.failAll(resiliencetest.Fail(codes.Unavailable))
	client := h.client
	stop := make(chan struct{})
	var wg sync.WaitGroup
	seen := make([]map[int]int, 4)
	for i := range seen {
		seen[i] = map[int]int{}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				_, err := client.Echo(context.Background(), &testingv1.EchoRequest{}, Attempts(&n))
				if status.Code(err) != codes.Unavailable {
					t.Errorf("call: %v", err)
					return
				}
				seen[i][n]++
			}
		})
	}
	for i := range 200 {
		if err := m.SetServiceConfig(cfg(2 + 2*(i%2))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, s := range seen {
		for n := range s {
			if n != 2 && n != 4 {
				t.Errorf("a call made %d attempts: it mixed two policies (saw %v)", n, s)
			}
		}
	}
	if err := m.SetServiceConfig(`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 0}}]}`); err == nil {
		t.Error("SetServiceConfig took an invalid JSON")
	}
	if got := m.MethodPolicy(echoMethod).MaxAttempts; got != 4 {
		t.Errorf("after a refused swap: %d attempts, want the last good config's 4", got)
	}
}

func TestSetServiceConfigKeepsBreakersAndResizesBudgets(t *testing.T) {
	r := newRig(t, WithBreaker(tripped()), WithServiceConfig(`{"retryThrottling": {"maxTokens": 10, "tokenRatio": 1}}`))
	r.failNext(1, codes.Unavailable)
	_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{}, MaxAttempts(1))
	if err := r.m.SetServiceConfig(`{"retryThrottling": {"maxTokens": 20, "tokenRatio": 1}}`); err != nil {
		t.Fatal(err)
	}
	if st := r.m.Breakers().State(r.conn.Target()); st != breaker.StateOpen {
		t.Errorf("breaker %v after the swap, want still open", st)
	}
	if b := r.m.MethodPolicy(echoMethod).RetryBudget; b == nil || b.MaxTokens != 20 {
		t.Errorf("budget %+v after the swap, want 20 tokens", b)
	}
	if err := r.m.SetServiceConfig(`{}`); err != nil {
		t.Fatal(err)
	}
	if b := r.m.MethodPolicy(echoMethod).RetryBudget; b == nil || *b != budget.DefaultConfig() {
		t.Errorf("budget %+v after a JSON without retryThrottling, want New's (the default)", b)
	}
	if err := r.m.SetServiceConfig(`{"resilience": {"readyWait": "5s"}}`); err == nil || !strings.Contains(err.Error(), "resilience.readyWait") {
		t.Errorf("changing readyWait while running: %v, want refused by name", err)
	}
}
