package interceptors

import (
	"context"
	"errors"
	"math"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/internal/telemetry"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// These tests drive the engine through the public interceptors against
// resiliencetest's fault server in memory, each in a testing/synctest
// bubble: time moves only while every goroutine of the test waits, so a
// wait of an hour passes at once and elapsed times are exact.

// rig is a harness whose client goes through a Middleware.
type rig struct {
	*harness
	m *Middleware
}

// newRig returns a rig whose client goes through a Middleware of opts. Call
// it inside the test's bubble.
func newRig(t *testing.T, opts ...Option) *rig {
	t.Helper()
	m := MustNew(opts...)
	return &rig{harness: newHarnessDial(t, m.DialOptions()...), m: m}
}

// await waits for attempt want (counted by the server since its last
// reset) to arrive, and checks that no later one did.
func (r *rig) await(t *testing.T, want int) {
	t.Helper()
	r.waitAttempts(t, want)
	if n := r.attempts(); n != want {
		t.Fatalf("attempt %d reached the server, want %d", n, want)
	}
}

// awaitAfter is await for an attempt that must arrive exactly d from now.
func (r *rig) awaitAfter(t *testing.T, want int, d time.Duration) {
	t.Helper()
	start := time.Now()
	r.await(t, want)
	if took := time.Since(start); took != d {
		t.Fatalf("attempt %d arrived after %v, want %v", want, took, d)
	}
}

// hangThenFail makes the next attempt hang, the one after fail with
// Unavailable and the pushback trailer (if not empty), and later attempts
// succeed.
func (r *rig) hangThenFail(pushback string) {
	r.blockFirst(1)
	f := resiliencetest.Fail(codes.Unavailable)
	if pushback != "" {
		f = f.WithPushback(pushback)
	}
	r.inject(1, f)
}

// call runs an Echo call on its own goroutine.
func (r *rig) call(ctx context.Context, opts ...grpc.CallOption) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := r.client.Echo(ctx, &testingv1.EchoRequest{Message: "hello"}, opts...)
		out <- err
	}()
	return out
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(guard):
		t.Fatal("call did not return")
		return nil
	}
}

func hedging(d time.Duration, inFlight int) Option {
	return WithMethodPolicy(MatchMethods(echoMethod), Hedging(HedgePolicy{Delay: d, MaxAttempts: inFlight}))
}

// tripped returns breaker settings that open at the first failure and let
// one probe through after exactly a second.
func tripped() breaker.Config {
	c := breaker.DefaultConfig()
	c.ConsecutiveFailures, c.OpenTimeout, c.HalfOpenProbes = 1, time.Second, 1
	c.OpenJitter = backoff.NoJitter
	return c
}

// openThenHalfOpen trips the breaker with one failed call and waits for
// its half-open period.
func (r *rig) openThenHalfOpen(t *testing.T) {
	t.Helper()
	r.failNext(1, codes.Unavailable)
	if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}, MaxAttempts(1)); status.Code(err) != codes.Unavailable {
		t.Fatalf("tripping call: %v", err)
	}
	if st := r.m.Breakers().State(r.conn.Target()); st != breaker.StateOpen {
		t.Fatalf("breaker %v after a failure, want open", st)
	}
	time.Sleep(time.Second)
}

func TestBreakerOpenPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithBreaker(tripped()))
		r.failNext(1, codes.Unavailable)
		_, _ = r.client.Echo(context.Background(), &testingv1.EchoRequest{}, MaxAttempts(1))
		time.Sleep(time.Second - time.Nanosecond)
		if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("call within the open period: %v, want ErrOpen", err)
		}
		time.Sleep(time.Nanosecond)
		if _, err := r.client.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			t.Fatalf("call once the open period is over: %v, want the probe to pass", err)
		}
	})
}

func TestHedgeRefusedByBreakerIsNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		r := newRig(t, WithBreaker(tripped()), WithReadyWait(0), hedging(10*time.Millisecond, 2),
			WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		r.openThenHalfOpen(t)
		release := r.blockCalls() // the primary is the breaker's one probe
		res := r.call(context.Background())
		r.await(t, 2)
		time.Sleep(10 * time.Millisecond) // the hedge is refused: the probe slot is taken
		synctest.Wait()
		rejections := func() int64 {
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			for _, sm := range rm.ScopeMetrics {
				for _, mm := range sm.Metrics {
					if s, ok := mm.Data.(metricdata.Sum[int64]); ok && mm.Name == telemetry.MetricBreakerRejections {
						return s.DataPoints[0].Value
					}
				}
			}
			return 0
		}
		if rejections() == 0 {
			t.Fatal("the hedge was not refused")
		}
		release()
		if err := result(t, res); err != nil {
			t.Fatalf("hedged call whose hedge the breaker refused: %v, want the primary's success", err)
		}
	})
}

