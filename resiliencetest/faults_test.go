package resiliencetest_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestInjectNextFailsExactlyN(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectNext(echo, 2, resiliencetest.Fail(codes.Unavailable).WithMessage("down")))
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Internal)))

	var got []codes.Code
	for range 4 {
		got = append(got, echoCode(ctx, c))
	}
	want := []codes.Code{codes.Unavailable, codes.Unavailable, codes.Internal, codes.OK}
	if !slices.Equal(got, want) {
		t.Errorf("codes %v, want %v (faults in order, then none)", got, want)
	}
	if n := s.faults.Attempts(echo); n != 4 {
		t.Errorf("Attempts(Echo) = %d, want 4", n)
	}
	_, err := c.Echo(ctx, &testingv1.EchoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Unavailable).WithMessage("down")))
	_, err = c.Echo(ctx, &testingv1.EchoRequest{})
	if st := status.Convert(err); st.Message() != "down" {
		t.Errorf("message %q, want %q (WithMessage)", st.Message(), "down")
	}
}

func TestRulesPerMethodAndAllMethods(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectFraction(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Unavailable)))
	must(t, s.faults.SetLatency(echo, 0, 0)) // Echo now has rules of its own: none

	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("Echo with rules of its own: %v, want OK", code)
	}
	stream, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("ServerStream under AllMethods: %v, want Unavailable", err)
	}

	s.faults.Clear(echo) // back to the AllMethods rules
	if code := echoCode(ctx, c); code != codes.Unavailable {
		t.Errorf("Echo after Clear(Echo): %v, want Unavailable from AllMethods", code)
	}
	if got := s.faults.Attempts(resiliencetest.AllMethods); got != 3 {
		t.Errorf("Attempts(AllMethods) = %d, want 3", got)
	}
	s.faults.Reset()
	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("after Reset: %v, want OK", code)
	}
	if got := s.faults.Attempts(resiliencetest.AllMethods); got != 1 {
		t.Errorf("Attempts after Reset and one call = %d, want 1", got)
	}
}

// wantDraws returns, for n draws of probability p from the kit's source
// seeded with seed, which come true.
func wantDraws(seed uint64, p float64, n int) []bool {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([]bool, n)
	for i := range out {
		out[i] = rng.Float64() < p
	}
	return out
}

func TestInjectFractionIsSeeded(t *testing.T) {
	const seed, p, n = 42, 0.3, 200
	s := serve(t, mustNewFaults(t, resiliencetest.WithSeed(seed)), nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectFraction(echo, p, resiliencetest.Fail(codes.ResourceExhausted)))

	want := wantDraws(seed, p, n)
	failed := 0
	for i := range n {
		code := echoCode(ctx, c)
		if (code == codes.ResourceExhausted) != want[i] || (code != codes.OK && code != codes.ResourceExhausted) {
			t.Fatalf("call %d: %v, want a failure: %v", i, code, want[i])
		}
		if code != codes.OK {
			failed++
		}
	}
	if failed < n/5 || failed > n*2/5 {
		t.Errorf("%d of %d failed with p = %v", failed, n, p)
	}
	must(t, s.faults.InjectFraction(echo, 0, resiliencetest.Fault{})) // off
	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("fraction 0: %v, want OK", code)
	}
}

func TestQueuedFaultsComeBeforeTheFraction(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectFraction(echo, 1, resiliencetest.Fail(codes.Internal)))
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Aborted)))
	if got := []codes.Code{echoCode(ctx, c), echoCode(ctx, c)}; !slices.Equal(got, []codes.Code{codes.Aborted, codes.Internal}) {
		t.Errorf("codes %v, want [Aborted Internal]", got)
	}
}

// asyncEcho starts an Echo call and returns its outcome's channel.
func asyncEcho(ctx context.Context, c testingv1.EchoServiceClient) <-chan codes.Code {
	out := make(chan codes.Code, 1)
	go func() { out <- echoCode(ctx, c) }()
	return out
}

func TestSetLatencyWaitsOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, mustNewFaults(t), nil)
		c := s.client(t)
		ctx := callCtx(t)
		must(t, s.faults.SetLatency(echo, 1, 100*time.Millisecond))

		done := asyncEcho(ctx, c)
		synctest.Wait()
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		select {
		case code := <-done:
			t.Fatalf("the call ended (%v) before its 100ms latency had passed", code)
		default:
		}
		time.Sleep(time.Millisecond)
		if code := <-done; code != codes.OK {
			t.Errorf("delayed call: %v, want OK", code)
		}
	})
}

func TestTailLatencyIsSeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const seed, p, n = 5, 0.25, 40
		s := serveMem(t, mustNewFaults(t, resiliencetest.WithSeed(seed)), nil)
		c := s.client(t)
		ctx := callCtx(t)
		must(t, s.faults.SetLatency(echo, p, time.Second))

		for i, slow := range wantDraws(seed, p, n) {
			// Time in the bubble moves only while everything waits: a
			// call drawn fast takes no time at all, a slow one exactly
			// its latency.
			start := time.Now()
			if code := echoCode(ctx, c); code != codes.OK {
				t.Fatalf("call %d: %v", i, code)
			}
			want := time.Duration(0)
			if slow {
				want = time.Second
			}
			if took := time.Since(start); took != want {
				t.Fatalf("call %d took %v, want %v (drawn slow: %v)", i, took, want, slow)
			}
		}
	})
}

func TestLatencyEndsWithTheCallersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := serveMem(t, mustNewFaults(t), rec)
		c := s.client(t)
		must(t, s.faults.SetLatency(echo, 1, time.Hour))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if code := echoCode(ctx, c); code != codes.DeadlineExceeded {
			t.Errorf("call into an hour of latency with a 100ms deadline: %v, want DeadlineExceeded", code)
		}
	})
}

func TestPushbackTrailer(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.ResourceExhausted).WithPushback("250")))
	var trailer metadata.MD
	_, err := c.Echo(ctx, &testingv1.EchoRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted", status.Code(err))
	}
	if got := trailer.Get(resiliencetest.PushbackTrailer); !slices.Equal(got, []string{"250"}) {
		t.Errorf("pushback trailer %q, want [250]", got)
	}

	// On a stream failed after some messages too.
	must(t, s.faults.InjectNext(serverStream, 1, resiliencetest.FailAfterSent(1, codes.Unavailable).WithPushback("-1")))
	stream, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = stream.Recv()
	}
	if got := stream.Trailer().Get(resiliencetest.PushbackTrailer); !slices.Equal(got, []string{"-1"}) {
		t.Errorf("stream pushback trailer %q, want [-1]", got)
	}
}

// fastClient is a resilience client of s: 3 attempts, 1ms backoff.
func fastClient(t *testing.T, s *server, opts ...interceptors.Option) testingv1.EchoServiceClient {
	t.Helper()
	m, err := interceptors.New(append([]interceptors.Option{
		interceptors.MaxAttempts(3),
		interceptors.Backoff(backoff.Constant(time.Millisecond)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s.client(t, m.DialOptions()...)
}

func TestPushbackStopsTheResilienceClient(t *testing.T) {
	s := serve(t, nil, nil)
	c := fastClient(t, s)
	ctx := callCtx(t)
	// Without pushback the client makes its 3 attempts.
	must(t, s.faults.InjectNext(echo, 3, resiliencetest.Fail(codes.Unavailable)))
	var attempts int
	if code := echoCode(ctx, c, interceptors.Attempts(&attempts)); code != codes.Unavailable || attempts != 3 {
		t.Errorf("%v after %d attempts, want Unavailable after 3", code, attempts)
	}
	// Pushback "-1" stops the retries (the client reads it on retries, and
	// on first attempts once the target has failed lately, as here).
	must(t, s.faults.InjectNext(echo, 3, resiliencetest.Fail(codes.Unavailable).WithPushback("-1")))
	if code := echoCode(ctx, c, interceptors.Attempts(&attempts)); code != codes.Unavailable || attempts >= 3 {
		t.Errorf("%v after %d attempts, want Unavailable after fewer than 3: pushback -1 stops retries", code, attempts)
	}
	s.faults.Reset()
}

func TestHangUntilTheDeadline(t *testing.T) {
	rec := &recorder{endings: make(chan codes.Code, 2)}
	s := serve(t, nil, rec)
	c := s.client(t)
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Hang()))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if code := echoCode(ctx, c); code != codes.DeadlineExceeded {
		t.Errorf("hung call: %v, want DeadlineExceeded", code)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("hung call returned after %v, before its deadline", el)
	}
	// The hung attempt ends on the server too, once the client's deadline
	// has passed (by its own timer or the client's cancel, whichever first).
	if code := <-rec.endings; code != codes.DeadlineExceeded && code != codes.Canceled {
		t.Errorf("the hung attempt ended on the server with %v, want DeadlineExceeded or Canceled", code)
	}
	if code := echoCode(callCtx(t), c); code != codes.OK {
		t.Errorf("next call: %v, want OK", code)
	}
}

func TestHangEndsWithCancel(t *testing.T) {
	rec := &recorder{arrived: make(chan string, 1)}
	s := serve(t, nil, rec)
	c := s.client(t)
	must(t, s.faults.InjectFraction(echo, 1, resiliencetest.Hang()))
	ctx, cancel := context.WithCancel(t.Context())
	done := asyncEcho(ctx, c)
	<-rec.arrived
	select {
	case code := <-done:
		t.Fatalf("hung call ended (%v) before its cancel", code)
	default:
	}
	cancel()
	if code := <-done; code != codes.Canceled {
		t.Errorf("cancelled hung call: %v, want Canceled", code)
	}
}

func TestFailAfterSent(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	// Queued for every method: unary Echo skips it, the stream takes it.
	must(t, s.faults.InjectNext(resiliencetest.AllMethods, 1, resiliencetest.FailAfterSent(2, codes.Unavailable)))
	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("Echo took a stream fault: %v", code)
	}
	stream, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Message: "m", Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int32
	for {
		r, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("stream ended with %v, want Unavailable", err)
			}
			break
		}
		seqs = append(seqs, r.GetSequence())
	}
	if !slices.Equal(seqs, []int32{0, 1}) {
		t.Errorf("received %v before the fault, want [0 1]", seqs)
	}
	// The fault is used up.
	stream, err = c.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err = stream.Recv(); err == nil; _, err = stream.Recv() {
		n++
	}
	if err != io.EOF || n != 5 {
		t.Errorf("next stream: %d messages, then %v; want 5 and EOF", n, err)
	}
}

