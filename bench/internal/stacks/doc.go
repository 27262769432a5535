// Package stacks builds the client stacks the benchmarks compare, all from
// one shared Policy so that every stack is configured alike.
//
// The classic comparison (All, cmd/compare):
//
//   - bare: a plain grpc-go client (no retries beyond grpc-go's transparent
//     ones);
//   - grpc-retry: grpc-go's built-in retry, configured by service config,
//     with retryThrottling;
//   - mw-retry: go-grpc-middleware v2 interceptors/retry;
//   - mw-retry+otel: the same plus otelgrpc.NewClientHandler;
//   - failsafe: failsafe-go's failsafegrpc interceptor with a retry policy,
//     a circuit breaker and a per-attempt timeout;
//   - ours: this repository's interceptors, every Policy setting mapped
//     onto them (OursOptions);
//   - ours+otel: the same with OpenTelemetry SDK providers installed.
//
// The overload comparison (Overload, cmd/overload), from OverloadPolicy:
// bare, grpc-retry and mw-retry as above; failsafe-limiter,
// failsafe-throttler and failsafe-bulkhead, failsafe-go's adaptivelimiter
// and adaptivethrottler with their defaults and its bulkhead at the
// server's true capacity, each alone in a failsafegrpc interceptor as
// failsafe-go documents for gRPC clients; and the ours family
// (OursFamily): interceptors.New with only what the scenario's user sets
// (UserOptions) plus each variant's options, everything else at the
// library's defaults, so that a change of a default shows.
//
// See Policy for how each setting maps onto each stack, and BENCHMARKS.md
// for what cannot be made equal.
package stacks