func TestHedgeWaitingForBreakerDoesNotDelayThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithBreaker(tripped()), WithReadyWait(time.Hour), hedging(10*time.Millisecond, 2))
		r.openThenHalfOpen(t)
		release := r.blockCalls()
		res := r.call(context.Background())
		r.await(t, 2)
		time.Sleep(10 * time.Millisecond)
		synctest.Wait() // the hedge waits for the probe slot
		start := time.Now()
		release() // the primary answers: the call returns now
		if err := result(t, res); err != nil {
			t.Fatalf("hedged call: %v", err)
		}
		if took := time.Since(start); took != 0 {
			t.Fatalf("the call returned %v after the primary answered, want at once", took)
		}
	})
}

func TestHedgedNegativePushbackStopsHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, hedging(10*time.Millisecond, 3))
		r.failAll(resiliencetest.Fail(codes.Unavailable).WithPushback("-1"))
		var attempts int
		err := result(t, r.call(context.Background(), Attempts(&attempts)))
		if status.Code(err) != codes.Unavailable || !errors.Is(err, ErrPushback) || attempts != 1 {
			t.Fatalf("err %v after %d attempts, want Unavailable with ErrPushback after 1", err, attempts)
		}
		if n := r.attempts(); n != 1 {
			t.Errorf("server saw %d attempts, want 1", n)
		}
	})
}

func TestHedgedPushbackDelaysTheNextHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, hedging(50*time.Millisecond, 3))
		r.hangThenFail("400")
		res := r.call(context.Background())
		r.await(t, 1)
		r.awaitAfter(t, 2, 50*time.Millisecond)
		r.awaitAfter(t, 3, 400*time.Millisecond) // not the 50ms hedge delay
		if err := result(t, res); err != nil {
			t.Fatalf("hedged call: %v", err)
		}
	})
}

func TestHedgeFailureStartsTheNextAtOnceWhilePrimaryRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, hedging(50*time.Millisecond, 3))
		r.hangThenFail("")
		var attempts int
		res := r.call(context.Background(), Attempts(&attempts))
		r.await(t, 1)
		r.awaitAfter(t, 2, 50*time.Millisecond)
		r.awaitAfter(t, 3, 0) // at once
		if err := result(t, res); err != nil || attempts != 3 {
			t.Fatalf("hedged call: %v after %d attempts, want success after 3", err, attempts)
		}
	})
}

func TestCancelledHedgedCallReturnsCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, hedging(50*time.Millisecond, 2))
		r.blockFirst(1)
		r.failAll(resiliencetest.Fail(codes.Unavailable))
		ctx, cancel := context.WithCancel(context.Background())
		res := r.call(ctx)
		r.await(t, 1)
		r.await(t, 2)
		synctest.Wait() // the hedge has failed; the first attempt hangs
		cancel()
		if err := result(t, res); status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled hedged call: %v, want Canceled", err)
		}
	})
}

func TestHedgingWithHugeMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, n := range []int{1 << 18, math.MaxInt} {
			r := newRig(t, MaxAttempts(n), hedging(time.Hour, n))
			if err := result(t, r.call(context.Background())); err != nil {
				t.Fatalf("MaxAttempts %d: %v", n, err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 10 {
				if err := result(t, r.call(context.Background())); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 256<<10 {
				t.Errorf("MaxAttempts %d: %d bytes allocated per call, want memory bounded by what is in flight", n, per)
			}
		}
	})
}

func TestUnneededHedgeStartsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := MustNew(hedging(time.Hour, 3))
		ui := m.UnaryClientInterceptor()
		for _, tc := range []struct {
			name string
			opts []grpc.CallOption
		}{{"plain", []grpc.CallOption{MaxAttempts(1)}}, {"hedged", nil}} {
			before := runtime.NumGoroutine()
			during := -1
			invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				during = runtime.NumGoroutine()
				return nil
			}
			if err := ui(context.Background(), echoMethod, &testingv1.EchoRequest{}, &testingv1.EchoResponse{}, nil, invoker, tc.opts...); err != nil {
				t.Fatal(err)
			}
			if during != before {
				t.Errorf("%s: %d goroutines while the attempt ran, %d before: the attempt must run on the caller's", tc.name, during, before)
			}
		}
	})
}

