package interceptors

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
)

// telemetry records spans and metrics for calls. The zero value records
// nothing.
type telemetry struct{}

// callTelemetry records one logical call.
type callTelemetry struct{}

// attemptTelemetry records one attempt.
type attemptTelemetry struct{}

func (t *telemetry) startCall(ctx context.Context, method, target string) (context.Context, callTelemetry) {
	return ctx, callTelemetry{}
}

func (c *callTelemetry) startAttempt(ctx context.Context, n int) (context.Context, attemptTelemetry) {
	return ctx, attemptTelemetry{}
}

func (c *callTelemetry) retryScheduled(next int, delay time.Duration, code codes.Code) {}

func (c *callTelemetry) end(err error) {}

func (a *attemptTelemetry) end(err error) {}
