// Otelgrpc: the interceptors beside otelgrpc.NewClientHandler.
//
// otelgrpc's stats handler makes a CLIENT span per attempt, and so do the
// interceptors by default. To keep one CLIENT span per attempt, turn the
// interceptors' attempt spans off with WithAttemptSpans(false): the
// interceptors then make the logical call's span (INTERNAL) with an event
// per attempt, otelgrpc's CLIENT spans hang under it, and each server span
// under its attempt. The example prints both trees for a call whose first
// attempt fails, and the metric names both libraries record: the
// interceptors' resilience.client.* never collide with otelgrpc's
// rpc.client.*.
//
//	go -C examples run ./otelgrpc
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	fmt.Fprintln(w, "WithAttemptSpans(false) + otelgrpc.NewClientHandler (recommended):")
	if err := demo(w, false); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nattempt spans on (the default) + otelgrpc: two CLIENT spans per attempt:")
	return demo(w, true)
}

// demo makes one call whose first attempt fails and prints its spans as a
// tree and, with attemptSpans false, the metric names recorded.
func demo(w io.Writer, attemptSpans bool) error {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	metrics := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics))
	defer mp.Shutdown(context.Background())
	prop := propagation.TraceContext{}

	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return err
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		return err
	}
	srv := grpc.NewServer(append(faults.ServerOptions(), grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))))...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	m, err := interceptors.New(
		interceptors.WithAttemptSpans(attemptSpans),
		interceptors.WithTracerProvider(tp),
		interceptors.WithMeterProvider(mp),
		interceptors.WithPropagators(prop),
	)
	if err != nil {
		return err
	}
	opts := append(m.DialOptions(),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp), otelgrpc.WithPropagators(prop))),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)

	// The first attempt fails with Unavailable.
	if err := faults.InjectNext(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx, span := tp.Tracer("app").Start(ctx, "checkout")
	_, err = client.Echo(ctx, &testingv1.EchoRequest{Message: "hi"})
	span.End()
	if err != nil {
		return err
	}
	// The server ends its spans just after it answers: wait for both.
	for countKind(spans.Ended(), trace.SpanKindServer) < 2 {
		if ctx.Err() != nil {
			return fmt.Errorf("server spans: %w", ctx.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	printTree(w, spans.Ended())

	if !attemptSpans {
		var rm metricdata.ResourceMetrics
		if err := metrics.Collect(context.Background(), &rm); err != nil {
			return err
		}
		var names []string
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				names = append(names, m.Name)
			}
		}
		slices.Sort(names)
		fmt.Fprintf(w, "metrics:\n    %s\n", strings.Join(names, "\n    "))
	}
	return nil
}

func countKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) int {
	n := 0
	for _, s := range spans {
		if s.SpanKind() == kind {
			n++
		}
	}
	return n
}

// printTree prints spans as a tree by parent, children in start order:
// name, kind, the library that made it, its status and its events.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
	}
	for _, c := range children {
		slices.SortFunc(c, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	}
	var walk func(s sdktrace.ReadOnlySpan, indent, branch string)
	walk = func(s sdktrace.ReadOnlySpan, indent, branch string) {
		line := fmt.Sprintf("%s%s%s  %v  [%s]", indent, branch, s.Name(), s.SpanKind(), library(s))
		if s.Status().Code != 0 {
			line += "  status " + s.Status().Code.String()
		}
		var events []string
		for _, e := range s.Events() {
			events = append(events, e.Name)
		}
		if len(events) > 0 {
			line += "  events: " + strings.Join(events, ", ")
		}
		fmt.Fprintln(w, line)
		kids := children[s.SpanContext().SpanID()]
		next := indent
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			b := "├─ "
			if i == len(kids)-1 {
				b = "└─ "
			}
			walk(k, next, b)
		}
	}
	for _, root := range children[trace.SpanID{}] {
		walk(root, "  ", "")
	}
}

func library(s sdktrace.ReadOnlySpan) string {
	name := s.InstrumentationScope().Name
	switch {
	case strings.HasSuffix(name, "/otelgrpc"):
		return "otelgrpc"
	case strings.HasPrefix(name, "github.com/grpc-resilience/resilience"):
		return "resilience"
	default:
		return cmp.Or(name, "app")
	}
}
