package endpoint

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

type scenarioResult struct {
	calls, attempts, failedFirst, failedCalls int
	steadyCalls, steadyAttempts               int // after the ejection
	steadyFailedFirst                         int
	ejectedAfterCalls                         int // calls made when the ejection was seen; -1 if none
	ejectedAfter                              time.Duration
	failuresToEject                           int
}

// runScenario makes calls one after another, each retried once on
// Unavailable with the same call context, as the interceptors will.
func runScenario(ctx context.Context, client testingv1.EchoServiceClient, calls int, ejected func() bool) scenarioResult {
	res := scenarioResult{calls: calls, ejectedAfterCalls: -1}
	start := time.Now()
	for i := range calls {
		steady := ejected != nil && ejected()
		if steady && res.ejectedAfterCalls < 0 {
			res.ejectedAfterCalls, res.ejectedAfter, res.failuresToEject = i, time.Since(start), res.failedFirst
		}
		call := NewCall(ctx)
		res.attempts++
		_, err := client.Echo(call, &testingv1.EchoRequest{Message: "x"})
		if steady {
			res.steadyCalls++
			res.steadyAttempts++
		}
		if status.Code(err) == codes.Unavailable {
			res.failedFirst++
			if steady {
				res.steadyFailedFirst++
				res.steadyAttempts++
			}
			res.attempts++
			_, err = client.Echo(call, &testingv1.EchoRequest{Message: "x"})
		}
		if err != nil {
			res.failedCalls++
		}
	}
	return res
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}

// TestScenarioOneBadEndpoint: 5 endpoints on loopback, one answering
// Unavailable to everything; the policy with its defaults beside
// round_robin, both with one retry per call. Run with -v for the figures.
func TestScenarioOneBadEndpoint(t *testing.T) {
	const calls = 3000
	f := newFixture(t, 5, Config{})
	f.servers[2].fail.Store(true)
	ejected := func() bool { return len(f.gotEvents()) > 0 }

	r := manual.NewBuilderWithScheme("endpoint-rr")
	r.InitialState(resolver.State{Endpoints: endpointsOf(f.servers...)})
	rrCC, err := grpc.NewClient(r.Scheme()+":///rr", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer rrCC.Close()
	rr := testingv1.NewEchoServiceClient(rrCC)
	ctx := testCtx(t)
	// Warm the baseline until all five serve (round robin starts a call on
	// each ready one in turn).
	for i := 0; ; i++ {
		seen := map[string]bool{}
		for range 10 {
			if resp, err := rr.Echo(ctx, &testingv1.EchoRequest{}); err == nil {
				seen[resp.GetMessage()] = true
			}
		}
		if len(seen) == 4 {
			break
		}
		if i == 1000 { // each round is 10 calls: the loop waits by calling
			t.Fatal("round_robin baseline never reached all endpoints")
		}
	}

	base := runScenario(ctx, rr, calls, nil)
	ours := runScenario(ctx, f.client, calls, ejected)

	t.Logf("5 endpoints, 1 always Unavailable, %d sequential calls per client, one retry on Unavailable with the same call context", calls)
	t.Logf("(sequential calls under round_robin: a failed call's retry takes the next endpoint's turn, so 1 call in 4 starts on the bad one)")
	t.Logf("round_robin:         failed first attempts %5.2f%%, attempts/call %.4f, failed calls %d",
		pct(base.failedFirst, base.calls), float64(base.attempts)/float64(base.calls), base.failedCalls)
	t.Logf("resilience_endpoint: failed first attempts %5.2f%% overall, attempts/call %.4f, failed calls %d",
		pct(ours.failedFirst, ours.calls), float64(ours.attempts)/float64(ours.calls), ours.failedCalls)
	t.Logf("resilience_endpoint, after the ejection (%d calls): failed first attempts %5.2f%%, attempts/call %.4f",
		ours.steadyCalls, pct(ours.steadyFailedFirst, ours.steadyCalls), float64(ours.steadyAttempts)/float64(max(1, ours.steadyCalls)))
	t.Logf("resilience_endpoint: ejected after %d calls, %d failed first attempts, %v", ours.ejectedAfterCalls, ours.failuresToEject, ours.ejectedAfter.Round(time.Millisecond))

	if ours.ejectedAfterCalls < 0 {
		t.Fatal("the failing endpoint was not ejected")
	}
	if ours.failuresToEject > 50 {
		t.Errorf("%d failed first attempts before ejection, want <= 50", ours.failuresToEject)
	}
	if s := pct(ours.steadyFailedFirst, ours.steadyCalls); s > 0.5 {
		t.Errorf("steady state: %.2f%% failed first attempts, want <= 0.5%%", s)
	}
	if a := float64(ours.steadyAttempts) / float64(ours.steadyCalls); a > 1.01 {
		t.Errorf("steady state: %.4f attempts per call, want <= 1.01", a)
	}
	if ours.failedFirst != ours.failuresToEject+ours.steadyFailedFirst || ours.failedFirst > 50 {
		t.Errorf("%d failed first attempts in all", ours.failedFirst)
	}
	if ours.failedCalls != 0 {
		t.Errorf("%d calls failed after their retry, want 0: retries go elsewhere", ours.failedCalls)
	}
	if s := pct(base.failedFirst, base.calls); s < 15 {
		t.Errorf("baseline: %.2f%% failed first attempts; expected about 20%%", s)
	}
}
