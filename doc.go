// Package resilience is the home of gRPC client middleware that keeps
// service-to-service calls working while a downstream is flaky, restarting,
// overloaded or gone. The code lives in its subpackages:
//
//   - interceptors: unary and stream client interceptors (the attempt loop:
//     deadlines, retries, per-call and per-method policy) and dial options.
//   - backoff: delay policies (exponential with jitter, constant).
//
// See the README for a quickstart and the defaults.
package resilience
