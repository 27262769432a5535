package resiliencetest_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func mustNewChaos(t *testing.T, cfg resiliencetest.ChaosConfig, opts ...resiliencetest.Option) *resiliencetest.Chaos {
	t.Helper()
	c, err := resiliencetest.NewChaos(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var alwaysFail = resiliencetest.ChaosConfig{FaultRate: 1, FaultCode: codes.Unavailable}

func TestChaosIsOffUntilEnabled(t *testing.T) {
	s := serve(t, nil, nil)
	chaos := mustNewChaos(t, alwaysFail)
	if chaos.Enabled() {
		t.Fatal("a new Chaos is enabled")
	}
	c := s.client(t, chaos.DialOptions()...)
	ctx := callCtx(t)
	for range 3 {
		if code := echoCode(ctx, c); code != codes.OK {
			t.Fatalf("Chaos off: %v, want OK", code)
		}
	}

	chaos.SetEnabled(true)
	_, err := c.Echo(ctx, &testingv1.EchoRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "chaos") {
		t.Errorf("Chaos on: %v, want Unavailable from chaos", err)
	}
	if _, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 1}); status.Code(err) != codes.Unavailable {
		t.Errorf("Chaos on, a stream: %v, want Unavailable", err)
	}
	chaos.SetEnabled(false)
	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("Chaos off again: %v, want OK", code)
	}
	if n := s.faults.Attempts(resiliencetest.AllMethods); n != 4 {
		t.Errorf("the server saw %d attempts, want 4: injected faults never reach it", n)
	}
}

func TestChaosRateIsSeeded(t *testing.T) {
	const seed, rate, n = 9, 0.4, 100
	s := serve(t, nil, nil)
	chaos := mustNewChaos(t, resiliencetest.ChaosConfig{FaultRate: rate, FaultCode: codes.Internal}, resiliencetest.WithSeed(seed))
	chaos.SetEnabled(true)
	c := s.client(t, chaos.DialOptions()...)
	ctx := callCtx(t)
	for i, fail := range wantDraws(seed, rate, n) {
		want := codes.OK
		if fail {
			want = codes.Internal
		}
		if code := echoCode(ctx, c); code != want {
			t.Fatalf("call %d: %v, want %v", i, code, want)
		}
	}
}

func TestChaosMethods(t *testing.T) {
	s := serve(t, nil, nil)
	cfg := alwaysFail
	cfg.Methods = []string{serverStream}
	chaos := mustNewChaos(t, cfg)
	chaos.SetEnabled(true)
	c := s.client(t, chaos.DialOptions()...)
	if code := echoCode(callCtx(t), c); code != codes.OK {
		t.Errorf("Echo, not in Methods: %v, want OK", code)
	}
	if _, err := c.ServerStream(callCtx(t), &testingv1.ServerStreamRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("ServerStream, in Methods: %v, want Unavailable", err)
	}
	// SetConfig applies to later calls.
	must(t, chaos.SetConfig(resiliencetest.ChaosConfig{}))
	if _, err := c.ServerStream(callCtx(t), &testingv1.ServerStreamRequest{}); err != nil {
		t.Errorf("after SetConfig(zero): %v", err)
	}
}

func TestChaosLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		chaos := mustNewChaos(t, resiliencetest.ChaosConfig{LatencyRate: 1, Latency: 50 * time.Millisecond})
		chaos.SetEnabled(true)
		c := s.client(t, chaos.DialOptions()...)
		ctx := callCtx(t)
		done := asyncEcho(ctx, c)
		synctest.Wait()
		if n := s.faults.Attempts(echo); n != 0 {
			t.Errorf("a delayed call reached the server (%d) before its latency passed", n)
		}
		time.Sleep(50 * time.Millisecond)
		if code := <-done; code != codes.OK {
			t.Errorf("delayed call: %v, want OK", code)
		}
		// A deadline shorter than the latency ends the call.
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if code := echoCode(short, c); code != codes.DeadlineExceeded {
			t.Errorf("delayed past its deadline: %v, want DeadlineExceeded", code)
		}
	})
}

func TestChaosEventsOnTheSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		defer tp.Shutdown(context.Background())

		s := serveMem(t, nil, nil)
		chaos := mustNewChaos(t, resiliencetest.ChaosConfig{
			FaultRate: 1, FaultCode: codes.Unavailable, LatencyRate: 1, Latency: 250 * time.Millisecond,
		})
		c := s.client(t, chaos.DialOptions()...)
		ctx, span := tp.Tracer("test").Start(callCtx(t), "off")
		echoCode(ctx, c)
		span.End()

		chaos.SetEnabled(true)
		ctx, span = tp.Tracer("test").Start(callCtx(t), "on")
		done := asyncEcho(ctx, c)
		synctest.Wait()
		time.Sleep(250 * time.Millisecond)
		<-done
		span.End()

		spans := rec.Ended()
		if len(spans) != 2 {
			t.Fatalf("%d spans, want 2", len(spans))
		}
		if ev := spans[0].Events(); len(ev) != 0 {
			t.Errorf("Chaos off left events %v", ev)
		}
		ev := spans[1].Events()
		if len(ev) != 2 {
			t.Fatalf("events %v, want latency then fault", ev)
		}
		want := [][]attribute.KeyValue{
			{resiliencetest.ChaosActionKey.String("latency"), resiliencetest.ChaosDelayKey.Float64(0.25)},
			{resiliencetest.ChaosActionKey.String("fault"), resiliencetest.ChaosCodeKey.String("UNAVAILABLE")},
		}
		for i, e := range ev {
			if e.Name != resiliencetest.ChaosEvent {
				t.Errorf("event %d named %q, want %q", i, e.Name, resiliencetest.ChaosEvent)
			}
			got := attribute.NewSet(e.Attributes...)
			if !got.Equals(ptr(attribute.NewSet(want[i]...))) {
				t.Errorf("event %d attributes %v, want %v", i, e.Attributes, want[i])
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestChaosPerAttempt puts Chaos after the resilience interceptors: every
// attempt meets it, and the retries see its faults.
func TestChaosPerAttempt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	s := serve(t, nil, nil)
	m, err := interceptors.New(interceptors.MaxAttempts(3), interceptors.WithTracerProvider(tp))
	must(t, err)
	chaos := mustNewChaos(t, alwaysFail)
	chaos.SetEnabled(true)
	c := s.client(t, append(m.DialOptions(), chaos.DialOptions()...)...)
	var attempts int
	if code := echoCode(callCtx(t), c, interceptors.Attempts(&attempts)); code != codes.Unavailable || attempts != 3 {
		t.Errorf("%v after %d attempts, want Unavailable after 3", code, attempts)
	}
	if n := s.faults.Attempts(echo); n != 0 {
		t.Errorf("%d attempts reached the server", n)
	}
	// Each attempt's span carries its own chaos event.
	withEvent := 0
	for _, sp := range rec.Ended() {
		for _, e := range sp.Events() {
			if e.Name == resiliencetest.ChaosEvent {
				withEvent++
			}
		}
	}
	if withEvent != 3 {
		t.Errorf("%d chaos events on the spans, want one per attempt (3)", withEvent)
	}
}

func TestChaosSwitchUnderConcurrentCalls(t *testing.T) {
	const workers, calls = 6, 40
	s := serve(t, nil, nil)
	chaos := mustNewChaos(t, alwaysFail)
	c := s.client(t, chaos.DialOptions()...)
	ctx := callCtx(t)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if echoCode(ctx, c) != codes.OK {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := range 200 {
		chaos.SetEnabled(i%2 == 0)
	}
	wg.Wait()
	if got := s.faults.Attempts(echo) + failed; got != workers*calls {
		t.Errorf("%d calls reached the server and %d failed, want %d in all", s.faults.Attempts(echo), failed, workers*calls)
	}
}

func TestChaosConfigValidate(t *testing.T) {
	err := resiliencetest.ChaosConfig{
		Methods:     []string{"Echo", resiliencetest.AllMethods},
		FaultRate:   math.NaN(),
		LatencyRate: 2,
		Latency:     -time.Second,
	}.Validate()
	for _, want := range []string{
		`ChaosConfig.Methods[0]: method: "Echo"`,
		"ChaosConfig.Methods[1]: AllMethods",
		"ChaosConfig: FaultRate: NaN is not in [0, 1]",
		"ChaosConfig: LatencyRate: 2 is not in [0, 1]",
		"ChaosConfig: Latency: -1s is negative",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %q", err, want)
		}
	}
	if !errors.Is(err, resiliencetest.ErrInvalidConfig) {
		t.Errorf("Validate: %v does not wrap ErrInvalidConfig", err)
	}
	for name, cfg := range map[string]resiliencetest.ChaosConfig{
		"FaultCode: OK is not a fault": {FaultRate: 0.5},
		"Latency: 0 with LatencyRate":  {LatencyRate: 0.5},
	} {
		if _, err := resiliencetest.NewChaos(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewChaos(%+v): %v, want an error naming %q", cfg, err, name)
		}
	}
	chaos := mustNewChaos(t, alwaysFail)
	if err := chaos.SetConfig(resiliencetest.ChaosConfig{FaultRate: -1}); err == nil {
		t.Error("SetConfig with FaultRate -1: no error")
	}
	if _, err := resiliencetest.NewChaos(resiliencetest.ChaosConfig{}, nil); err == nil {
		t.Error("NewChaos with a nil Option: no error")
	}
}