// closedConn returns a client, through m, whose every dial is refused.
func closedConn(t *testing.T, m *Middleware) *grpc.ClientConn {
	t.Helper()
	refuse := func(context.Context, string) (net.Conn, error) { return nil, syscall.ECONNREFUSED }
	conn, err := grpc.NewClient("passthrough:///nobody", append(m.DialOptions(),
		grpc.WithContextDialer(refuse), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestCloseEndsEveryWait(t *testing.T) {
	t.Run("ready wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := MustNew(WithReadyWait(time.Hour), WithReconnectProbe(0))
			conn := closedConn(t, m)
			// Down before the call starts: the call waits for it at once.
			conn.Connect()
			synctest.Wait()
			if s := conn.GetState(); s != connectivity.TransientFailure {
				t.Fatalf("connection %v, want TRANSIENT_FAILURE", s)
			}
			res := make(chan error, 1)
			go func() {
				_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
				res <- err
			}()
			synctest.Wait() // the call waits for the connection
			conn.Close()
			if err := result(t, res); status.Code(err) != codes.Canceled {
				t.Fatalf("call waiting for a closed connection: %v, want Canceled", err)
			}
		})
	})
	t.Run("backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, Backoff(backoff.Constant(5*time.Second)))
			r.failNext(1, codes.Unavailable)
			res := r.call(context.Background())
			synctest.Wait() // the call waits out its backoff
			r.conn.Close()
			if err := result(t, res); status.Code(err) != codes.Canceled {
				t.Fatalf("call in a backoff wait on a closed connection: %v, want Canceled", err)
			}
		})
	})
	t.Run("breaker wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, WithBreaker(tripped()), WithReadyWait(time.Hour))
			r.openThenHalfOpen(t)
			r.failAll(resiliencetest.Hang())
			probe := r.call(context.Background())
			r.await(t, 2)
			waiter := r.call(context.Background())
			synctest.Wait() // the second call waits for the probe slot
			r.conn.Close()
			for _, res := range []<-chan error{probe, waiter} {
				if err := result(t, res); status.Code(err) != codes.Canceled {
					t.Fatalf("call on a closed connection: %v, want Canceled", err)
				}
			}
		})
	})
}

func TestOnFinishRunsOncePerCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Backoff(backoff.Constant(0)), WithoutRetryBudget())
		var calls atomic.Int32
		var got error
		onFinish := grpc.OnFinish(func(err error) { calls.Add(1); got = err })

		r.failNext(3, codes.Unavailable)
		err := result(t, r.call(context.Background(), onFinish))
		if n := calls.Load(); n != 1 || got != err || status.Code(err) != codes.Unavailable {
			t.Errorf("retried call: OnFinish ran %d times with %v (call returned %v), want once with the call's error", n, got, err)
		}

		calls.Store(0)
		hedged := Hedging(HedgePolicy{Delay: 10 * time.Millisecond, MaxAttempts: 2})
		r.blockFirst(1) // attempt 4
		res := r.call(context.Background(), onFinish, hedged)
		r.await(t, 4)
		if err := result(t, res); err != nil || calls.Load() != 1 || got != nil {
			t.Errorf("hedged call: %v; OnFinish ran %d times with %v, want once with nil", err, calls.Load(), got)
		}

		calls.Store(0)
		r.failNext(1, codes.Unavailable)
		stream, err := r.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 2}, onFinish)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recvAll(stream); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != 1 || got != nil {
			t.Errorf("retried stream: OnFinish ran %d times with %v, want once with nil", n, got)
		}
	})
}

func TestTypedNilsAreRejected(t *testing.T) {
	var exp *backoff.Exponential // what NewExponential returns with its error
	if _, err := New(Backoff(exp)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Backoff(typed nil): %v, want ErrInvalidConfig", err)
	}
	var tp *sdktrace.TracerProvider
	if _, err := New(WithTracerProvider(tp)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("WithTracerProvider(typed nil): %v, want ErrInvalidConfig", err)
	}
	var mp *sdkmetric.MeterProvider
	if _, err := New(WithMeterProvider(mp)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("WithMeterProvider(typed nil): %v, want ErrInvalidConfig", err)
	}
	r := newRig(t)
	r.failNext(1, codes.Unavailable)
	if err := result(t, r.call(context.Background(), Backoff(exp))); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Backoff(typed nil): %v, want InvalidArgument before any attempt", err)
	}
	if _, err := New(WithStreamReplayBuffer(math.MaxInt), MaxAttempts(math.MaxInt),
		WithReadyWait(math.MaxInt64), Timeout(math.MaxInt64)); err != nil {
		t.Errorf("huge values: %v, want accepted", err)
	}
}

func TestHugeReplayBufferStillReplays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, WithStreamReplayBuffer(math.MaxInt), Backoff(backoff.Constant(0)))
		r.failNextAfterReceived(1, 2, codes.Unavailable)
		stream, err := r.client.ClientStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "b", "c"} {
			if err := stream.Send(&testingv1.ClientStreamRequest{Message: m}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil || len(resp.GetMessages()) != 3 {
			t.Fatalf("stream with a huge replay buffer: %v %v, want the 3 messages replayed", resp.GetMessages(), err)
		}
	})
}

func TestHedgingANonProtoReplyRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := MustNew(hedging(time.Hour, 3), Backoff(backoff.Constant(time.Second)))
		ui := m.UnaryClientInterceptor()
		calls := 0
		invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			calls++
			if calls == 1 {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		}
		// Not hedged (the reply is no proto.Message): the retry waits for its
		// backoff, as an unhedged call's would.
		start := time.Now()
		err := ui(context.Background(), echoMethod, "req", new(string), nil, invoker)
		if err != nil || calls != 2 {
			t.Fatalf("call: %v after %d attempts, want success after 2", err, calls)
		}
		if took := time.Since(start); took != time.Second {
			t.Fatalf("call took %v, want the 1s backoff", took)
		}
	})
}
