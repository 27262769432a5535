package interceptors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

const echoMethod = "/resilience.testing.v1.EchoService/Echo"

// guard bounds how long a test waits for something that should happen at
// once; it only fires when the code under test is broken.
const guard = 10 * time.Second

func echo(ctx context.Context, t *testing.T, c testingv1.EchoServiceClient, opts ...grpc.CallOption) error {
	t.Helper()
	resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "hi"}, opts...)
	if err == nil && resp.GetMessage() != "hi" {
		t.Fatalf("Echo returned %q, want %q", resp.GetMessage(), "hi")
	}
	return err
}

func TestRetryThenSucceed(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	h.failNext(2, codes.Unavailable)
	var attempts int
	if err := echo(context.Background(), t, h.client, Attempts(&attempts)); err != nil {
		t.Fatalf("Echo: %v, want success on the third attempt", err)
	}
	if attempts != 3 {
		t.Errorf("Attempts = %d, want 3", attempts)
	}
	calls := h.calls()
	if len(calls) != 3 {
		t.Fatalf("server saw %d attempts, want 3", len(calls))
	}
	for i, md := range calls {
		got := md.Get(AttemptMetadataKey)
		if i == 0 {
			if len(got) != 0 {
				t.Errorf("attempt 1 carried %s=%v, want none", AttemptMetadataKey, got)
			}
			continue
		}
		if want := []string{string(rune('1' + i))}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("attempt %d carried %s=%v, want %v", i+1, AttemptMetadataKey, got, want)
		}
	}
}

func TestExhaustedRetriesReturnLastError(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), MaxAttempts(4))
	h.failNext(10, codes.Unavailable)
	err := echo(context.Background(), t, h.client)
	if got := status.Code(err); got != codes.Unavailable {
		t.Fatalf("code = %v, want Unavailable (err %v)", got, err)
	}
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("error %T does not unwrap to *Error", err)
	}
	if ie.Attempts != 4 {
		t.Errorf("Error.Attempts = %d, want 4", ie.Attempts)
	}
	if got := h.attempts(); got != 4 {
		t.Errorf("server saw %d attempts, want 4", got)
	}
	if msg := status.Convert(err).Message(); msg != injectedMessage {
		t.Errorf("status message = %q, want the last attempt's %q", msg, injectedMessage)
	}
	if !strings.Contains(err.Error(), "after 4 attempts") {
		t.Errorf("Error() = %q, want it to mention the 4 attempts", err.Error())
	}
}

func TestNonRetryableCodeIsNotRetried(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.Internal, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			h := newHarness(t, Backoff(backoff.Constant(0)))
			h.failNext(1, code)
			err := echo(context.Background(), t, h.client)
			if got := status.Code(err); got != code {
				t.Errorf("code = %v, want %v", got, code)
			}
			if got := h.attempts(); got != 1 {
				t.Errorf("server saw %d attempts, want 1", got)
			}
		})
	}
}

func TestRetryCodesOption(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), RetryCodes(codes.ResourceExhausted))
	h.failNext(1, codes.ResourceExhausted)
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Fatalf("Echo: %v, want success after retrying ResourceExhausted", err)
	}
	h.reset()
	h.failNext(1, codes.Unavailable)
	if got := status.Code(echo(context.Background(), t, h.client)); got != codes.Unavailable {
		t.Errorf("Unavailable with RetryCodes(ResourceExhausted): code %v, want Unavailable after 1 attempt", got)
	}
	if got := h.attempts(); got != 1 {
		t.Errorf("server saw %d attempts, want 1", got)
	}
}

func TestBackoffDelaysAreUsedBetweenAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backoff.MustExponential(backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 3, MaxDelay: time.Second, Jitter: backoff.NoJitter})
		h := newHarness(t, Backoff(b), MaxAttempts(3))
		h.failNext(2, codes.Unavailable)
		done := make(chan error, 1)
		go func() { done <- echo(context.Background(), t, h.client) }()
		h.waitAttempts(t, 1)
		last := time.Now()
		for i, want := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond} {
			h.waitAttempts(t, i+2)
			if got := time.Since(last); got != want {
				t.Fatalf("backoff %d: attempt %d arrived %v after the one before, want %v", i+1, i+2, got, want)
			}
			last = time.Now()
		}
		if err := <-done; err != nil {
			t.Fatalf("Echo: %v", err)
		}
	})
}

func TestCallerCancelDuringBackoffReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(time.Hour)), Timeout(0))
		h.failNext(1, codes.Unavailable)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- echo(ctx, t, h.client) }()
		synctest.Wait() // in the hour's backoff
		cancel()
		start := time.Now()
		select {
		case err := <-done:
			if took := time.Since(start); took != 0 {
				t.Errorf("cancelled call returned %v after the cancel, want at once", took)
			}
			if got := status.Code(err); got != codes.Canceled {
				t.Errorf("code = %v, want Canceled (err %v)", got, err)
			}
			if !strings.Contains(err.Error(), injectedMessage) {
				t.Errorf("error %q does not mention the last attempt's error", err)
			}
		case <-time.After(guard):
			t.Fatal("cancelled call still waiting for its backoff")
		}
		if got := h.attempts(); got != 1 {
			t.Errorf("server saw %d attempts, want 1", got)
		}
	})
}

