package interceptors

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// tripFast is a breaker that opens after 3 consecutive failures and stays
// open for an hour, so tests control it by call count alone.
func tripFast(onChange func(key string, from, to breaker.State)) breaker.Config {
	c := breaker.DefaultConfig()
	c.ConsecutiveFailures = 3
	c.OpenTimeout = time.Hour
	c.OnStateChange = onChange
	return c
}

func TestBreakerOpensAndFailsFastWithoutTouchingTheServer(t *testing.T) {
	var mu sync.Mutex
	var transitions []string
	h := newHarness(t, Backoff(backoff.Constant(0)), WithoutRetryBudget(), MaxAttempts(3),
		WithBreaker(tripFast(func(key string, from, to breaker.State) {
			mu.Lock()
			defer mu.Unlock()
			transitions = append(transitions, from.String()+">"+to.String())
		})))
	h.failNext(1000, codes.Unavailable)
	// First call: 3 failed attempts trip the breaker.
	_ = echo(context.Background(), t, h.client)
	if n := h.attempts(); n != 3 {
		t.Fatalf("server saw %d attempts, want 3", n)
	}
	// Later calls fail at once, and the server sees nothing.
	for range 5 {
		err := echo(context.Background(), t, h.client)
		if status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("err %v, want Unavailable matching breaker.ErrOpen", err)
		}
		if !strings.Contains(err.Error(), "bufnet") {
			t.Errorf("err %q does not name the target", err)
		}
		var ie *Error
		if !errors.As(err, &ie) || ie.Attempts != 0 {
			t.Errorf("err %v: want *Error with 0 attempts made", err)
		}
	}
	if n := h.attempts(); n != 3 {
		t.Errorf("server saw %d attempts while the breaker was open, want still 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(transitions) != 1 || transitions[0] != "closed>open" {
		t.Errorf("transitions %v, want [closed>open]", transitions)
	}
}

func TestBreakerIgnoresClientErrorsAndCallerCancels(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), WithBreaker(tripFast(nil)))
	h.failNext(10, codes.NotFound)
	for range 10 {
		_ = echo(context.Background(), t, h.client)
	}
	release := h.blockCalls()
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_ = echo(ctx, t, h.client)
		cancel()
	}
	release()
	h.reset()
	if err := echo(context.Background(), t, h.client); err != nil {
		t.Errorf("after client errors and cancellations: %v, want the breaker still closed", err)
	}
}

func TestBreakerPerCallAndPerMethodOptOut(t *testing.T) {
	m := MustNew(Backoff(backoff.Constant(0)), WithBreaker(tripFast(nil)),
		WithMethodPolicy(MatchMethods("/resilience.testing.v1.EchoService/ServerStream"), NoBreaker()))
	h := newHarnessDial(t, m.DialOptions()...)
	h.failNext(3, codes.Unavailable)
	_ = echo(context.Background(), t, h.client, MaxAttempts(3))
	if err := echo(context.Background(), t, h.client); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("err %v, want the breaker open", err)
	}
	if err := echo(context.Background(), t, h.client, NoBreaker()); err != nil {
		t.Errorf("CallNoBreaker: %v, want the call to reach the server", err)
	}
	stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 2})
	if err != nil {
		t.Fatalf("method policy CallNoBreaker: %v", err)
	}
	if got, err := recvAll(stream); err != nil || len(got) != 2 {
		t.Errorf("stream past an open breaker with CallNoBreaker: %v %v", got, err)
	}
	if st := m.Breakers().State("passthrough:///bufnet"); st != breaker.StateOpen {
		t.Errorf("Breakers().State = %v, want open", st)
	}
}

func TestBreakerOpenAtStreamCreation(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), WithBreaker(tripFast(nil)))
	h.failNext(3, codes.Unavailable)
	_ = echo(context.Background(), t, h.client)
	for _, open := range []func() error{
		func() error {
			_, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 1})
			return err
		},
		func() error { _, err := h.client.ClientStream(context.Background()); return err },
		func() error { _, err := h.client.BidiStream(context.Background()); return err },
	} {
		if err := open(); status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) {
			t.Errorf("stream creation: %v, want Unavailable matching breaker.ErrOpen", err)
		}
	}
	if n := h.attempts(); n != 3 {
		t.Errorf("server saw %d attempts, want the 3 that tripped the breaker", n)
	}
}

