package engine

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
)

func TestDecide(t *testing.T) {
	p := &Policy{
		MaxAttempts: 3,
		RetryCodes:  NewCodeSet(codes.Unavailable, codes.DeadlineExceeded),
		Backoff:     backoff.Constant(100 * time.Millisecond),
		Hedge:       &Hedge{Delay: time.Second, MaxInFlight: 2},
	}
	unavailable := status.Error(codes.Unavailable, "down")
	failed := outcome{err: unavailable, code: codes.Unavailable}
	open := breaker.ErrOpen
	base := situation{attempts: 1, retries: 1, budgetOK: true}
	with := func(f func(*situation)) situation { s := base; f(&s); return s }
	for _, tc := range []struct {
		name   string
		s      situation
		o      outcome
		want   decision
		wantIs error // errors.Is(decision.err, wantIs)
	}{
		{"success", base, outcome{}, decision{op: opStop}, nil},
		{"retryable: backoff", base, failed, decision{op: opAttempt, delay: 100 * time.Millisecond}, nil},
		{"hedged retryable: at once", with(func(s *situation) { s.hedged = true }), failed, decision{op: opAttempt}, nil},
		{"no connection: at once, no budget needed", with(func(s *situation) { s.budgetOK = false }),
			outcome{err: unavailable, code: codes.Unavailable, noConn: true}, decision{op: opAttempt}, nil},
		{"not retryable", base, outcome{err: status.Error(codes.NotFound, ""), code: codes.NotFound}, decision{op: opStop}, nil},
		{"breaker error from below", base, outcome{err: open, code: codes.Unavailable}, decision{op: opStop}, breaker.ErrOpen},
		{"caller done", with(func(s *situation) { s.callerDone = true }), failed, decision{op: opStop}, nil},
		{"caller done, hedges in flight", with(func(s *situation) { s.callerDone, s.inFlight = true, 1 }), failed, decision{op: opWait}, nil},
		{"attempts used", with(func(s *situation) { s.attempts = 3 }), failed, decision{op: opStop}, nil},
		{"budget", with(func(s *situation) { s.budgetOK = false }), failed, decision{op: opStop, reason: ErrBudgetExhausted}, nil},
		{"budget, hedges in flight", with(func(s *situation) { s.budgetOK, s.inFlight = false, 1 }), failed, decision{op: opWait, reason: ErrBudgetExhausted}, nil},
		{"pushback delay", base, outcome{err: unavailable, code: codes.Unavailable, hasPushback: true, pushback: time.Second}, decision{op: opAttempt, delay: time.Second}, nil},
		{"hedged pushback delay", with(func(s *situation) { s.hedged, s.inFlight = true, 1 }),
			outcome{err: unavailable, code: codes.Unavailable, hasPushback: true, pushback: time.Second}, decision{op: opAttempt, delay: time.Second}, nil},
		{"pushback stop", base, outcome{err: unavailable, code: codes.Unavailable, hasPushback: true, pushback: -1}, decision{op: opStop, reason: ErrPushback}, nil},
		{"pushback stop, hedges in flight", with(func(s *situation) { s.inFlight = 1 }),
			outcome{err: unavailable, code: codes.Unavailable, hasPushback: true, pushback: -1}, decision{op: opWait, reason: ErrPushback}, nil},
		{"stopped by an earlier pushback", with(func(s *situation) { s.pushStopped = true }), failed, decision{op: opStop, reason: ErrPushback}, nil},
		{"delay past the deadline", with(func(s *situation) { s.hasDeadline, s.remaining = true, 50*time.Millisecond }), failed, decision{op: opStop}, nil},
		{"delay within the deadline", with(func(s *situation) { s.hasDeadline, s.remaining = true, time.Second }), failed, decision{op: opAttempt, delay: 100 * time.Millisecond}, nil},
		{"first attempt refused", with(func(s *situation) { s.attempts = 0 }), outcome{err: open, refused: true}, decision{op: opStop}, breaker.ErrOpen},
		{"retry refused", with(func(s *situation) { s.lastErr = unavailable }), outcome{err: open, refused: true}, decision{op: opStop, reason: open}, nil},
		{"hedge refused, others in flight", with(func(s *situation) { s.inFlight, s.lastErr = 1, unavailable }), outcome{err: open, refused: true}, decision{op: opWait, reason: open}, nil},
		{"hedge timer", with(func(s *situation) { s.inFlight = 1 }), outcome{hedgeTimer: true}, decision{op: opAttempt}, nil},
		{"hedge timer, in-flight cap", with(func(s *situation) { s.inFlight = 2 }), outcome{hedgeTimer: true}, decision{op: opWait}, nil},
		{"hedge timer, budget", with(func(s *situation) { s.inFlight, s.budgetOK = 1, false }), outcome{hedgeTimer: true}, decision{op: opWait, reason: ErrBudgetExhausted}, nil},
		{"hedge timer, pushback stopped", with(func(s *situation) { s.inFlight, s.pushStopped = 1, true }), outcome{hedgeTimer: true}, decision{op: opWait}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(p, tc.s, tc.o)
			if got.op != tc.want.op || got.delay != tc.want.delay || got.reason != tc.want.reason {
				t.Errorf("decide = {op %d delay %v reason %v}, want {op %d delay %v reason %v}",
					got.op, got.delay, got.reason, tc.want.op, tc.want.delay, tc.want.reason)
			}
			if got.op == opStop && tc.o.err != nil && got.err == nil {
				t.Errorf("stop without the error")
			}
			if tc.wantIs != nil && !errors.Is(got.err, tc.wantIs) {
				t.Errorf("err %v, want %v", got.err, tc.wantIs)
			}
			if tc.name == "retry refused" && got.err != unavailable {
				t.Errorf("err %v, want the last attempt's error kept", got.err)
			}
		})
	}
}

func TestDecideCallerDoneHedgedKeepsTheCallersStatus(t *testing.T) {
	p := &Policy{MaxAttempts: 3, RetryCodes: NewCodeSet(codes.Unavailable)}
	s := situation{attempts: 2, callerDone: true, hedged: true, callerErr: status.Error(codes.Canceled, "context canceled")}
	d := decide(p, s, outcome{err: status.Error(codes.Unavailable, "down"), code: codes.Unavailable})
	if d.op != opStop || status.Code(d.err) != codes.Canceled {
		t.Fatalf("decide = op %d err %v, want stop with Canceled", d.op, d.err)
	}
	s.hedged = false
	if d := decide(p, s, outcome{err: status.Error(codes.Unavailable, "down"), code: codes.Unavailable}); status.Code(d.err) != codes.Unavailable {
		t.Fatalf("unhedged: err %v, want the attempt's own Unavailable", d.err)
	}
}