func TestDeadlineShorterThanBackoffReturnsLastErrorWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(time.Hour)))
		h.failNext(1, codes.Unavailable)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		err := echo(ctx, t, h.client)
		if took := time.Since(start); took != 0 {
			t.Errorf("call took %v, want the last error at once", took)
		}
		if got := status.Code(err); got != codes.Unavailable {
			t.Errorf("code = %v, want the last attempt's Unavailable (err %v)", got, err)
		}
		if ctx.Err() != nil {
			t.Errorf("call returned only after its deadline")
		}
		if got := h.attempts(); got != 1 {
			t.Errorf("server saw %d attempts, want 1", got)
		}
	})
}

func TestDeadlineExceededRetriedOnlyWhileCallerAlive(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	// Sent by the server while the caller's context is alive: retried.
	h.failNext(1, codes.DeadlineExceeded)
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Fatalf("server-sent DeadlineExceeded was not retried: %v", err)
	}
	if got := h.attempts(); got != 2 {
		t.Errorf("server saw %d attempts, want 2", got)
	}

	// The caller's own deadline expires during the attempt: not retried.
	h.reset()
	release := h.blockCalls()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := echo(ctx, t, h.client)
	if got := status.Code(err); got != codes.DeadlineExceeded {
		t.Errorf("code = %v, want DeadlineExceeded", got)
	}
	if got := h.attempts(); got != 1 {
		t.Errorf("server saw %d attempts after the caller's deadline, want 1", got)
	}
}

func TestPerAttemptTimeoutTriggersRetry(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), PerAttemptTimeout(50*time.Millisecond))
	h.blockFirst(1) // the first attempt hangs until its context ends
	var attempts int
	if err := echo(context.Background(), t, h.client, Attempts(&attempts)); err != nil {
		t.Fatalf("Echo: %v, want success on the second attempt", err)
	}
	if attempts != 2 {
		t.Errorf("attempts = %d, want 2", attempts)
	}
	dl := h.deadlines()
	if len(dl) != 2 {
		t.Fatalf("server saw %d attempts, want 2", len(dl))
	}
	for i, d := range dl {
		if d <= 0 || d > 50*time.Millisecond {
			t.Errorf("attempt %d reached the server with %v left, want a deadline within the 50ms per-attempt timeout", i+1, d)
		}
	}
}

func TestDefaultCallTimeoutOnlyWhenCallerHasNone(t *testing.T) {
	h := newHarness(t, Timeout(7*time.Second))
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := echo(ctx, t, h.client); err != nil {
		t.Fatal(err)
	}
	if err := echo(context.Background(), t, h.client, Timeout(0)); err != nil {
		t.Fatal(err)
	}
	dl := h.deadlines()
	if len(dl) != 3 {
		t.Fatalf("server saw %d calls, want 3", len(dl))
	}
	if dl[0] <= 6*time.Second || dl[0] > 7*time.Second {
		t.Errorf("call without deadline reached the server with %v left, want the 7s default", dl[0])
	}
	if dl[1] <= 59*time.Minute {
		t.Errorf("call with a 1h deadline reached the server with %v left, want its own deadline kept", dl[1])
	}
	if dl[2] != noDeadline {
		t.Errorf("call with Timeout(0) reached the server with %v left, want no deadline", dl[2])
	}
}

func TestPerCallOverrides(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), MaxAttempts(5))
	h.failNext(10, codes.Unavailable)
	if got := status.Code(echo(context.Background(), t, h.client, MaxAttempts(1))); got != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", got)
	}
	if got := h.attempts(); got != 1 {
		t.Errorf("MaxAttempts(1): server saw %d attempts, want 1", got)
	}
	h.reset()
	h.failNext(10, codes.Unavailable)
	_ = echo(context.Background(), t, h.client, MaxAttempts(2))
	if got := h.attempts(); got != 2 {
		t.Errorf("MaxAttempts(2): server saw %d attempts, want 2", got)
	}
	h.reset()
	h.failNext(1, codes.Aborted)
	if err := echo(context.Background(), t, h.client, RetryCodes(codes.Aborted)); err != nil {
		t.Errorf("RetryCodes(Aborted): %v, want success after a retry", err)
	}
	h.reset()
	h.blockFirst(1)
	if err := echo(context.Background(), t, h.client, PerAttemptTimeout(20*time.Millisecond)); err != nil {
		t.Errorf("PerAttemptTimeout: %v, want success after the first attempt timed out", err)
	}
	if got := h.attempts(); got != 2 {
		t.Errorf("PerAttemptTimeout: server saw %d attempts, want 2", got)
	}
}

