package interceptors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	"github.com/grpc-resilience/resilience/limiter"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
	"github.com/grpc-resilience/resilience/throttle"
)

// A call refused by the concurrency limit fails at once with Unavailable
// and limiter.ErrLimited, makes no attempt, and is nobody's failure: a
// breaker that opens at the first failure stays closed, and the retry
// budget keeps its tokens.
func TestLimiterRefusalIsNobodysFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithConcurrencyLimit(limiter.Config{Fixed: 1, Queue: limiter.NoQueue}),
			WithBreaker(tripped()), WithRetryBudget(budget.Config{MaxTokens: 3, TokenRatio: 1}))
		release := r.blockCalls()
		held := r.call(context.Background())
		r.await(t, 1)
		for range 10 {
			var attempts int
			start := time.Now()
			_, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}, Attempts(&attempts))
			if status.Code(err) != codes.Unavailable || !errors.Is(err, limiter.ErrLimited) || attempts != 0 || time.Since(start) != 0 {
				t.Fatalf("over the limit: %v, %d attempts after %v; want Unavailable matching ErrLimited at once, no attempt", err, attempts, time.Since(start))
			}
		}
		release()
		if err := result(t, held); err != nil {
			t.Fatal(err)
		}
		if st := r.m.Breakers().State(r.conn.Target()); st != breaker.StateClosed {
			t.Errorf("breaker %v after refusals, want closed", st)
		}
		// The budget (3 tokens: two failures would stop retries) is whole:
		// a failing call is still retried.
		r.failNext(1, codes.Unavailable)
		var attempts int
		if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}, Attempts(&attempts), Backoff(backoff.Constant(0)), NoBreaker()); err != nil || attempts != 2 {
			t.Errorf("a failing call after the refusals: %v after %d attempts, want retried to success", err, attempts)
		}
	})
}

// An attempt over the limit waits in the queue for a permit, and its call
// span says so.
func TestLimiterQueueWaitsForAPermit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		r := newRig(t, WithConcurrencyLimit(limiter.Config{Fixed: 1}),
			WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))
		if err := r.faults.SetLatency(allMethods, 1, 30*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		first := r.call(context.Background())
		r.await(t, 1)
		start := time.Now()
		second := r.call(context.Background())
		r.awaitAfter(t, 2, 30*time.Millisecond) // once the first gave its permit back
		for _, res := range []<-chan error{first, second} {
			if err := result(t, res); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took != 60*time.Millisecond {
			t.Errorf("the queued call took %v, want 30 ms waiting and 30 ms served", took)
		}
		queued := 0
		for _, s := range sr.Ended() {
			for _, ev := range s.Events() {
				if ev.Name == "resilience.limiter.queued" {
					queued++
				}
			}
		}
		if queued != 1 {
			t.Errorf("%d resilience.limiter.queued events, want 1", queued)
		}
	})
}

// Closing the connection ends a wait for a permit.
func TestCloseEndsALimiterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithConcurrencyLimit(limiter.Config{Fixed: 1}))
		r.blockFirst(1)
		first := r.call(context.Background())
		r.await(t, 1)
		waiter := r.call(context.Background())
		synctest.Wait() // in the limiter's queue
		r.conn.Close()
		for _, res := range []<-chan error{first, waiter} {
			if err := result(t, res); status.Code(err) != codes.Canceled {
				t.Fatalf("call on a closed connection: %v, want Canceled", err)
			}
		}
	})
}

// A fallback answers a call the limit refused: the downstream cannot take
// it now.
func TestFallbackAnswersALimiterRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := fallbackRig(t, 0, WithConcurrencyLimit(limiter.Config{Fixed: 1, Queue: limiter.NoQueue}))
		r.blockFirst(1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		held := r.call(ctx)
		r.await(t, 1)
		if msg, info, err := r.echoFallback(context.Background(), "hello"); err != nil || !info.Used || msg != "hello" {
			t.Errorf("refused call with a fallback: %q, %v, %+v; want the stale copy", msg, err, info)
		}
		cancel()
		<-held
	})
}

