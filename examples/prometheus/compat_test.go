package main

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcotel "google.golang.org/grpc/stats/opentelemetry"

	"github.com/grpc-resilience/resilience/interceptors"
	"github.com/grpc-resilience/resilience/monitoring"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
	"github.com/grpc-resilience/resilience/throttle"
)

// families runs calls, some of them retried, through a client made with
// names and the stats handlers of with ("grpc-go": grpc-go's
// stats/opentelemetry client metrics; "otelgrpc"; "throttle" adds
// client-side throttling, whose first call succeeds), all on one
// MeterProvider read by the OpenTelemetry Prometheus exporter, and returns
// what the registry gathers: for each metric family, the instrumentation
// scopes that wrote it, and the label names of its series.
func families(t *testing.T, names interceptors.MetricNames, with ...string) (scopes, labels map[string][]string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())

	faults, err := resiliencetest.NewFaults()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(gs, resiliencetest.EchoServer{})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	var opts []grpc.DialOption
	mopts := []interceptors.Option{interceptors.WithMeterProvider(mp), interceptors.WithMetricNames(names)}
	for _, w := range with {
		switch w {
		case "grpc-go":
			// Before the interceptors: its call metrics see the logical call.
			opts = append(opts, grpcotel.DialOption(grpcotel.Options{MetricsOptions: grpcotel.MetricsOptions{MeterProvider: mp}}))
		case "otelgrpc":
			opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithMeterProvider(mp))))
		case "throttle":
			// After a success, a K this large never refuses the retries below.
			mopts = append(mopts, interceptors.WithThrottle(throttle.Config{K: 1000}))
		}
	}
	m := interceptors.MustNew(mopts...)
	opts = append(opts, m.DialOptions()...)
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stub := testingv1.NewEchoServiceClient(conn)
	const method = testingv1.EchoService_Echo_FullMethodName
	if _, err := stub.Echo(context.Background(), &testingv1.EchoRequest{Message: "hi"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := faults.InjectNext(method, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
			t.Fatal(err)
		}
		if _, err := stub.Echo(context.Background(), &testingv1.EchoRequest{Message: "hi"}); err != nil {
			t.Fatal(err)
		}
	}

	mfs, err := reg.Gather() // fails on duplicate or inconsistent series
	if err != nil {
		t.Fatalf("gathering %v beside the interceptors: %v", with, err)
	}
	scopes, labels = map[string][]string{}, map[string][]string{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "otel_scope_name" && !slices.Contains(scopes[mf.GetName()], lp.GetValue()) {
					scopes[mf.GetName()] = append(scopes[mf.GetName()], lp.GetValue())
				}
				if !slices.Contains(labels[mf.GetName()], lp.GetName()) {
					labels[mf.GetName()] = append(labels[mf.GetName()], lp.GetName())
				}
			}
		}
		sort.Strings(scopes[mf.GetName()])
	}
	return scopes, labels
}

// TestSeriesBesideGRPCGoAndOtelgrpc gathers the metrics of the supported
// combinations under the OpenTelemetry Prometheus exporter: no series is
// duplicated or conflicting, no family is written by two
// instrumentations, and the interceptors' families carry the names the
// monitoring rules read.
func TestSeriesBesideGRPCGoAndOtelgrpc(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names interceptors.MetricNames
		with  []string
		ours  []string // families the interceptors must have written
		label string   // a label those families carry
	}{
		{"default names, grpc-go and otelgrpc", interceptors.MetricNamesResilience, []string{"grpc-go", "otelgrpc"},
			[]string{monitoring.Attempts, monitoring.Retries, monitoring.CallDuration + "_bucket", monitoring.AttemptDuration + "_bucket", monitoring.BreakerState},
			"server_address"},
		{"gRPC names and otelgrpc", interceptors.MetricNamesGRPC, []string{"otelgrpc"},
			[]string{monitoring.GRPCAttemptStarted, monitoring.GRPCAttemptDuration + "_bucket", monitoring.GRPCCallDuration + "_bucket",
				monitoring.GRPCCallRetries + "_bucket", monitoring.GRPCCallRetryDelay + "_bucket", monitoring.BreakerState},
			"grpc_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scopes, labels := families(t, tc.names, tc.with...)
			for fam, sc := range scopes {
				if len(sc) > 1 {
					t.Errorf("family %s is written by %v", fam, sc)
				}
			}
			for _, fam := range tc.ours {
				fam = trimBucket(fam)
				if sc := scopes[fam]; len(sc) != 1 || sc[0] != "github.com/grpc-resilience/resilience/interceptors" {
					t.Errorf("family %s written by %v, want the interceptors alone (families: %v)", fam, sc, keys(scopes))
				}
				if fam != monitoring.BreakerState && !slices.Contains(labels[fam], tc.label) {
					t.Errorf("family %s has labels %v, want %s", fam, labels[fam], tc.label)
				}
			}
		})
	}
}

// TestGRPCNamesBesideGRPCGoCollide backs what MetricNamesGRPC documents:
// beside grpc-go's own client metrics, both write the A66 families, which
// would be counted twice.
func TestGRPCNamesBesideGRPCGoCollide(t *testing.T) {
	scopes, _ := families(t, interceptors.MetricNamesGRPC, "grpc-go")
	if sc := scopes[monitoring.GRPCAttemptStarted]; len(sc) != 2 {
		t.Errorf("%s written by %v, want grpc-go and the interceptors", monitoring.GRPCAttemptStarted, sc)
	}
}

// trimBucket gives the family name of a histogram series name.
func trimBucket(s string) string {
	if n := len(s) - len("_bucket"); n > 0 && s[n:] == "_bucket" {
		return s[:n]
	}
	return s
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