func TestFailAfterReceived(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	must(t, s.faults.InjectNext(bidiStream, 1, resiliencetest.FailAfterReceived(2, codes.Aborted)))
	stream, err := c.BidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		if err := stream.Send(&testingv1.BidiStreamRequest{Message: m}); err != nil {
			break // the status comes with Recv
		}
	}
	_ = stream.CloseSend()
	var got []string
	for {
		r, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Aborted {
				t.Errorf("stream ended with %v, want Aborted", err)
			}
			break
		}
		got = append(got, r.GetMessage())
	}
	// b, the second message, was received and never answered.
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("echoed %v before the fault, want [a]", got)
	}

	// A client stream that sends exactly k messages fails too.
	must(t, s.faults.InjectNext(clientStream, 1, resiliencetest.FailAfterReceived(1, codes.Aborted)))
	cs, err := c.ClientStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.Send(&testingv1.ClientStreamRequest{Message: "x"})
	if _, err := cs.CloseAndRecv(); status.Code(err) != codes.Aborted {
		t.Errorf("client stream: %v, want Aborted", err)
	}
}

func TestFailBeforeAStreamCommits(t *testing.T) {
	s := serve(t, nil, nil)
	c := fastClient(t, s)
	must(t, s.faults.InjectNext(serverStream, 2, resiliencetest.Fail(codes.Unavailable)))
	stream, err := c.ServerStream(callCtx(t), &testingv1.ServerStreamRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err = stream.Recv(); err == nil; _, err = stream.Recv() {
		n++
	}
	if err != io.EOF || n != 2 {
		t.Errorf("%d messages then %v, want 2 then EOF: Fail ends a stream before it commits, so it is retried", n, err)
	}
	if got := s.faults.AttemptNumbers(serverStream); !mapsEqual(got, map[int]int{1: 1, 2: 1, 3: 1}) {
		t.Errorf("AttemptNumbers = %v, want map[1:1 2:1 3:1]", got)
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCountsAreExactUnderConcurrency compares the attempts the server
// counted, by attempt number, with those the resilience client says it made.
func TestCountsAreExactUnderConcurrency(t *testing.T) {
	const workers, calls = 8, 40
	s := serve(t, mustNewFaults(t, resiliencetest.WithSeed(1)), nil)
	c := fastClient(t, s, interceptors.WithoutRetryBudget())
	must(t, s.faults.InjectFraction(resiliencetest.AllMethods, 0.3, resiliencetest.Fail(codes.Unavailable)))
	ctx := callCtx(t)

	var mu sync.Mutex
	want := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				var attempts int
				echoCode(ctx, c, interceptors.Attempts(&attempts), interceptors.NoBreaker())
				mu.Lock()
				for n := 1; n <= attempts; n++ {
					want[n]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := s.faults.AttemptNumbers(echo)
	if !mapsEqual(got, want) {
		t.Errorf("server counted %v, the client made %v", got, want)
	}
	if want[2] == 0 {
		t.Errorf("no retries at all (%v): the fraction did not act", want)
	}
	total := 0
	for _, v := range want {
		total += v
	}
	if n := s.faults.Attempts(echo); n != total {
		t.Errorf("Attempts = %d, want %d", n, total)
	}
}

func TestAttemptNumbersFromMetadata(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	for _, v := range []string{"", "2", "2", "7", "x", "0"} {
		ctx := callCtx(t)
		if v != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, resiliencetest.AttemptMetadataKey, v)
		}
		echoCode(ctx, c)
	}
	if got, want := s.faults.AttemptNumbers(echo), map[int]int{1: 1, 2: 2, 7: 1, 0: 2}; !mapsEqual(got, want) {
		t.Errorf("AttemptNumbers = %v, want %v", got, want)
	}
	if resiliencetest.AttemptMetadataKey != interceptors.AttemptMetadataKey {
		t.Errorf("AttemptMetadataKey %q, the interceptors send %q", resiliencetest.AttemptMetadataKey, interceptors.AttemptMetadataKey)
	}
}

func TestConfigurationWhileServing(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = s.faults.InjectFraction(echo, float64(i%2), resiliencetest.Fail(codes.Unavailable))
			_ = s.faults.InjectNext(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Internal))
			_ = s.faults.Attempts(resiliencetest.AllMethods)
			if i%10 == 0 {
				s.faults.Reset()
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 25 {
				echoCode(ctx, c)
			}
		})
	}
	// The calls end by themselves; only the reconfiguring loop waits.
	for range 100 {
		echoCode(ctx, c)
	}
	close(stop)
	wg.Wait()
}

