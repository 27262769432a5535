package telemetry

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	_ "google.golang.org/grpc" // registers the dns, passthrough and unix resolvers, as in every client
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// collect reads every metric of reader, by instrument name.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func newGRPCRecorder(t *testing.T) (Recorder, *sdkmetric.ManualReader) {
	t.Helper()
	return newMeteredRecorder(t, NamesGRPC)
}

func TestGRPCNamesRetriedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, reader := newGRPCRecorder(t)
		ctx := context.Background()

		cctx, c := r.StartCall(ctx, method, "localhost:50051")
		_, a := c.StartAttempt(cctx, 1)
		time.Sleep(10 * time.Millisecond)
		a.End(status.Error(codes.Unavailable, "down"))
		c.RetryScheduled(2, 40*time.Millisecond, codes.Unavailable)
		time.Sleep(40 * time.Millisecond) // the backoff: no attempt in flight
		_, a = c.StartAttempt(cctx, 2)
		time.Sleep(5 * time.Millisecond)
		a.End(nil)
		c.End(nil)

		got := collect(t, reader)
		for _, name := range []string{MetricAttempts, MetricRetries, MetricCallDuration, MetricAttemptDuration, MetricGRPCCallHedges} {
			if _, ok := got[name]; ok {
				t.Errorf("%s recorded with gRPC names", name)
			}
		}
		base := attribute.NewSet(attrGRPCMethod.String("resilience.testing.v1.EchoService/Echo"), attrGRPCTarget.String("dns:///localhost:50051"))
		withStatus := func(s string) attribute.Set {
			return attribute.NewSet(append(base.ToSlice(), attrGRPCStatus.String(s))...)
		}

		started := got[MetricGRPCAttemptStarted].Data.(metricdata.Sum[int64])
		if len(started.DataPoints) != 1 || started.DataPoints[0].Value != 2 || !started.DataPoints[0].Attributes.Equals(&base) {
			t.Errorf("%s = %+v, want 2 with %v", MetricGRPCAttemptStarted, started.DataPoints, base.Encoded(attribute.DefaultEncoder()))
		}
		ad := got[MetricGRPCAttemptDuration].Data.(metricdata.Histogram[float64])
		if len(ad.DataPoints) != 2 {
			t.Fatalf("%s has %d points, want 2 (UNAVAILABLE, OK)", MetricGRPCAttemptDuration, len(ad.DataPoints))
		}
		for _, dp := range ad.DataPoints {
			if !slices.Equal(dp.Bounds, A66LatencyBuckets) {
				t.Errorf("%s bounds %v, want A66's", MetricGRPCAttemptDuration, dp.Bounds)
			}
			unavailable, ok := withStatus("UNAVAILABLE"), withStatus("OK")
			switch {
			case dp.Attributes.Equals(&unavailable):
				if dp.Sum != 0.010 {
					t.Errorf("failed attempt took %v s, want 0.010", dp.Sum)
				}
			case dp.Attributes.Equals(&ok):
				if dp.Sum != 0.005 {
					t.Errorf("second attempt took %v s, want 0.005", dp.Sum)
				}
			default:
				t.Errorf("unexpected attempt attributes %v", dp.Attributes.Encoded(attribute.DefaultEncoder()))
			}
		}
		cd := got[MetricGRPCCallDuration].Data.(metricdata.Histogram[float64])
		okSet := withStatus("OK")
		if len(cd.DataPoints) != 1 || !cd.DataPoints[0].Attributes.Equals(&okSet) || cd.DataPoints[0].Sum != 0.055 {
			t.Errorf("%s = %+v, want one call of 0.055 s with status OK", MetricGRPCCallDuration, cd.DataPoints)
		}
		retries := got[MetricGRPCCallRetries].Data.(metricdata.Histogram[int64])
		if len(retries.DataPoints) != 1 || retries.DataPoints[0].Count != 1 || retries.DataPoints[0].Sum != 1 ||
			!slices.Equal(retries.DataPoints[0].Bounds, A96CountBuckets) || !retries.DataPoints[0].Attributes.Equals(&base) {
			t.Errorf("%s = %+v, want one call with 1 retry, bounds %v, attributes %v", MetricGRPCCallRetries, retries.DataPoints, A96CountBuckets, base)
		}
		delay := got[MetricGRPCCallRetryDelay].Data.(metricdata.Histogram[float64])
		if len(delay.DataPoints) != 1 || delay.DataPoints[0].Sum != 0.040 {
			t.Errorf("%s = %+v, want one call with 0.040 s without an attempt in flight", MetricGRPCCallRetryDelay, delay.DataPoints)
		}
	})
}

func TestGRPCNamesHedgedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, reader := newGRPCRecorder(t)
		cctx, c := r.StartCall(context.Background(), method, "passthrough:///bufnet")
		_, a1 := c.StartAttempt(cctx, 1)
		time.Sleep(25 * time.Millisecond)
		_, a2 := c.StartAttempt(cctx, 2) // the hedge delay elapsed: no retry scheduled
		a1.End(status.Error(codes.Unavailable, "down"))
		c.RetryScheduled(3, 0, codes.Unavailable) // hedged calls go again at once
		_, a3 := c.StartAttempt(cctx, 3)
		a2.End(status.Error(codes.Canceled, "lost the race"))
		a3.End(nil)
		c.End(nil)

		got := collect(t, reader)
		hedges := got[MetricGRPCCallHedges].Data.(metricdata.Histogram[int64])
		if len(hedges.DataPoints) != 1 || hedges.DataPoints[0].Sum != 1 {
			t.Errorf("%s = %+v, want one call with 1 hedge", MetricGRPCCallHedges, hedges.DataPoints)
		}
		retries := got[MetricGRPCCallRetries].Data.(metricdata.Histogram[int64])
		if len(retries.DataPoints) != 1 || retries.DataPoints[0].Sum != 1 {
			t.Errorf("%s = %+v, want one call with 1 retry", MetricGRPCCallRetries, retries.DataPoints)
		}
		delay := got[MetricGRPCCallRetryDelay].Data.(metricdata.Histogram[float64])
		if len(delay.DataPoints) != 1 || delay.DataPoints[0].Sum != 0 {
			t.Errorf("%s = %+v, want 0: an attempt was always in flight", MetricGRPCCallRetryDelay, delay.DataPoints)
		}
		target := got[MetricGRPCAttemptStarted].Data.(metricdata.Sum[int64]).DataPoints[0].Attributes
		if v, _ := target.Value(attrGRPCTarget); v.AsString() != "passthrough:///bufnet" {
			t.Errorf("grpc.target = %q, want the registered scheme kept", v.AsString())
		}
	})
}

func TestGRPCNamesSingleAttemptReportsNoA96(t *testing.T) {
	r, reader := newGRPCRecorder(t)
	for _, err := range []error{nil, status.Error(codes.NotFound, "no")} {
		cctx, c := r.StartCall(context.Background(), method, "localhost:1")
		_, a := c.StartAttempt(cctx, 1)
		a.End(err)
		c.End(err)
	}
	got := collect(t, reader)
	for _, name := range []string{MetricGRPCCallRetries, MetricGRPCCallHedges, MetricGRPCCallRetryDelay} {
		if _, ok := got[name]; ok {
			t.Errorf("%s reported for calls of one attempt", name)
		}
	}
	if v := got[MetricGRPCAttemptStarted].Data.(metricdata.Sum[int64]).DataPoints[0].Value; v != 2 {
		t.Errorf("%s = %d, want 2", MetricGRPCAttemptStarted, v)
	}
}

func TestCanonicalTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"localhost:50051", "dns:///localhost:50051"},
		{"127.0.0.1:50051", "dns:///127.0.0.1:50051"},
		{"[::1]:50051", "dns:///[::1]:50051"},
		{"dns:///orders:443", "dns:///orders:443"},
		{"passthrough:///bufnet", "passthrough:///bufnet"},
		{"unix:///tmp/s.sock", "unix:///tmp/s.sock"},
		{"orders", "dns:///orders"},
	} {
		if got := canonicalTarget(tc.in); got != tc.want {
			t.Errorf("canonicalTarget(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkMetricNames measures the hooks of a successful one-attempt call
// with an SDK MeterProvider (no tracing), under each naming, in one run:
//
//	go test -run '^$' -bench BenchmarkMetricNames -count 6 ./internal/telemetry/ | tee names.txt
//	benchstat -col /names names.txt
func BenchmarkMetricNames(b *testing.B) {
	for _, tc := range []struct {
		name  string
		names Names
	}{{"resilience", NamesResilience}, {"grpc", NamesGRPC}} {
		b.Run("names="+tc.name, func(b *testing.B) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			r := New(Options{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: mp, MetricNames: tc.names})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				cctx, c := r.StartCall(ctx, method, "localhost:50051")
				_, a := c.StartAttempt(cctx, 1)
				a.End(nil)
				c.End(nil)
			}
		})
	}
}
