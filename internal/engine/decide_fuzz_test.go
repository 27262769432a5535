package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// FuzzDecide checks decide's invariants (checkDecision) on the policies,
// situations and events that caseFrom builds from the fuzzer's bytes. The
// seed corpus is in testdata/fuzz/FuzzDecide; plain go test runs it.
//
//	go test -run '^$' -fuzz FuzzDecide -fuzztime 60s ./internal/engine/
func FuzzDecide(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, s, ev := caseFrom(b)
		checkDecision(t, p, s, ev, decide(p, s, ev))
	})
}

// TestDecideProperties checks decide's invariants on many random cases,
// drawn as FuzzDecide's are, from a seeded source.
func TestDecideProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64)
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	for range n {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		p, s, ev := caseFrom(b)
		d := decide(p, s, ev)
		if !checkDecision(t, p, s, ev, d) {
			t.Fatalf("input %x", b)
		}
	}
}

// TestDecideCallProperties runs decide as the unary driver does, over
// random whole calls: random outcomes, refusals, delays, a caller that may
// cancel and a deadline that may run out. It checks what holds for a
// whole call: at most MaxAttempts attempts, none started once the caller
// is done or after the deadline, and an error at the end unless the last
// attempt succeeded — the last attempt's error when a refusal ends it.
func TestDecideCallProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20_000 {
		b := make([]byte, 512)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if !simulateCall(t, b) {
			t.Fatalf("call %d: input %x", i, b)
		}
	}
}

// simulateCall runs one call of the unary driver's loop (unary.go) on the
// events read from b and reports whether every check passed.
func simulateCall(t *testing.T, b []byte) bool {
	t.Helper()
	in := &input{b: b}
	p := policyFrom(in)
	p.Hedge = nil
	var (
		now, deadline    time.Duration
		cancelAt         = time.Duration(math.MaxInt64)
		hasDeadline      = in.flag()
		attempts, pushed int
		pushStopped      bool
		last             outcome
	)
	if hasDeadline {
		deadline = in.duration()
	}
	if in.flag() {
		cancelAt = in.duration()
	}
	callerDone := func() bool { return now >= cancelAt || (hasDeadline && now >= deadline) }
	sit := func() situation {
		s := situation{attempts: attempts, retries: attempts - pushed, callerDone: callerDone(),
			budgetOK: in.flag() || in.flag(), pushStopped: pushStopped, last: last}
		if hasDeadline {
			s.hasDeadline, s.remaining = true, deadline-now
		}
		if s.callerDone {
			s.callerErr = status.Error(codes.Canceled, "context canceled")
			if hasDeadline && now >= deadline {
				s.callerErr = status.Error(codes.DeadlineExceeded, "context deadline exceeded")
			}
		}
		return s
	}
	for step := 0; ; step++ {
		if step > 1000 {
			t.Errorf("the call did not end after %d decisions", step)
			return false
		}
		// nextAttempt: a gate may refuse it; then it is not counted.
		attempts++
		var ev event
		if in.intn(8) == 0 {
			attempts--
			ev.outcome = refusalFrom(in)
		} else {
			if attempts > p.MaxAttempts {
				t.Errorf("attempt %d started; MaxAttempts is %d", attempts, p.MaxAttempts)
				return false
			}
			if step > 0 && callerDone() { // the first attempt is not decide's
				t.Errorf("attempt %d started at %v, the caller done (deadline %v, cancel at %v)", attempts, now, deadline, cancelAt)
				return false
			}
			now += in.duration() / 4
			ev.outcome = outcomeFrom(in, in.intn(4))
			if callerDone() && ev.kind != oc.Success {
				ev.kind = oc.CallerGone // as classify says
			}
			last = ev.outcome
		}
		s := sit()
		d := decide(p, s, ev)
		if !checkDecision(t, p, s, ev, d) {
			return false
		}
		if d.reason == ErrPushback {
			pushStopped = true
		}
		switch d.op {
		case opWait:
			t.Errorf("an unhedged call waits with nothing in flight")
			return false
		case opStop:
			return true
		}
		if ev.hasPushback {
			pushed = attempts
		}
		// The driver sleeps d.delay; the caller may go meanwhile, which
		// ends the call with the caller's error (waitStop), not an
		// attempt.
		now += d.delay
		if callerDone() {
			return true
		}
	}
}