func TestBreakerPerMethodKeys(t *testing.T) {
	m := MustNew(Backoff(backoff.Constant(0)), WithBreaker(tripFast(nil)), WithBreakerPerMethod())
	h := newHarnessDial(t, m.DialOptions()...)
	h.failNext(3, codes.Unavailable)
	_ = echo(context.Background(), t, h.client)
	if err := echo(context.Background(), t, h.client); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("Echo: %v, want its breaker open", err)
	}
	stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 1})
	if err != nil {
		t.Fatalf("ServerStream with per-method breakers: %v, want its own closed breaker", err)
	}
	_, _ = recvAll(stream)
}

func TestInvalidBreakerConfigRejectedByName(t *testing.T) {
	c := breaker.DefaultConfig()
	c.FailureRatio = 2
	_, err := New(WithBreaker(c))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithBreaker") || !strings.Contains(err.Error(), "FailureRatio") {
		t.Errorf("New(WithBreaker(bad)) = %v, want an error naming WithBreaker and FailureRatio", err)
	}
}

func TestHalfOpenWaitersWaitForTheProbeInsteadOfFailing(t *testing.T) {
	c := breaker.DefaultConfig()
	c.ConsecutiveFailures = 3
	c.OpenTimeout = time.Nanosecond // half-open at the next call
	c.HalfOpenProbes = 1
	h := newHarness(t, Backoff(backoff.Constant(0)), WithoutRetryBudget(), WithBreaker(c))
	h.failNext(3, codes.Unavailable)
	_ = echo(context.Background(), t, h.client) // trips the breaker
	h.reset()
	release := h.blockCalls() // the probe hangs at the server until released below
	probe := make(chan error, 1)
	go func() { probe <- echo(context.Background(), t, h.client, MaxAttempts(1)) }()
	h.waitAttempts(t, 1)
	const waiters = 5
	results := make(chan error, waiters)
	for range waiters {
		go func() { results <- echo(context.Background(), t, h.client) }()
	}
	// The waiters are refused by the busy half-open breaker and wait for
	// it; none reaches the server while the probe is out.
	if n := h.attempts(); n != 1 {
		t.Errorf("server saw %d attempts while the probe was out, want 1", n)
	}
	// End the probe: its per-attempt context is the caller's, so release
	// it by letting the blocked handler return.
	release()
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	for range waiters {
		if err := <-results; err != nil {
			t.Errorf("a call that met the busy half-open breaker failed: %v, want it to wait for the probe and succeed", err)
		}
	}
}

func TestConnectionFailuresCountOnlyAfterAWholeReadyWait(t *testing.T) {
	addr := closedAddr(t)
	for _, tc := range []struct {
		name      string
		readyWait time.Duration
		deadline  time.Duration
		wantOpen  bool
	}{
		// The caller's deadline ends every wait early: a restart being
		// ridden out, not an outage.
		{"restart", time.Hour, 30 * time.Millisecond, false},
		// Whole ready waits pass and the server is still gone: count it.
		{"gone", 5 * time.Millisecond, 5 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := MustNew(Backoff(backoff.Constant(0)), WithoutRetryBudget(), WithBreaker(tripFast(nil)),
				WithReadyWait(tc.readyWait), WithReconnectProbe(0))
			conn, err := grpc.NewClient(addr, append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := testingv1.NewEchoServiceClient(conn)
			for range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				_, _ = client.Echo(ctx, &testingv1.EchoRequest{})
				cancel()
			}
			if open := m.Breakers().State(addr) == breaker.StateOpen; open != tc.wantOpen {
				t.Errorf("breaker open = %v, want %v", open, tc.wantOpen)
			}
		})
	}
}

// closedAddr returns a loopback address that was just free: nothing
// listens there.
func closedAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}
