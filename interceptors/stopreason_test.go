package interceptors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/budget"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// A call's stop reason belongs to the decision that ends the call. A
// hedged call whose hedge was stopped (by the server's pushback, or by an
// exhausted budget) and whose first attempt then ends with NotFound ends
// with NotFound: not with the hedge's reason, and never answered by a
// fallback, which is for the downstream's failures only.
func TestStopReasonOfAnotherAttemptDoesNotEndTheCall(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []Option
		hedge      *resiliencetest.Fault // what the hedge (attempt 2) suffers, if anything
		notReason  error
		drainFirst bool // exhaust the budget with a failed call first
	}{
		{
			name:      "hedge stopped by pushback",
			opts:      []Option{hedging(10*time.Millisecond, 3)},
			hedge:     new(resiliencetest.Fail(codes.Unavailable).WithPushback("-1")),
			notReason: ErrPushback,
		},
		{
			name:       "hedge refused by the budget",
			opts:       []Option{hedging(10*time.Millisecond, 3), WithRetryBudget(budget.Config{MaxTokens: 2, TokenRatio: 1})},
			notReason:  ErrBudgetExhausted,
			drainFirst: true,
		},
	} {
		for _, withFallback := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fallback=%v", tc.name, withFallback), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var r *rig
					if withFallback {
						r, _ = fallbackRig(t, 0, tc.opts...)
					} else {
						r = newRig(t, tc.opts...)
					}
					if tc.drainFirst {
						// One failure leaves 1 of 2 tokens: no more retries
						// or hedges.
						r.failNext(1, codes.Unavailable)
						_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "drain"}, MaxAttempts(1))
					}
					// The hedge delay passes while the first attempt runs.
					r.inject(1, resiliencetest.Fail(codes.NotFound).WithDelay(20*time.Millisecond))
					if tc.hedge != nil {
						r.inject(1, *tc.hedge)
					}
					var attempts int
					msg, info, err := r.echoFallback(context.Background(), "hello", Attempts(&attempts))
					if status.Code(err) != codes.NotFound || info.Used {
						t.Fatalf("call: %q %v, fallback %+v; want NotFound, not answered by the fallback", msg, err, info)
					}
					if errors.Is(err, tc.notReason) {
						t.Errorf("err %v satisfies errors.Is(%v): the reason of a decision about another attempt", err, tc.notReason)
					}
					var ie *Error
					if !errors.As(err, &ie) || ie.Reason != nil {
						t.Errorf("err %#v, want an *Error without a Reason", err)
					}
				})
			})
		}
	}
}

// A call that ends at its caller's own deadline is never answered by the
// fallback, even when a decision about a hedge recorded a reason the
// fallback answers for (an exhausted budget) and the server's
// DeadlineExceeded arrives a moment before the client's own deadline.
func TestCallerDeadlineIsNotAnsweredByTheFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The margin (an hour) is longer than the call: no margin timer.
		r, _ := fallbackRig(t, time.Hour, hedging(10*time.Millisecond, 2),
			WithRetryBudget(budget.Config{MaxTokens: 2, TokenRatio: 1}))
		r.failNext(1, codes.Unavailable)
		_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "drain"}, MaxAttempts(1))
		// The server gives up 1 ms before the caller's deadline.
		r.inject(1, resiliencetest.Fail(codes.DeadlineExceeded).WithDelay(99*time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, info, err := r.echoFallback(ctx, "hello")
		if status.Code(err) != codes.DeadlineExceeded || info.Used {
			t.Fatalf("call at the caller's deadline: %v, fallback %+v; want DeadlineExceeded, no fallback", err, info)
		}
	})
}

// The same, with the server running into the deadline as it sees it: which
// of the two deadlines fires first varies, and neither may make the
// fallback answer. A loop, to catch the order that used to.
func TestCallerDeadlineIsNotAnsweredByTheFallbackLoop(t *testing.T) {
	for i := range 50 {
		synctest.Test(t, func(t *testing.T) {
			r, _ := fallbackRig(t, time.Hour, hedging(10*time.Millisecond, 2),
				WithRetryBudget(budget.Config{MaxTokens: 2, TokenRatio: 1}))
			r.failNext(1, codes.Unavailable)
			_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "drain"}, MaxAttempts(1))
			r.failAll(resiliencetest.Hang())
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, info, err := r.echoFallback(ctx, "hello")
			if status.Code(err) != codes.DeadlineExceeded || info.Used {
				t.Fatalf("run %d: call at the caller's deadline: %v, fallback %+v; want DeadlineExceeded, no fallback", i, err, info)
			}
		})
	}
}
