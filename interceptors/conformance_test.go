package interceptors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// TestConformanceWithGRPCRetry feeds the same service config to grpc-go's
// built-in retry (our interceptors off) and to ours, over the same fault
// script, and compares the attempts that reach the server.
func TestConformanceWithGRPCRetry(t *testing.T) {
	policy := func(n int, codes string) string {
		return fmt.Sprintf(`"retryPolicy": {"maxAttempts": %d, "initialBackoff": "0.001s", "maxBackoff": "0.002s",
			"backoffMultiplier": 2, "retryableStatusCodes": [%s]}`, n, codes)
	}
	perMethod := `{"methodConfig": [
		{"name": [{"service": "` + svc + `"}], ` + policy(2, `"UNAVAILABLE"`) + `},
		{"name": [{"service": "` + svc + `", "method": "Echo"}], ` + policy(4, `"UNAVAILABLE"`) + `}]}`
	def := `{"methodConfig": [{"name": [{}], ` + policy(4, `"UNAVAILABLE"`) + `}]}`
	throttled := `{"methodConfig": [{"name": [{}], ` + policy(3, `"UNAVAILABLE"`) + `}],
		"retryThrottling": {"maxTokens": 6, "tokenRatio": 0.5}}`

	type step struct {
		method string // echoMethod or streamMethod
		fail   int    // attempts failed before the call, with fault
		fault  resiliencetest.Fault
	}
	unavailable := resiliencetest.Fail(codes.Unavailable)
	notFound := step{echoMethod, 1, resiliencetest.Fail(codes.NotFound)}
	for _, tc := range []struct {
		name  string
		json  string
		steps []step
	}{
		{"fail 2 then succeed", def, []step{{echoMethod, 2, unavailable}}},
		{"non-retryable code", def, []step{notFound}},
		{"attempts exhausted", def, []step{{echoMethod, 10, unavailable}}},
		// Ours reads pushback on the first attempt only while the target
		// has failed lately (reading trailers costs every call a copy), so
		// these start with a failed call (NotFound: one attempt in both).
		{"pushback stop", def, []step{notFound, {echoMethod, 3, unavailable.WithPushback("-1")}}},
		{"pushback delay", def, []step{notFound, {echoMethod, 2, unavailable.WithPushback("5")}}},
		{"malformed pushback", def, []step{notFound, {echoMethod, 3, unavailable.WithPushback("soon")}}},
		{"entry without a retry policy", `{"methodConfig": [{"name": [{"service": "` + svc + `"}], "timeout": "5s"}]}`,
			[]step{{echoMethod, 3, unavailable}}},
		{"per-method entry", perMethod, []step{{echoMethod, 10, unavailable}}},
		{"per-service entry", perMethod, []step{{streamMethod, 10, unavailable}}},
		{"throttling", throttled, []step{
			{echoMethod, 30, unavailable}, {echoMethod, 30, unavailable}, {echoMethod, 30, unavailable},
			{echoMethod, 30, unavailable}, {echoMethod, 0, unavailable}, {echoMethod, 30, unavailable}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(stack string) []int {
				lis := resiliencetest.ListenMemory()
				faults := newFaults(t)
				serveEcho(t, lis, faults.ServerOptions()...)
				var opts []grpc.DialOption
				if stack == "grpc-go" {
					opts = []grpc.DialOption{grpc.WithDefaultServiceConfig(tc.json)}
				} else {
					opts = MustNew(WithServiceConfig(tc.json), WithoutBreaker()).DialOptions()
				}
				client := testingv1.NewEchoServiceClient(dialListener(t, lis, opts...))
				var got []int
				for _, s := range tc.steps {
					faults.Reset()
					must(t, faults.InjectNext(s.method, s.fail, s.fault))
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if s.method == echoMethod {
						_, _ = client.Echo(ctx, &testingv1.EchoRequest{})
					} else if stream, err := client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 1}); err == nil {
						_, _ = recvAll(stream)
					}
					cancel()
					got = append(got, faults.Attempts(allMethods))
				}
				return got
			}
			theirs, ours := run("grpc-go"), run("ours")
			if fmt.Sprint(theirs) != fmt.Sprint(ours) {
				t.Errorf("attempts per call: grpc-go %v, ours %v", theirs, ours)
			}
			t.Logf("attempts per call: %v", ours)
		})
	}
}
