package interceptors

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/budget"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestPushbackReplacesBackoffDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(time.Second)))
		h.markTroubled(t)
		h.pushback = "250"
		h.failNext(1, codes.Unavailable)
		start := time.Now()
		if err := echo(context.Background(), t, h.client); err != nil {
			t.Fatalf("Echo: %v", err)
		}
		if took := time.Since(start); took != 250*time.Millisecond {
			t.Fatalf("call took %v, want the server's 250ms instead of the 1s backoff", took)
		}
	})
}

func TestPushbackNegativeOrMalformedStopsRetries(t *testing.T) {
	for _, v := range []string{"-1", "soon", "1.5"} {
		t.Run(v, func(t *testing.T) {
			h := newHarness(t, Backoff(backoff.Constant(0)))
			h.markTroubled(t)
			h.pushback = v
			h.failNext(5, codes.Unavailable)
			err := echo(context.Background(), t, h.client)
			if status.Code(err) != codes.Unavailable || !errors.Is(err, ErrPushback) {
				t.Errorf("err = %v, want Unavailable with reason ErrPushback", err)
			}
			if n := h.attempts(); n != 1 {
				t.Errorf("server saw %d attempts, want 1", n)
			}
		})
	}
}

func TestPushbackBeyondDeadlineReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(0)))
		h.markTroubled(t)
		h.pushback = "3600000" // one hour
		h.failNext(1, codes.Unavailable)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := echo(ctx, t, h.client); status.Code(err) != codes.Unavailable || time.Since(start) != 0 {
			t.Errorf("err = %v after %v, want the last Unavailable at once", err, time.Since(start))
		}
		if h.attempts() != 1 {
			t.Errorf("attempts %d, want 1", h.attempts())
		}
	})
}

func TestPushbackOfAHealthyTargetIsReadFromRetries(t *testing.T) {
	// A target that has not failed lately skips reading trailers on first
	// attempts (grpc-go copies every trailer asked for); its retries still
	// read them, so a "stop" reaches the client at the second attempt.
	h := newHarness(t, Backoff(backoff.Constant(0)))
	h.pushback = "-1"
	h.failNext(5, codes.Unavailable)
	err := echo(context.Background(), t, h.client)
	if !errors.Is(err, ErrPushback) || h.attempts() != 2 {
		t.Errorf("err %v after %d attempts, want ErrPushback after 2", err, h.attempts())
	}
	// Now troubled: the next call's first attempt reads it.
	h.reset()
	h.pushback = "-1"
	h.failNext(5, codes.Unavailable)
	if err := echo(context.Background(), t, h.client); !errors.Is(err, ErrPushback) || h.attempts() != 1 {
		t.Errorf("troubled target: err %v after %d attempts, want ErrPushback after 1", err, h.attempts())
	}
}

func TestRetryBudgetStopsRetriesUnderOutage(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), MaxAttempts(3),
		WithRetryBudget(budget.Config{MaxTokens: 4, TokenRatio: 1}))
	h.failNext(100, codes.Unavailable)
	// 4 tokens: the first call's two failures leave 2 = MaxTokens/2, so
	// its second retry is refused.
	err := echo(context.Background(), t, h.client)
	var ie *Error
	if !errors.As(err, &ie) || ie.Attempts != 2 || !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("first call: %v, want 2 attempts and ErrBudgetExhausted", err)
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("code %v, want the last attempt's Unavailable", status.Code(err))
	}
	h.reset()
	h.failNext(100, codes.Unavailable)
	for range 10 {
		_ = echo(context.Background(), t, h.client)
	}
	if n := h.attempts(); n != 10 {
		t.Errorf("10 calls under outage with a drained budget made %d attempts, want 10", n)
	}
	// Successes refill it: 0 + 4 tokens, and a failure leaves 3 > 2.
	h.reset()
	for range 4 {
		if err := echo(context.Background(), t, h.client); err != nil {
			t.Fatal(err)
		}
	}
	h.failNext(1, codes.Unavailable)
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Errorf("after successes refilled the budget: %v, want a retried success", err)
	}
}

func TestWithoutRetryBudgetRetriesEveryCall(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), WithoutRetryBudget(), WithoutBreaker())
	h.failNext(1000, codes.Unavailable)
	for range 100 {
		_ = echo(context.Background(), t, h.client)
	}
	if n := h.attempts(); n != 300 {
		t.Errorf("server saw %d attempts for 100 calls, want 300", n)
	}
}

func TestCallsRideThroughServerRestart(t *testing.T) {
	if failed := restartScenario(t, MustNew(Backoff(backoff.Constant(0)))); failed != 0 {
		t.Errorf("%d calls failed across the restart, want 0", failed)
	}
}

func TestCallsFailAcrossRestartWithoutReadyWait(t *testing.T) {
	// The control for the test above: the same scenario without the ready
	// wait loses calls, so the test above checks the feature.
	if failed := restartScenario(t, MustNew(Backoff(backoff.Constant(0)), WithReadyWait(0))); failed == 0 {
		t.Errorf("no call failed across the restart without the ready wait; the scenario does not exercise it")
	}
}

// restartScenario stops a server, makes calls, restarts the server on the
// same port 200 ms later and returns how many calls failed.
func restartScenario(t *testing.T, m *Middleware) int {
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, lis)
	conn, err := grpc.NewClient(lis.Addr().String(), append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}

	lis.Stop()
	const calls = 8
	errs := make(chan error, calls)
	attempts := make([]int, calls)
	for i := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := client.Echo(ctx, &testingv1.EchoRequest{}, Attempts(&attempts[i]))
			errs <- err
		}()
	}
	// The server stays down for 200 ms, then serves again on the same
	// port. The downtime is the scenario's input, not a wait for the code
	// under test: long enough for fail-fast attempts to burn a call's
	// attempts (the control test below shows they do).
	down := time.NewTimer(200 * time.Millisecond)
	<-down.C
	if err := lis.Restart(); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range calls {
		if err := <-errs; err != nil {
			failed++
			t.Logf("call failed across the restart: %v", err)
		}
	}
	// Without the ready wait, fail-fast attempts against the down
	// connection burn all 3 attempts within milliseconds and every call
	// fails (TestCallsFailAcrossRestartWithoutReadyWait).
	t.Logf("attempts per call: %v", attempts)
	return failed
}
