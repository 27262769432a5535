package interceptors

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/budget"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func hedgeAll(p HedgePolicy) Option {
	return WithMethodPolicy(MatchMethods(echoMethod), Hedging(p))
}

func TestHedgeWinsOverSlowFirstAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, hedgeAll(HedgePolicy{Delay: 10 * time.Millisecond, MaxAttempts: 2}))
		h.blockFirst(1) // the first attempt hangs until cancelled
		var header, trailer metadata.MD
		var p peer.Peer
		var attempts int
		start := time.Now()
		resp, err := h.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "hedge"},
			grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p), Attempts(&attempts))
		if err != nil {
			t.Fatalf("hedged call: %v", err)
		}
		if took := time.Since(start); took != 10*time.Millisecond {
			t.Errorf("hedged call took %v, want the 10ms hedge delay", took)
		}
		if resp.GetMessage() != "hedge" || attempts != 2 {
			t.Errorf("reply %q after %d attempts, want %q after 2", resp.GetMessage(), attempts, "hedge")
		}
		if got := header.Get("served-attempt"); len(got) != 1 || got[0] != "2" {
			t.Errorf("header served-attempt = %v, want the winner's [2]", got)
		}
		if got := trailer.Get("served-attempt"); len(got) != 1 || got[0] != "2" {
			t.Errorf("trailer served-attempt = %v, want the winner's [2]", got)
		}
		if p.Addr == nil {
			t.Error("peer not set from the winning attempt")
		}
		if n := h.attempts(); n != 2 {
			t.Errorf("server saw %d attempts, want 2", n)
		}
	})
}

func TestHedgeNotSentWhenFirstAnswersInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, hedgeAll(HedgePolicy{Delay: time.Hour, MaxAttempts: 3}))
		h.failNext(1, codes.NotFound)
		if err := echo(context.Background(), t, h.client); status.Code(err) != codes.NotFound {
			t.Errorf("err %v, want the first attempt's non-retryable NotFound", err)
		}
		if err := echo(context.Background(), t, h.client); err != nil {
			t.Fatal(err)
		}
		if n := h.attempts(); n != 2 {
			t.Errorf("server saw %d attempts for 2 calls, want 2 (no hedges)", n)
		}
	})
}

func TestHedgeRetryableFailureStartsNextAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(time.Hour)),
			hedgeAll(HedgePolicy{Delay: time.Hour, MaxAttempts: 3}))
		h.failNext(2, codes.Unavailable)
		var attempts int
		start := time.Now()
		if err := echo(context.Background(), t, h.client, Attempts(&attempts)); err != nil || time.Since(start) != 0 {
			t.Fatalf("err %v after %v, want success on the third attempt without waiting", err, time.Since(start))
		}
		if attempts != 3 {
			t.Errorf("attempts %d, want 3", attempts)
		}
	})
}

func TestHedgesDrawOnTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, WithRetryBudget(budget.Config{MaxTokens: 2, TokenRatio: 1}),
			hedgeAll(HedgePolicy{Delay: time.Hour, MaxAttempts: 3}))
		h.failNext(10, codes.Unavailable)
		// 2 tokens: one failure leaves 1 = MaxTokens/2, so no hedge follows.
		err := echo(context.Background(), t, h.client)
		if status.Code(err) != codes.Unavailable || h.attempts() != 1 {
			t.Errorf("err %v after %d attempts, want Unavailable after 1", err, h.attempts())
		}
	})
}

func TestHedgedCallsNeverShareReplies(t *testing.T) {
	// Real time, -race: many hedged calls, some attempts slow, each reply
	// must be its own request's.
	h := newHarness(t, hedgeAll(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 3}))
	h.blockAttemptOne = true
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			msg := fmt.Sprint("call-", i)
			var header metadata.MD
			resp, err := h.client.Echo(ctx, &testingv1.EchoRequest{Message: msg}, grpc.Header(&header))
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if resp.GetMessage() != msg {
				t.Errorf("call %d got reply %q", i, resp.GetMessage())
			}
			if len(header.Get("served-attempt")) != 1 {
				t.Errorf("call %d header %v, want one winner's value", i, header)
			}
		})
	}
	wg.Wait()
}

func TestHedgingValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, p := range []HedgePolicy{
			{Delay: 0, MaxAttempts: 2},
			{Delay: time.Millisecond, MaxAttempts: 1},
			{Delay: time.Millisecond, MaxAttempts: 2, Percentile: 1},
		} {
			if _, err := New(hedgeAll(p)); err == nil {
				t.Errorf("New with Hedging(%+v) succeeded, want an error", p)
			}
		}
	})
}
