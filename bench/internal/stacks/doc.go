// Package stacks builds the client stacks the benchmark compares, all from
// one shared Policy so that every stack is configured alike:
//
//   - bare: a plain grpc-go client (no retries beyond grpc-go's transparent
//     ones);
//   - grpc-retry: grpc-go's built-in retry, configured by service config,
//     with retryThrottling;
//   - mw-retry: go-grpc-middleware v2 interceptors/retry;
//   - mw-retry+otel: the same plus otelgrpc.NewClientHandler;
//   - failsafe: failsafe-go's failsafegrpc interceptor with a retry policy,
//     a circuit breaker and a per-attempt timeout;
//   - ours: this repository's interceptors;
//   - ours+otel: the same with OpenTelemetry SDK providers installed.
//
// See Policy for how each setting maps onto each stack, and BENCHMARKS.md
// for what cannot be made equal.
package stacks