func TestMethodPolicy(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)),
		WithMethodPolicy(MatchMethods("/resilience.testing.v1.EchoService/Other"), MaxAttempts(5)),
		WithMethodPolicy(MatchMethodPrefix("Ech"), MaxAttempts(1)),
	)
	h.failNext(10, codes.Unavailable)
	_ = echo(context.Background(), t, h.client)
	if got := h.attempts(); got != 1 {
		t.Errorf("method policy MaxAttempts(1) for Echo: server saw %d attempts, want 1", got)
	}
	h.reset()
	h.failNext(10, codes.Unavailable)
	_ = echo(context.Background(), t, h.client, MaxAttempts(3))
	if got := h.attempts(); got != 3 {
		t.Errorf("call option over method policy: server saw %d attempts, want 3", got)
	}
}

func TestMatchers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match MethodMatcher
		in    string
		want  bool
	}{
		{"methods hit", MatchMethods(echoMethod), echoMethod, true},
		{"methods miss", MatchMethods(echoMethod), "/x.Y/Echo", false},
		{"service hit", MatchService("resilience.testing.v1.EchoService"), echoMethod, true},
		{"service miss", MatchService("resilience.testing.v1.Echo"), echoMethod, false},
		{"prefix hit", MatchMethodPrefix("Create"), "/a.B/CreateUser", true},
		{"prefix miss", MatchMethodPrefix("Create"), "/a.Create/GetUser", false},
	} {
		if got := tc.match.Match(tc.in); got != tc.want {
			t.Errorf("%s: match(%q) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestCallerMetadataIsNotModified(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	h.failNext(2, codes.Unavailable)
	md := metadata.Pairs("tenant", "a")
	ctx := metadata.NewOutgoingContext(context.Background(), md)
	if err := echo(ctx, t, h.client); err != nil {
		t.Fatal(err)
	}
	if len(md) != 1 || len(md["tenant"]) != 1 || md["tenant"][0] != "a" {
		t.Errorf("caller's metadata changed to %v", md)
	}
	out, _ := metadata.FromOutgoingContext(ctx)
	if got := out.Get(AttemptMetadataKey); len(got) != 0 {
		t.Errorf("caller's context gained %s=%v", AttemptMetadataKey, got)
	}
	for i, md := range h.calls() {
		if got := md.Get("tenant"); len(got) != 1 || got[0] != "a" {
			t.Errorf("attempt %d carried tenant=%v, want [a]", i+1, got)
		}
		if got := md.Get(AttemptMetadataKey); i > 0 && len(got) != 1 {
			t.Errorf("attempt %d carried %s=%v, want one value", i+1, AttemptMetadataKey, got)
		}
	}
}

func TestInvalidOptionsAreRejectedByName(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		name string
	}{
		{MaxAttempts(0), "MaxAttempts"},
		{RetryCodes(), "RetryCodes"},
		{RetryCodes(codes.OK), "RetryCodes"},
		{RetryCodes(codes.Code(99)), "RetryCodes"},
		{Backoff(nil), "Backoff"},
		{PerAttemptTimeout(-time.Second), "PerAttemptTimeout"},
		{Timeout(-time.Second), "Timeout"},
		{WithMethodPolicy(MethodMatcher{}), "WithMethodPolicy"},
		{WithMethodPolicy(MatchMethods(echoMethod), MaxAttempts(0)), "WithMethodPolicy: MaxAttempts"},
		{WithMethodPolicy(MatchMethods(echoMethod), Attempts(new(int))), "WithMethodPolicy: Attempts: is per call only"},
		{WithMethodPolicy(MatchMethods(echoMethod), PolicyOption{}), "WithMethodPolicy: PolicyOption: zero value"},
		{WithConnectParams(grpc.ConnectParams{}), "MinConnectTimeout"},
		{nil, "nil option"},
	} {
		_, err := New(tc.opt)
		if err == nil {
			t.Errorf("New(%s) succeeded, want an error", tc.name)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("New(bad %s) = %q, want ErrInvalidConfig naming %s", tc.name, err, tc.name)
		}
	}
	_, err := New(MaxAttempts(0), Timeout(-1))
	if !strings.Contains(err.Error(), "MaxAttempts") || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("two bad options: %q, want both named", err)
	}
}

func TestInvalidPolicyOptionFailsCallByName(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		opt  PolicyOption
		name string
	}{
		{MaxAttempts(0), "MaxAttempts"},
		{PerAttemptTimeout(-1), "PerAttemptTimeout"},
		{Timeout(-1), "Timeout"},
		{RetryCodes(), "RetryCodes"},
		{Backoff(nil), "Backoff"},
		{Attempts(nil), "Attempts"},
		{PolicyOption{}, "PolicyOption"},
	} {
		err := echo(context.Background(), t, h.client, tc.opt)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("call with bad %s: %v, want InvalidArgument naming it", tc.name, err)
		}
	}
	if got := h.attempts(); got != 0 {
		t.Errorf("server saw %d attempts from invalid calls, want 0", got)
	}
}