func TestInvalidArguments(t *testing.T) {
	f := mustNewFaults(t)
	unavailable := resiliencetest.Fail(codes.Unavailable)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"negative n", f.InjectNext(echo, -1, unavailable), "InjectNext: n: -1 is negative"},
		{"OK as a fault", f.InjectNext(echo, 1, resiliencetest.Fail(codes.OK)), "code OK is not a fault"},
		{"zero Fault", f.InjectNext(echo, 1, resiliencetest.Fault{}), "the zero Fault"},
		{"negative k", f.InjectNext(echo, 1, resiliencetest.FailAfterSent(-2, codes.Unavailable)), "message count -2 is negative"},
		{"OK after received", f.InjectNext(echo, 1, resiliencetest.FailAfterReceived(1, codes.OK)), "code OK is not a fault"},
		{"empty pushback", f.InjectNext(echo, 1, unavailable.WithPushback("")), "empty pushback"},
		{"bad pushback", f.InjectNext(echo, 1, unavailable.WithPushback("1\n")), "pushback"},
		{"empty method", f.InjectNext("", 1, unavailable), "method: \"\""},
		{"short method", f.InjectNext("Echo", 1, unavailable), "method: \"Echo\""},
		{"NaN fraction", f.InjectFraction(echo, nan(), unavailable), "InjectFraction: p: NaN is not in [0, 1]"},
		{"fraction above 1", f.InjectFraction(echo, 1.5, unavailable), "p: 1.5 is not in [0, 1]"},
		{"negative fraction", f.InjectFraction(echo, -0.1, unavailable), "p: -0.1 is not in [0, 1]"},
		{"OK in a fraction", f.InjectFraction(echo, 0.5, resiliencetest.Fail(codes.OK)), "code OK is not a fault"},
		{"negative latency", f.SetLatency(echo, 1, -time.Millisecond), "SetLatency: d: -1ms is negative"},
		{"latency fraction", f.SetLatency(echo, 2, time.Millisecond), "SetLatency: p: 2 is not in [0, 1]"},
		{"unknown mode", (&resiliencetest.Listener{}).SetMode(resiliencetest.ListenerMode(9)), "mode: unknown ListenerMode(9)"},
		{"negative delay", f.InjectNext(echo, 1, unavailable.WithDelay(-time.Second)), "InjectNext: fault: delay -1s is negative"},
		{"pause of no method", f.Pause("/x"), "Pause: method: \"/x\""},
		{"wait on no method", f.WaitAttempts(t.Context(), "x/y", 1), "WaitAttempts: method: \"x/y\""},
		{"wait for fewer than none", f.WaitAttempts(t.Context(), echo, -1), "WaitAttempts: n: -1 is negative"},
	}
	for _, tc := range cases {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !errors.Is(tc.err, resiliencetest.ErrInvalidConfig) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want an ErrInvalidConfig naming %q", tc.name, tc.err, tc.want)
		}
	}
	// Nothing invalid was kept.
	if got := f.AttemptNumbers(resiliencetest.AllMethods); len(got) != 0 {
		t.Errorf("counts %v", got)
	}
}

func newFaultsErr(opts ...resiliencetest.Option) error {
	_, err := resiliencetest.NewFaults(opts...)
	return err
}
