package readme

import (
	"bytes"
	"context"
	"net"
	"sync"

	collmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// lockedBuffer collects a process's output, written from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// collector accepts OTLP/gRPC traces and metrics and drops them.
type collector struct {
	colltracepb.UnimplementedTraceServiceServer
}

func (collector) Export(context.Context, *colltracepb.ExportTraceServiceRequest) (*colltracepb.ExportTraceServiceResponse, error) {
	return &colltracepb.ExportTraceServiceResponse{}, nil
}

type metricsCollector struct {
	collmetricpb.UnimplementedMetricsServiceServer
}

func (metricsCollector) Export(context.Context, *collmetricpb.ExportMetricsServiceRequest) (*collmetricpb.ExportMetricsServiceResponse, error) {
	return &collmetricpb.ExportMetricsServiceResponse{}, nil
}

// startCollector serves a collector on lis and returns its stop.
func startCollector(lis net.Listener) (stop func()) {
	gs := grpc.NewServer()
	colltracepb.RegisterTraceServiceServer(gs, collector{})
	collmetricpb.RegisterMetricsServiceServer(gs, metricsCollector{})
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	return func() { gs.Stop(); <-done }
}
