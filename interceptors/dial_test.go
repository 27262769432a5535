package interceptors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
)

func TestNewClientReadyClosedPortFailsInTimeWithCause(t *testing.T) {
	target := closedAddr(t)

	const wait = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	conn, err := NewClientReady(ctx, target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	elapsed := time.Since(start)
	if err == nil {
		conn.Close()
		t.Fatal("NewClientReady to a closed port succeeded")
	}
	if elapsed > wait+time.Second {
		t.Errorf("NewClientReady returned after %v, want about %v", elapsed, wait)
	}
	for _, want := range []string{target, "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
	}
}

func TestNewClientReadyConnects(t *testing.T) {
	h := newTCPHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	conn, err := NewClientReady(ctx, h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClientReady(%s): %v", h.addr, err)
	}
	conn.Close()
}

func TestDialOptionsDisableGRPCRetries(t *testing.T) {
	// A service config asking grpc-go to retry 4 times must not multiply
	// our 3 attempts: grpc.WithDisableRetry is part of DialOptions.
	const sc = `{"methodConfig":[{"name":[{"service":"resilience.testing.v1.EchoService"}],
	  "retryPolicy":{"maxAttempts":4,"initialBackoff":"0.001s","maxBackoff":"0.001s",
	  "backoffMultiplier":1,"retryableStatusCodes":["UNAVAILABLE"]}}]}`
	m := MustNew(Backoff(backoff.Constant(0)), MaxAttempts(3))
	h := newHarnessDial(t, append(m.DialOptions(), grpc.WithDefaultServiceConfig(sc))...)
	h.failNext(100, codes.Unavailable)
	err := echo(context.Background(), t, h.client)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("code %v, want Unavailable", status.Code(err))
	}
	if got := h.attempts(); got != 3 {
		t.Errorf("server saw %d attempts, want exactly 3", got)
	}
}
