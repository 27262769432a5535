package interceptors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/telemetry"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// warnLogger returns a logger writing text records without time to buf.
func warnLogger(buf *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// serverStream opens a server stream and reads it to its end.
func serverStream(ctx context.Context, c testingv1.EchoServiceClient, opts ...grpc.CallOption) error {
	s, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 2, Message: "s"}, opts...)
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// TestHedgingOnAStreamIsReported: hedging set for a streaming method
// cannot apply (streams are never hedged); the stream runs unhedged, and
// the Middleware says so once in its log and on every call in its
// metrics. Hedging passed with a stream call fails that call.
func TestHedgingOnAStreamIsReported(t *testing.T) {
	e := newTelemetryEnv(t)
	var buf lockedBuffer
	h := newHarness(t, e.options(
		WithMethodPolicy(MatchMethods(streamMethod), Hedging(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 2})),
		WithLogger(warnLogger(&buf)))...)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for range 3 {
		if err := serverStream(ctx, h.client); err != nil {
			t.Fatal(err)
		}
	}
	want := `level=WARN msg="` + telemetry.MsgPolicyIgnored + `" setting=hedging method=` + streamMethod +
		` target=passthrough:///bufnet reason="streams are never hedged"`
	if got := strings.TrimSpace(buf.String()); got != want {
		t.Errorf("log:\n\t%s\nwant once:\n\t%s", got, want)
	}
	var counted []string
	for _, l := range e.collectMetrics(t) {
		if strings.HasPrefix(l, telemetry.MetricPolicyIgnored) {
			counted = append(counted, l)
		}
	}
	wantMetric := sortAttrs(telemetry.MetricPolicyIgnored + " {resilience.policy.setting=hedging rpc.method=resilience.testing.v1.EchoService/ServerStream rpc.system.name=grpc server.address=bufnet} 3")
	if len(counted) != 1 || counted[0] != wantMetric {
		t.Errorf("metrics %q, want %q", counted, wantMetric)
	}

	// Per call: an invalid call option.
	err := serverStream(ctx, h.client, Hedging(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 2}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "Hedging: streams are never hedged") {
		t.Errorf("a stream call passed Hedging: %v, want InvalidArgument naming Hedging", err)
	}
	// Unary calls keep it.
	if _, err := h.client.Echo(ctx, &testingv1.EchoRequest{Message: "u"}, Hedging(HedgePolicy{Delay: time.Second, MaxAttempts: 2})); err != nil {
		t.Errorf("a unary call passed Hedging: %v", err)
	}
}

// TestEndpointEjectionOverriddenIsReported: a service config of the
// channel's own that picks round_robin after DialOptions replaces the
// endpoint policy; calls work, and the Middleware says that ejection is
// off, once in its log, and counts the calls it found without it.
func TestEndpointEjectionOverriddenIsReported(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dial       []grpc.DialOption
		overridden bool
	}{
		{"policy in place", nil, false},
		{"round_robin after DialOptions", []grpc.DialOption{grpc.WithDefaultServiceConfig(roundRobin)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTelemetryEnv(t)
			var buf lockedBuffer
			m := MustNew(e.options(WithEndpointEjection(endpointsOff), WithLogger(warnLogger(&buf)))...)
			f := newFleet(t, 2, m, tc.dial...)
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			for i := range 5 {
				if err := f.call(ctx, "c"+string(rune('0'+i))); err != nil {
					t.Fatal(err)
				}
			}
			log := buf.String()
			if got := strings.Count(log, telemetry.MsgPolicyIgnored); got != map[bool]int{true: 1}[tc.overridden] {
				t.Errorf("%d %q records, want %d:\n%s", got, telemetry.MsgPolicyIgnored, map[bool]int{true: 1}[tc.overridden], log)
			}
			if tc.overridden && !strings.Contains(log, `setting="endpoint ejection"`) || strings.Contains(log, "msg=") && !tc.overridden {
				t.Errorf("log:\n%s", log)
			}
			n := 0
			for _, l := range e.collectMetrics(t) {
				if strings.HasPrefix(l, telemetry.MetricPolicyIgnored) && strings.Contains(l, "resilience.policy.setting=endpoint ejection") {
					n++
				}
			}
			if (n > 0) != tc.overridden {
				t.Errorf("%d %s series for endpoint ejection, want them only when overridden", n, telemetry.MetricPolicyIgnored)
			}
		})
	}
}