// Throttling refuses attempts at a downstream that accepts too few;
// refused attempts are not failures.
func TestThrottleRefusesAtAFailingDownstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithThrottle(throttle.Config{}), WithoutBreaker(), MaxAttempts(1),
			withRandom(func() float64 { return 0.5 }))
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		throttled := 0
		for range 30 {
			_, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{})
			if errors.Is(err, throttle.ErrThrottled) {
				throttled++
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("throttled call: %v, want Unavailable", err)
				}
			}
		}
		// Every attempt fails: past the first two requests the refusal
		// probability stays above the 0.5 drawn.
		if throttled != 28 || r.attempts() != 2 {
			t.Fatalf("%d of 30 calls throttled, %d attempts at the server; want 28 and 2", throttled, r.attempts())
		}
	})
}

// A half-open breaker's probe passes the throttle, and a probe that
// succeeds resets it: a downstream that came back is not held back by the
// counts of its outage.
func TestThrottleYieldsToTheBreakersProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := breaker.DefaultConfig()
		cfg.ConsecutiveFailures, cfg.OpenTimeout, cfg.HalfOpenProbes = 2, time.Second, 1
		r := newRig(t, WithThrottle(throttle.Config{}), WithBreaker(cfg), MaxAttempts(1),
			WithReadyWait(0), withRandom(func() float64 { return 0.5 }))
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		for i := 0; r.m.Breakers().State(r.conn.Target()) != breaker.StateOpen; i++ {
			if i > 100 {
				t.Fatal("breaker never opened")
			}
			_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{})
		}
		time.Sleep(time.Second) // half-open
		r.reset()
		for i := range 5 {
			if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
				t.Fatalf("call %d after the downstream came back: %v, want the probe let through and the throttle reset", i, err)
			}
		}
	})
}

// A bulkhead per method: one method that takes every place of its own
// leaves the others theirs.
func TestBulkheadPerMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithConcurrencyLimit(limiter.Config{Fixed: 1, Queue: limiter.NoQueue}), WithConcurrencyLimitPerMethod())
		r.blockFirst(1)
		ctx, cancel := context.WithCancel(context.Background())
		held := r.call(ctx) // Echo takes its one place
		r.await(t, 1)
		if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); !errors.Is(err, limiter.ErrLimited) {
			t.Fatalf("a second Echo: %v, want refused by Echo's bulkhead", err)
		}
		// Another unary method has a place of its own (the server does
		// not know it: Unimplemented, after the bulkhead let it through).
		err := r.conn.Invoke(context.Background(), "/resilience.testing.v1.EchoService/Other",
			&testingv1.EchoRequest{}, &testingv1.EchoResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("another method while Echo's bulkhead is full: %v, want it through (Unimplemented)", err)
		}
		cancel()
		<-held
	})
}

// A breaker that opened while the connection was down probes as soon as
// the connection is back, whatever is left of its open period. Here the
// connection has been down for longer than the ready wait, so the calls
// the breaker refuses do not wait for it; they make it reconnect about
// once per probe interval, and the first that finds it back turns the
// breaker half-open and goes as its probe.
func TestBreakerProbesAsSoonAsTheConnectionIsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lis := resiliencetest.ListenMemory()
		serveEcho(t, lis)
		cfg := breaker.DefaultConfig()
		cfg.ConsecutiveFailures, cfg.OpenTimeout, cfg.OpenJitter = 1, time.Hour, backoff.NoJitter
		m := MustNew(WithBreaker(cfg), WithReadyWait(50*time.Millisecond), MaxAttempts(1))
		conn := dialListener(t, lis, m.DialOptions()...)
		client := testingv1.NewEchoServiceClient(conn)
		if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
		lis.Stop()
		// A call finds the connection down (not counted: it may be a
		// restart); the next waits 50 ms for it, then fails fast: that
		// failure opens the breaker, for an hour.
		for i := 0; m.Breakers().State(conn.Target()) != breaker.StateOpen; i++ {
			if i == 3 {
				t.Fatal("the breaker never opened while the server was gone")
			}
			if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.Unavailable {
				t.Fatalf("call while the server is gone: %v, want Unavailable", err)
			}
		}
		time.Sleep(time.Second)
		if err := lis.Restart(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		for {
			_, err := client.Echo(context.Background(), &testingv1.EchoRequest{})
			if err == nil {
				break
			}
			if !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("call after the restart: %v, want refused by the breaker or answered", err)
			}
			if time.Since(back) > time.Second {
				t.Fatal("still refused a second after the server came back (open period: an hour)")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(back); took > 200*time.Millisecond {
			t.Errorf("first success %v after the server came back, want within about a reconnect probe interval", took)
		}
		t.Logf("first success %v after the server came back", time.Since(back))
	})
}

