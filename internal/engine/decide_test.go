package engine

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

func TestDecide(t *testing.T) {
	p := &Policy{
		MaxAttempts: 3,
		RetryCodes:  NewCodeSet(codes.Unavailable, codes.DeadlineExceeded),
		Backoff:     backoff.Constant(100 * time.Millisecond),
		Hedge:       &Hedge{Delay: time.Second, MaxInFlight: 2},
	}
	unavailable := status.Error(codes.Unavailable, "down")
	failed := outcome{err: unavailable, code: codes.Unavailable, kind: oc.ServerFailure}
	pushed := func(d time.Duration) outcome { o := failed; o.hasPushback, o.pushback = true, d; return o }
	refused := outcome{err: breaker.ErrOpen, code: codes.Unavailable, kind: oc.Refused, gate: true}
	passedOn := outcome{err: unavailable, code: codes.Unavailable, kind: oc.Refused}
	timer := event{hedgeTimer: true}
	open := breaker.ErrOpen
	base := situation{attempts: 1, retries: 1, budgetOK: true}
	with := func(f func(*situation)) situation { s := base; f(&s); return s }
	for _, tc := range []struct {
		name   string
		s      situation
		ev     event
		want   decision
		wantIs error // errors.Is(decision.err, wantIs)
	}{
		{"success", base, event{}, decision{op: opStop}, nil},
		{"retryable: backoff", base, event{outcome: failed}, decision{op: opAttempt, delay: 100 * time.Millisecond}, nil},
		{"hedged retryable: at once", with(func(s *situation) { s.hedged = true }), event{outcome: failed}, decision{op: opAttempt}, nil},
		{"no connection: at once, no budget needed", with(func(s *situation) { s.budgetOK = false }),
			event{outcome: outcome{err: unavailable, code: codes.Unavailable, kind: oc.ServerFailure, noConn: true}}, decision{op: opAttempt}, nil},
		{"not retryable", base, event{outcome: outcome{err: status.Error(codes.NotFound, ""), code: codes.NotFound, kind: oc.RequestFault}}, decision{op: opStop, kind: oc.RequestFault}, nil},
		{"breaker error from below", base, event{outcome: outcome{err: open, code: codes.Unavailable, kind: oc.ServerFailure}}, decision{op: opStop, kind: oc.ServerFailure}, breaker.ErrOpen},
		{"caller gone", base, event{outcome: outcome{err: unavailable, code: codes.Unavailable, kind: oc.CallerGone}}, decision{op: opStop, kind: oc.CallerGone}, nil},
		{"caller done", with(func(s *situation) { s.callerDone = true }), event{outcome: failed}, decision{op: opStop, kind: oc.CallerGone}, nil},
		{"caller done, hedges in flight", with(func(s *situation) { s.callerDone, s.inFlight = true, 1 }), event{outcome: failed}, decision{op: opWait}, nil},
		{"attempts used", with(func(s *situation) { s.attempts = 3 }), event{outcome: failed}, decision{op: opStop, kind: oc.ServerFailure}, nil},
		{"budget", with(func(s *situation) { s.budgetOK = false }), event{outcome: failed}, decision{op: opStop, reason: ErrBudgetExhausted, kind: oc.ServerFailure}, nil},
		{"budget, hedges in flight", with(func(s *situation) { s.budgetOK, s.inFlight = false, 1 }), event{outcome: failed}, decision{op: opWait, reason: ErrBudgetExhausted}, nil},
		{"pushback delay", base, event{outcome: pushed(time.Second)}, decision{op: opAttempt, delay: time.Second}, nil},
		{"hedged pushback delay", with(func(s *situation) { s.hedged, s.inFlight = true, 1 }),
			event{outcome: pushed(time.Second)}, decision{op: opAttempt, delay: time.Second}, nil},
		{"pushback stop", base, event{outcome: pushed(-1)}, decision{op: opStop, reason: ErrPushback, kind: oc.ServerFailure}, nil},
		{"pushback stop, hedges in flight", with(func(s *situation) { s.inFlight = 1 }),
			event{outcome: pushed(-1)}, decision{op: opWait, reason: ErrPushback}, nil},
		{"stopped by an earlier pushback", with(func(s *situation) { s.pushStopped = true }), event{outcome: failed}, decision{op: opStop, reason: ErrPushback, kind: oc.ServerFailure}, nil},
		{"delay past the deadline", with(func(s *situation) { s.hasDeadline, s.remaining = true, 50*time.Millisecond }), event{outcome: failed}, decision{op: opStop, kind: oc.ServerFailure}, nil},
		{"delay within the deadline", with(func(s *situation) { s.hasDeadline, s.remaining = true, time.Second }), event{outcome: failed}, decision{op: opAttempt, delay: 100 * time.Millisecond}, nil},
		{"first attempt refused", with(func(s *situation) { s.attempts = 0 }), event{outcome: refused}, decision{op: opStop, kind: oc.Refused}, breaker.ErrOpen},
		{"retry refused", with(func(s *situation) { s.last = failed }), event{outcome: refused}, decision{op: opStop, reason: open, kind: oc.Refused}, nil},
		{"retry refused as the caller leaves", with(func(s *situation) { s.last, s.callerDone = failed, true }), event{outcome: refused}, decision{op: opStop, kind: oc.CallerGone}, nil},
		{"a service's refusal passed on", with(func(s *situation) { s.last = passedOn }), event{outcome: passedOn}, decision{op: opStop, kind: oc.Refused}, nil},
		{"hedge refused, others in flight", with(func(s *situation) { s.inFlight, s.last = 1, failed }), event{outcome: refused}, decision{op: opWait, reason: open}, nil},
		{"hedge timer", with(func(s *situation) { s.inFlight = 1 }), timer, decision{op: opAttempt}, nil},
		{"hedge timer, in-flight cap", with(func(s *situation) { s.inFlight = 2 }), timer, decision{op: opWait}, nil},
		{"hedge timer, budget", with(func(s *situation) { s.inFlight, s.budgetOK = 1, false }), timer, decision{op: opWait, reason: ErrBudgetExhausted}, nil},
		{"hedge timer, pushback stopped", with(func(s *situation) { s.inFlight, s.pushStopped = 1, true }), timer, decision{op: opWait}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(p, tc.s, tc.ev)
			if got.op != tc.want.op || got.delay != tc.want.delay || got.reason != tc.want.reason || got.kind != tc.want.kind {
				t.Errorf("decide = {op %d delay %v reason %v kind %v}, want {op %d delay %v reason %v kind %v}",
					got.op, got.delay, got.reason, got.kind, tc.want.op, tc.want.delay, tc.want.reason, tc.want.kind)
			}
			if got.op == opStop && tc.ev.err != nil && got.err == nil {
				t.Errorf("stop without the error")
			}
			if tc.wantIs != nil && !errors.Is(got.err, tc.wantIs) {
				t.Errorf("err %v, want %v", got.err, tc.wantIs)
			}
			if (tc.name == "retry refused" || tc.name == "retry refused as the caller leaves") && got.err != unavailable {
				t.Errorf("err %v, want the last attempt's error kept", got.err)
			}
		})
	}
}

func TestDecideCallerDoneHedgedKeepsTheCallersStatus(t *testing.T) {
	p := &Policy{MaxAttempts: 3, RetryCodes: NewCodeSet(codes.Unavailable)}
	s := situation{attempts: 2, callerDone: true, hedged: true, callerErr: status.Error(codes.Canceled, "context canceled")}
	down := event{outcome: outcome{err: status.Error(codes.Unavailable, "down"), code: codes.Unavailable, kind: oc.ServerFailure}}
	d := decide(p, s, down)
	if d.op != opStop || status.Code(d.err) != codes.Canceled {
		t.Fatalf("decide = op %d err %v, want stop with Canceled", d.op, d.err)
	}
	s.hedged = false
	if d := decide(p, s, down); status.Code(d.err) != codes.Unavailable {
		t.Fatalf("unhedged: err %v, want the attempt's own Unavailable", d.err)
	}
}
