package interceptors

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/grpc-resilience/resilience/backoff"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// lockedBuffer is an io.Writer safe for the handler's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLoggerReportsBreakerAndGivingUpButNoPayloadOrMetadata(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		// Drop the time, to compare lines.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	h := newHarness(t, Backoff(backoff.Constant(0)), WithoutRetryBudget(), MaxAttempts(3),
		WithBreaker(tripFast(nil)), WithLogger(logger))
	h.failNext(1000, codes.Unavailable)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer secret-token")
	for range 4 { // the first trips the breaker, the others are refused outright
		_, err := h.client.Echo(ctx, &testingv1.EchoRequest{Message: "payload-text"})
		if err == nil {
			t.Fatal("call succeeded against a failing server")
		}
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=WARN msg="` + LogBreakerOpened + `" breaker=passthrough:///bufnet from=closed`,
		`level=WARN msg="` + LogCallGaveUp + `" method=/resilience.testing.v1.EchoService/Echo target=passthrough:///bufnet attempts=3 code=UNAVAILABLE`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	for _, secret := range []string{"secret-token", "authorization", "payload-text", injectedMessage} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestLoggingAndMetricNamesOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		name string // "" when valid
	}{
		{WithLogger(nil), ""},
		{WithLogger(slog.Default()), ""},
		{WithLogger(&slog.Logger{}), "WithLogger"},
		{WithMetricNames(MetricNamesResilience), ""},
		{WithMetricNames(MetricNamesGRPC), ""},
		{WithMetricNames(MetricNames(7)), "WithMetricNames"},
	} {
		_, err := New(tc.opt)
		switch {
		case tc.name == "" && err != nil:
			t.Errorf("valid option rejected: %v", err)
		case tc.name != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.name)):
			t.Errorf("err %v, want ErrInvalidConfig naming %s", err, tc.name)
		}
	}
}

// TestLoggerAddsNoAllocationToTheHappyPath compares the allocations of a
// successful call with and without a logger, in the same run. It measures
// the interceptor alone (an invoker that succeeds at once): a whole gRPC
// call allocates a varying amount in the transport's goroutines.
func TestLoggerAddsNoAllocationToTheHappyPath(t *testing.T) {
	conn, err := grpc.NewClient("passthrough:///logging", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	allocs := func(opts ...Option) float64 {
		ui := MustNew(opts...).UnaryClientInterceptor()
		return testing.AllocsPerRun(200, func() {
			if err := ui(context.Background(), echoMethod, nil, nil, conn, invoker); err != nil {
				t.Fatal(err)
			}
		})
	}
	without := allocs()
	with := allocs(WithLogger(slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))))
	if with > without {
		t.Errorf("a successful call allocates %v times with a logger, %v without", with, without)
	}
}
