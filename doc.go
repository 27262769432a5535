// Package resilience is the home of gRPC client middleware that keeps
// service-to-service calls working while a downstream is flaky, restarting,
// overloaded or gone. The code lives in its subpackages:
//
//   - interceptors: unary and stream client interceptors (the attempt loop:
//     deadlines, retries, breakers, retry budget, pushback, recovery across
//     restarts, hedging, telemetry, per-call and per-method policy) and dial
//     options.
//   - breaker: per-target circuit breakers (a state machine of its own;
//     the package documentation says why not sony/gobreaker).
//   - budget: the per-target retry budget (gRFC A6 token bucket).
//   - backoff: delay policies (exponential with jitter, constant).
//   - fallback: the stale-answer store and the fallback hook a method can
//     be given (interceptors.Fallback).
//   - monitoring: Prometheus recording and alerting rules and a Grafana
//     dashboard for the interceptors' metrics.
//   - redisbreaker (a module of its own): breakers shared by a fleet
//     through Redis.
//   - endpoint: the resilience_endpoint load-balancing policy: ejects a
//     failing endpoint, sends retries and hedges to untried endpoints.
//   - resiliencetest: a kit for users' tests and game days: fault and
//     latency server interceptors, a restartable loopback listener, and a
//     client chaos interceptor behind an on/off switch.
//
// This package itself holds no code. Every package documents its defaults
// and is safe for concurrent use. See the README for a quickstart and the
// defaults.
package resilience