// A call that an open breaker meets while the connection is down — the
// server failed, which opened the breaker, then restarted — waits for the
// connection and succeeds when the server is back within its deadline and
// the ready wait, instead of failing at once; nothing reaches the server
// meanwhile.
func TestACallWaitsOutARestartThatOpenedTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lis := resiliencetest.ListenMemory()
		faults, err := resiliencetest.NewFaults()
		if err != nil {
			t.Fatal(err)
		}
		serveEcho(t, lis, faults.ServerOptions()...)
		cfg := breaker.DefaultConfig()
		cfg.ConsecutiveFailures, cfg.OpenTimeout, cfg.OpenJitter = 1, time.Hour, backoff.NoJitter
		m := MustNew(WithBreaker(cfg), WithReadyWait(time.Second), MaxAttempts(1))
		conn := dialListener(t, lis, m.DialOptions()...)
		client := testingv1.NewEchoServiceClient(conn)
		if err := faults.InjectNext(allMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("call to the failing server: %v, want Unavailable", err)
		}
		if s := m.Breakers().State(conn.Target()); s != breaker.StateOpen {
			t.Fatalf("breaker %v after the server's failure, want open", s)
		}
		lis.Stop()
		synctest.Wait() // the client has seen its connection go
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = lis.Restart()
		}()
		start := time.Now()
		if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			t.Fatalf("a call during the restart, with time to wait: %v, want answered once the server is back", err)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 450*time.Millisecond {
			t.Errorf("answered after %v, want soon after the server came back at 300ms", took)
		}
		if n := faults.Attempts(allMethods); n != 2 {
			t.Errorf("%d attempts reached the server, want 2: the failure and the call after the restart", n)
		}
	})
}

// lostConnection, in a synctest bubble, serves Echo on an in-memory
// listener to a client with a 1s ready wait, one attempt per call and no
// breaker, makes one call, and stops the listener: the client has seen its
// connection go when it returns. call makes a call and says how long it
// took.
func lostConnection(t *testing.T) (lis *resiliencetest.Listener, call func() (time.Duration, error)) {
	t.Helper()
	lis = resiliencetest.ListenMemory()
	serveEcho(t, lis)
	m := MustNew(WithoutBreaker(), WithReadyWait(time.Second), MaxAttempts(1))
	client := testingv1.NewEchoServiceClient(dialListener(t, lis, m.DialOptions()...))
	if _, err := client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	lis.Stop()
	synctest.Wait()
	return lis, func() (time.Duration, error) {
		start := time.Now()
		_, err := client.Echo(context.Background(), &testingv1.EchoRequest{})
		return time.Since(start), err
	}
}

// The ready wait is counted from when the connection was first found
// down, not per call: once it has been down that long, calls no longer
// wait for it but fail at once, and still find the server within about a
// reconnect probe interval of its return.
func TestCallsFailFastOnceTheConnectionWasDownForTheReadyWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lis, call := lostConnection(t)
		// The first call finds the connection down (its one attempt fails
		// fast); the second waits for it until it has been down 1s.
		if _, err := call(); status.Code(err) != codes.Unavailable {
			t.Fatalf("first call with the server gone: %v, want Unavailable", err)
		}
		time.Sleep(400 * time.Millisecond)
		if took, err := call(); status.Code(err) != codes.Unavailable || took != 600*time.Millisecond {
			t.Fatalf("call 400ms into the outage: %v after %v, want Unavailable after the 600ms left of the ready wait", err, took)
		}
		for range 3 {
			if took, err := call(); status.Code(err) != codes.Unavailable || took != 0 {
				t.Fatalf("call after the ready wait: %v after %v, want Unavailable at once", err, took)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := lis.Restart(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		for {
			took, err := call()
			if err == nil {
				break
			}
			if took != 0 {
				t.Fatalf("call after the restart failed after %v, want at once or answered", took)
			}
			if time.Since(back) > 3*time.Second {
				t.Fatal("no call answered 3s after the server came back")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(back); took > 200*time.Millisecond {
			t.Errorf("first success %v after the server came back, want within about a reconnect probe interval", took)
		}
		// Back up: the next outage gets a whole ready wait again.
		lis.Stop()
		synctest.Wait()
		_, _ = call() // finds it down
		if took, err := call(); status.Code(err) != codes.Unavailable || took != time.Second {
			t.Errorf("call in a new outage: %v after %v, want Unavailable after a whole ready wait (1s)", err, took)
		}
	})
}

// A call that finds the connection down more than a ready wait after any
// call last did cannot tell whether it came back meanwhile: it counts a
// new outage and waits a whole ready wait again, where calls made
// throughout the outage fail at once.
func TestAnOutageUnseenForAReadyWaitCountsAsNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, echo := lostConnection(t)
		call := func() time.Duration {
			took, err := echo()
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call with the server gone: %v, want Unavailable", err)
			}
			return took
		}
		call() // finds it down
		if took := call(); took != time.Second {
			t.Fatalf("call in the outage took %v, want the ready wait (1s)", took)
		}
		if took := call(); took != 0 {
			t.Fatalf("call after the ready wait took %v, want at once", took)
		}
		time.Sleep(1500 * time.Millisecond) // no call sees the connection
		if took := call(); took != time.Second {
			t.Errorf("first call 1.5s after the last one took %v, want a whole ready wait (1s) again", took)
		}
	})
}