// TestPerAttemptTimeoutThatCannotFireIsRejected: a per-attempt timeout not
// shorter than the call timeout it runs under, in one layer or resolved.
func TestPerAttemptTimeoutThatCannotFireIsRejected(t *testing.T) {
	const never = "must be shorter than Timeout"
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"New", []Option{PerAttemptTimeout(5 * time.Second), Timeout(time.Second)}, "PerAttemptTimeout (5s) " + never + " (1s)"},
		{"equal", []Option{PerAttemptTimeout(time.Second), Timeout(time.Second)}, "PerAttemptTimeout (1s) " + never + " (1s)"},
		{"over the default timeout", []Option{PerAttemptTimeout(15 * time.Second)}, "the policy of the methods nothing else names: PerAttemptTimeout (15s) " + never + " (10s)"},
		{"method policy", []Option{WithMethodPolicy(MatchService(svc), Timeout(time.Second), PerAttemptTimeout(2*time.Second))}, "WithMethodPolicy: PerAttemptTimeout (2s) " + never + " (1s)"},
		{"resolved", []Option{Timeout(time.Second), WithMethodPolicy(MatchMethods(echoMethod), PerAttemptTimeout(2*time.Second))},
			"the policy of " + echoMethod + ": PerAttemptTimeout (2s) " + never + " (1s)"},
		{"service config entry", []Option{WithServiceConfig(`{"methodConfig": [{"name": [{"service": "s"}], "timeout": "1s", "resilience": {"perAttemptTimeout": "1s"}}]}`)},
			"methodConfig[0].resilience.perAttemptTimeout: must be shorter than timeout (1s), got 1s"},
		{"service config over New", []Option{PerAttemptTimeout(2 * time.Second), WithServiceConfig(`{"methodConfig": [{"name": [{"service": "s"}], "timeout": "1s"}]}`)},
			"the policy of the methods of s: PerAttemptTimeout (2s) " + never + " (1s)"},
	} {
		_, err := New(tc.opts...)
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v\n  want an error with %q", tc.name, err, tc.want)
		}
	}
	// What can fire is accepted: shorter, a call timeout of 0 (none), and a
	// method policy that fixes what the layers below would get wrong.
	for _, opts := range [][]Option{
		{PerAttemptTimeout(500 * time.Millisecond), Timeout(time.Second)},
		{PerAttemptTimeout(time.Minute), Timeout(0)},
		{Timeout(time.Second), WithMethodPolicy(MatchMethods(echoMethod), Timeout(5*time.Second), PerAttemptTimeout(2*time.Second))},
	} {
		if _, err := New(opts...); err != nil {
			t.Errorf("New: %v", err)
		}
	}
	// SetServiceConfig applies the same rule.
	m := MustNew(PerAttemptTimeout(2 * time.Second))
	if err := m.SetServiceConfig(`{"methodConfig": [{"name": [{}], "timeout": "1s"}]}`); err == nil || !strings.Contains(err.Error(), never) {
		t.Errorf("SetServiceConfig = %v, want an error with %q", err, never)
	}

	// Both passed with one call: the call fails with InvalidArgument.
	h := newHarness(t)
	_, err := h.client.Echo(context.Background(), &testingv1.EchoRequest{Message: "x"}, Timeout(time.Second), PerAttemptTimeout(2*time.Second))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), never) {
		t.Errorf("call with both: %v, want InvalidArgument with %q", err, never)
	}
	if h.attempts() != 0 {
		t.Errorf("%d attempts reached the server, want none", h.attempts())
	}
}

// TestPolicyIgnoredUnderGRPCMetricNames: with gRPC's metric names the
// counter keeps its name and takes grpc.method and grpc.target, like the
// breaker and budget counters.
func TestPolicyIgnoredUnderGRPCMetricNames(t *testing.T) {
	e := newTelemetryEnv(t)
	h := newHarness(t, e.options(WithMetricNames(MetricNamesGRPC),
		WithMethodPolicy(MatchMethods(streamMethod), Hedging(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 2})))...)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := serverStream(ctx, h.client); err != nil {
		t.Fatal(err)
	}
	want := sortAttrs(telemetry.MetricPolicyIgnored + " {grpc.method=resilience.testing.v1.EchoService/ServerStream grpc.target=passthrough:///bufnet resilience.policy.setting=hedging} 1")
	for _, l := range e.collectMetrics(t) {
		if strings.HasPrefix(l, telemetry.MetricPolicyIgnored) {
			if l != want {
				t.Errorf("got %q, want %q", l, want)
			}
			return
		}
	}
	t.Errorf("no %s point", telemetry.MetricPolicyIgnored)
}