// checkDecision checks d = decide(p, s, ev) against the rules every
// decision keeps, reports each broken one and whether all held.
func checkDecision(t *testing.T, p *Policy, s situation, ev event, d decision) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		ok = false
		t.Errorf("decide(%s) = %s: "+format, append([]any{describe(p, s, ev), describeDecision(d)}, args...)...)
	}
	o := ev.outcome
	failure := !ev.hedgeTimer && o.kind != oc.Success
	if d.op > opWait {
		fail("unknown op")
	}
	if d.delay < 0 || (d.delay != 0 && d.op != opAttempt) {
		fail("delay %v", d.delay)
	}
	switch d.op {
	case opAttempt:
		if s.attempts >= p.MaxAttempts {
			fail("another attempt after %d of MaxAttempts %d", s.attempts, p.MaxAttempts)
		}
		if s.callerDone || (!ev.hedgeTimer && o.kind == oc.CallerGone) {
			fail("another attempt once the caller is done")
		}
		if s.hasDeadline && d.delay >= s.remaining {
			fail("a delay of %v with %v left", d.delay, s.remaining)
		}
		if s.pushStopped || (!ev.hedgeTimer && o.hasPushback && o.pushback < 0) {
			fail("another attempt after the server said to stop")
		}
		if !s.budgetOK && (ev.hedgeTimer || !o.noConn) {
			fail("another attempt past an exhausted budget")
		}
		if failure && (!p.RetryCodes.Has(o.code) || errors.Is(o.err, breaker.ErrOpen)) {
			fail("another attempt after code %v / %v", o.code, o.err)
		}
		if failure && o.kind == oc.Refused {
			fail("another attempt after a refusal")
		}
		if failure && o.hasPushback && o.pushback >= 0 && d.delay != o.pushback {
			fail("a delay of %v, the server asked for %v", d.delay, o.pushback)
		}
	case opWait:
		if s.inFlight == 0 {
			fail("waiting with nothing in flight")
		}
	case opStop:
		if ev.hedgeTimer {
			fail("the hedge timer ended the call")
			break
		}
		if (d.err == nil) != (o.kind == oc.Success) || (d.kind == oc.Success) != (o.kind == oc.Success) {
			fail("a stop whose error (%v) or kind (%v) does not match the outcome", d.err, d.kind)
			break
		}
		switch {
		case o.kind == oc.Success:
		case s.callerDone && s.hedged:
			if status.Code(d.err) != status.Code(s.callerErr) {
				fail("a hedged call the caller left ends with code %v, want the caller's %v", status.Code(d.err), status.Code(s.callerErr))
			}
		case o.kind == oc.Refused && o.gate && s.last.err != nil:
			if d.err != s.last.err {
				fail("a refusal ends the call with %v, want the last attempt's %v", d.err, s.last.err)
			}
			if !s.callerDone && d.reason != o.err {
				fail("a refusal ends the call with the reason %v, want the refusal %v", d.reason, o.err)
			}
		case o.kind == oc.CallerGone && s.hedged && s.callerErr != nil:
		case d.err != o.err:
			fail("the call ends with %v, want the attempt's own %v", d.err, o.err)
		}
	}
	return ok
}

// input hands out b a byte at a time, and zeros once b runs out, so that
// every byte string is a case.
type input struct{ b []byte }

func (in *input) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *input) intn(n int) int { return int(in.byte()) % n }
func (in *input) flag() bool     { return in.byte()&1 == 1 }

// duration is 0, a few ms, a few s, a random int63 or the largest.
func (in *input) duration() time.Duration {
	switch in.intn(5) {
	case 0:
		return 0
	case 1:
		return time.Duration(in.byte()) * time.Millisecond
	case 2:
		return time.Duration(in.byte()) * time.Second
	case 3:
		var v uint64
		for range 8 {
			v = v<<8 | uint64(in.byte())
		}
		return time.Duration(v >> 1)
	}
	return math.MaxInt64
}

// policyFrom reads a valid policy: MaxAttempts from 1 to 8 or the
// largest, any set of retry codes, a constant or jittered exponential
// backoff, perhaps hedging.
func policyFrom(in *input) *Policy {
	p := &Policy{MaxAttempts: 1 + in.intn(8)}
	if in.intn(8) == 0 {
		p.MaxAttempts = math.MaxInt
	}
	p.RetryCodes = CodeSet(uint32(in.byte())<<9|uint32(in.byte())<<1) &^ 1
	p.Backoff = backoff.Constant(in.duration())
	if in.flag() {
		j := float64(in.byte()) / 255
		e, err := backoff.NewExponential(backoff.Config{
			BaseDelay: time.Duration(1+in.byte()) * time.Millisecond, Multiplier: 1 + float64(in.intn(4)),
			MaxDelay: time.Duration(1+in.byte()) * time.Second, Jitter: j,
		}, backoff.WithRandom(func() float64 { return j }))
		if err == nil {
			p.Backoff = e
		}
	}
	if in.flag() {
		p.Hedge = &Hedge{Delay: in.duration(), MaxInFlight: 2 + in.intn(3)}
	}
	return p
}

var (
	openErr      = &breaker.OpenError{Key: "dns:///below", State: breaker.StateOpen}
	serverCodes  = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DataLoss}
	requestCodes = []codes.Code{codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.Unauthenticated, codes.FailedPrecondition, codes.Aborted, codes.OutOfRange, codes.Unimplemented}
)