// A hedge takes a free place under the concurrency limit or none: it
// never waits in the limiter's queue (the call's slowness may be that
// queue), and its refusal is not fatal to the call.
func TestHedgeNeverWaitsForAPermit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		r := newRig(t, WithConcurrencyLimit(limiter.Config{Fixed: 1}), hedging(10*time.Millisecond, 2),
			WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))
		if err := r.faults.SetLatency(allMethods, 1, 30*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		var attempts int
		if err := result(t, r.call(context.Background(), Attempts(&attempts))); err != nil {
			t.Fatalf("hedged call whose hedge found no place: %v, want the first attempt's answer", err)
		}
		if n := r.attempts(); n != 1 || attempts != 1 {
			t.Errorf("%d attempts at the server, %d counted; want 1 and 1", n, attempts)
		}
		if got := callEvents(sr.Ended(), "resilience.limiter.queued"); len(got) != 0 {
			t.Errorf("queue events %q: a hedge waited for a place", got)
		}
		// A hedge is tried at every hedge delay (10, 20, 30 ms) while the
		// first attempt holds the one place; each is refused at once.
		if got := callEvents(sr.Ended(), "resilience.refused"); len(got) != 3 {
			t.Errorf("refusal events %q, want the three hedges'", got)
		}
	})
}

// A restart resets the target's concurrency limit and throttle: what they
// learned of the server that went away (a limit cut while it was
// overloaded, refusals it answered) would otherwise refuse the calls that
// the ready wait releases at the one that came back.
func TestRestartResetsTheLimitAndTheThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTelemetryEnv(t)
		m := MustNew(e.options(WithConcurrencyLimit(limiter.Config{InitialLimit: 20}), WithThrottle(throttle.Config{}),
			WithoutBreaker(), MaxAttempts(1), WithReadyWait(time.Second),
			withRandom(func() float64 { return 0.99 }))...) // the throttle lets every call through
		lis := resiliencetest.ListenMemory()
		h := newServer(t, lis)
		h.dial(t, lis, m.DialOptions()...)
		target := "resilience.target=" + h.conn.Target()
		gauges := func() (limit, probability string) {
			for _, l := range e.collectMetrics(t) {
				if v, ok := strings.CutPrefix(l, telemetry.MetricLimiterLimit+" {"+target+"} "); ok {
					limit = v
				}
				if v, ok := strings.CutPrefix(l, telemetry.MetricThrottleProbability+" {"+target+"} "); ok {
					probability = v
				}
			}
			return limit, probability
		}
		// An overloaded server: every attempt is refused with
		// ResourceExhausted, each cutting the limit by a tenth.
		h.failNext(20, codes.ResourceExhausted)
		for range 20 {
			if _, err := h.client.Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("call to the overloaded server: %v, want ResourceExhausted", err)
			}
		}
		if limit, p := gauges(); limit != "2" || p == "0" {
			t.Fatalf("limit %s, throttle probability %s after 20 overloaded attempts, want 2 and above 0", limit, p)
		}
		lis.Stop()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := h.client.Echo(ctx, &testingv1.EchoRequest{}); err == nil {
			t.Fatal("a call while the server is gone succeeded")
		}
		if err := lis.Restart(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			t.Fatalf("call after the restart: %v", err)
		}
		if limit, p := gauges(); limit != "20" || p != "0" {
			t.Errorf("limit %s, throttle probability %s after the restart, want the initial 20 and 0", limit, p)
		}
	})
}