// outcomeFrom reads an attempt's outcome: a success (kind 0), a server's
// failure (1), the request's fault (2) or the caller gone (3).
func outcomeFrom(in *input, kind int) outcome {
	var o outcome
	switch kind {
	case 0:
		return outcome{kind: oc.Success}
	case 1:
		o.kind, o.code = oc.ServerFailure, serverCodes[in.intn(len(serverCodes))]
		o.noConn = o.code == codes.Unavailable && in.flag()
	case 2:
		o.kind, o.code = oc.RequestFault, requestCodes[in.intn(len(requestCodes))]
	default:
		o.kind, o.code = oc.CallerGone, codes.Canceled
		if in.flag() {
			o.code = codes.DeadlineExceeded
		}
	}
	o.err = status.Error(o.code, "attempt failed")
	if o.kind == oc.ServerFailure && in.intn(8) == 0 {
		o.err, o.code = openErr, codes.Unavailable // from a breaker further down
	}
	if in.flag() {
		o.hasPushback, o.pushback = true, in.duration()
		if in.flag() {
			o.pushback = -o.pushback - 1
		}
	}
	return o
}

// refusalFrom reads the outcome of an attempt a gate refused.
func refusalFrom(in *input) outcome {
	err := []error{openErr, budget.ErrExhausted, status.Error(codes.Unavailable, "limited")}[in.intn(3)]
	return refusal(err)
}

// caseFrom reads a policy, a situation and an event that the drivers can
// produce: attempts never past MaxAttempts, attempts in flight only in a
// hedged call and never more than were made, a hedge timer only with
// attempts in flight, the caller done once the deadline has passed, the
// latest outcome the event's own (or, for a refusal or the hedge timer,
// an earlier failure, if any attempt has ended).
func caseFrom(b []byte) (*Policy, situation, event) {
	in := &input{b: b}
	p := policyFrom(in)
	s := situation{hedged: p.Hedge != nil, budgetOK: in.flag(), pushStopped: in.flag(), callerDone: in.flag()}
	upTo := func(n int) int { return in.intn(min(n, 30) + 1) } // 0..n, n at most 30
	var ev event
	kind := in.intn(6)
	switch {
	case kind == 5 && s.hedged: // the hedge timer, attempts in flight
		ev.hedgeTimer = true
		s.attempts = 1 + upTo(p.MaxAttempts-1)
		s.inFlight = 1 + upTo(min(s.attempts, p.Hedge.MaxInFlight)-1)
	case kind == 4 || kind == 5: // a refusal of the next attempt
		ev.outcome = refusalFrom(in)
		s.attempts = upTo(p.MaxAttempts - 1)
		if s.hedged {
			s.inFlight = upTo(s.attempts)
		}
	default:
		ev.outcome = outcomeFrom(in, kind)
		s.attempts = 1 + upTo(p.MaxAttempts-1)
		if s.hedged {
			s.inFlight = upTo(s.attempts - 1)
		}
		s.last = ev.outcome
	}
	if s.last.err == nil && s.attempts > s.inFlight {
		s.last = outcomeFrom(in, 1+in.intn(3))
	}
	s.retries = upTo(s.attempts)
	if s.hasDeadline = in.flag(); s.hasDeadline {
		s.remaining = in.duration()
		if in.flag() {
			s.remaining = -s.remaining
		}
		s.callerDone = s.callerDone || s.remaining <= 0
	}
	if s.callerDone {
		s.callerErr = status.Error(codes.Canceled, "context canceled")
		if s.hasDeadline && s.remaining <= 0 {
			s.callerErr = status.Error(codes.DeadlineExceeded, "context deadline exceeded")
		}
	}
	return p, s, ev
}

func describe(p *Policy, s situation, ev event) string {
	h := "none"
	if p.Hedge != nil {
		h = fmt.Sprintf("%v×%d", p.Hedge.Delay, p.Hedge.MaxInFlight)
	}
	e := "hedge timer"
	if !ev.hedgeTimer {
		e = fmt.Sprintf("%v %v noConn=%v pushback=%v/%v err=%v", ev.kind, ev.code, ev.noConn, ev.hasPushback, ev.pushback, ev.err)
	}
	return fmt.Sprintf("policy{max %d codes %v backoff %v hedge %s}, situation{attempts %d retries %d inFlight %d hedged %v callerDone %v budgetOK %v pushStopped %v deadline %v/%v last %v}, %s",
		p.MaxAttempts, p.RetryCodes.Codes(), p.Backoff, h, s.attempts, s.retries, s.inFlight, s.hedged, s.callerDone, s.budgetOK,
		s.pushStopped, s.hasDeadline, s.remaining, s.last.err, e)
}

func describeDecision(d decision) string {
	return fmt.Sprintf("{op %d delay %v err %v reason %v kind %v}", d.op, d.delay, d.err, d.reason, d.kind)
}
