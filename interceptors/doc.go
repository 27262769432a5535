// Package interceptors provides gRPC client interceptors that keep calls
// working while a downstream is flaky, restarting or overloaded: retries
// with exponential backoff and jitter that never outlive the caller's
// deadline, a default call deadline, per-attempt timeouts, a circuit
// breaker and a retry budget per target, server pushback, fast recovery
// across restarts, opt-in hedging, OpenTelemetry spans and metrics, and
// dial options that switch off grpc-go's own retries and shorten its
// connect timeout.
//
// # Use
//
//	m, err := interceptors.New(interceptors.MaxAttempts(4))
//	if err != nil { ... }
//	conn, err := grpc.NewClient(target, append(m.DialOptions(),
//		grpc.WithTransportCredentials(creds))...)
//
// New and DialOptions is the one way to wire the interceptors: the unary
// and stream interceptors of one Middleware share its breakers and budgets.
//
// # The attempt loop
//
// One decision, taken in one place, governs unary calls, streams before
// they commit and hedged calls alike. For each call:
//
//  1. The call deadline is the caller's; if the caller's context has none,
//     the default call timeout (Timeout) is applied.
//  2. Before attempt n: if the connection is down, the call waits for it,
//     until the connection has been down for the ready wait
//     (WithReadyWait), after which calls fail fast; the target's circuit
//     breaker must admit
//     the attempt — an open breaker fails the call at once with
//     Unavailable matching breaker.ErrOpen, without touching the network,
//     and a half-open breaker whose probes are all out makes the attempt
//     wait (within the ready wait) for a probe to end.
//  3. Attempt n runs with a context bounded by the per-attempt timeout, if
//     any, and by the call deadline. From the second attempt on, the
//     attempt number travels to the server in the outgoing metadata under
//     AttemptMetadataKey; the caller's metadata is never modified.
//  4. The outcome goes to the breaker, the budget and telemetry, and the
//     decision follows, in this order: a success ends the call; so does
//     the caller's context ending, a non-retryable code, or a breaker
//     error. A negative pushback, the last attempt, or a retry budget
//     that refuses stop retrying: the call ends with the last error.
//  5. Otherwise the next attempt goes after the server's pushback delay if
//     it sent one, at once if the connection was down (the attempt waits
//     for it instead), or after the backoff delay. If that delay would not
//     end before the call deadline, the call ends at once with the last
//     attempt's error instead of sleeping into the deadline.
//
// Every wait (backoff, ready wait, breaker wait) ends at once when the caller's context ends — with the
// context's code — or when the connection is closed, with Canceled.
// DeadlineExceeded is retried only while the caller's context is alive (a
// per-attempt timeout fired, or the server sent the code).
//
// A failed call returns an *Error that keeps the last attempt's status
// (status.Code(err) is that attempt's code), the number of attempts and,
// when a policy stopped retrying early, why (Reason).
//
// # Call options that act once per call
//
// The caller's grpc.CallOptions go to every attempt, except those with a
// per-call meaning: grpc.OnFinish runs once, when the call ends, with the
// error the caller gets; grpc.Header, grpc.Trailer and grpc.Peer hold the
// last attempt's values (for hedged calls, the winner's). The
// interceptors' own CallOptions never reach the transport.
//
// # Defaults
//
//	max attempts          3 (DefaultMaxAttempts), counting the first
//	retryable codes       Unavailable, DeadlineExceeded
//	backoff               backoff.DefaultConfig(): 50 ms × 2^(n-1), cap 2 s, jitter 0.2
//	per-attempt timeout   none
//	call timeout          10 s (DefaultCallTimeout), only when the caller set no deadline
//	connect (DialOptions) MinConnectTimeout 3 s; reconnect backoff 1 s × 1.6^n, cap 3 s, jitter 0.2
//	retry budget          100 tokens, TokenRatio 1 (budget.DefaultConfig), per target
//	circuit breaker       per target: opens on >= 70 % failures of >= 50 in 10 s or 25 in a row; open 25 ms, x2 per failed probe up to 100 ms (breaker.DefaultConfig)
//	ready wait            5 s from when the connection went down; reconnect probe every 100 ms on average (each wait 50–150 ms)
//	endpoint ejection     off (WithEndpointEjection)
//	stream replay buffer  256 KiB
//	hedging               off
//
// # Streams
//
// Stream calls follow the same policy, with attempts counted per stream.
// A stream is retried only before it commits: the first response header or
// message, a call to Header that returns one, or client messages beyond
// the replay buffer (WithStreamReplayBuffer, default 256 KiB) commit it.
// Until then the client's messages are kept and replayed in order on the
// next attempt; after commit, errors reach the caller unchanged, so the
// application never sees a duplicated or lost message. The per-attempt
// timeout bounds the time to commit, not a committed stream. The attempt's
// context ends when the stream ends (or when the caller cancels); there is
// no goroutine per stream while it runs.
//
// # Retry budget, pushback, recovery, hedging
//
// Each target has a retry budget (package budget, gRFC A6 semantics;
// WithRetryBudget): retries pass only while recent attempts to the target
// mostly succeed, so an outage does not multiply the load on the target. A
// server's grpc-retry-pushback-ms trailer replaces the next delay (>= 0) or
// stops retrying (negative or malformed), for retries and hedges alike. When an attempt fails because the
// connection is down, the next attempt first waits for the connection,
// within the call deadline, while the connection's reconnect backoff is
// reset about every WithReconnectProbe interval (each wait jittered over
// [0.5, 1.5) x the interval). WithReadyWait bounds the outage, not each
// call: once the connection has been down that long, calls fail fast (and
// the breaker refuses them at once), still making the connection
// reconnect about once per probe interval, so that a restart shorter than
// the ready wait is ridden out and a downstream gone for good costs its
// callers no wait. Methods
// given Hedging are hedged: see HedgePolicy.
//
// Breakers are per target, for outages. For one bad endpoint among good
// ones, WithEndpointEjection installs package endpoint's load-balancing
// policy through DialOptions: it ejects the failing endpoint, and every
// call's retries and hedges go to endpoints the call has not tried yet.
//
// # Fallback
//
// Fallback gives read methods a fallback (package fallback): a stale copy
// of an earlier reply, or any answer of the handler's, for calls the
// downstream failed — a server failure (Unavailable, an attempt's
// DeadlineExceeded, Internal, ...), an open breaker, an exhausted budget, a
// pushback stop — and, Margin before the
// deadline, for calls still waiting on a hung server. Never for client
// errors or the caller's own cancel; never for streams. FallbackInfo, a
// resilience.fallback span event and the resilience.client.fallbacks
// counter say when it answered.
//
// # Per-method and per-call policy
//
// Each setting of the call policy is a PolicyOption with one name
// (MaxAttempts, RetryCodes, Backoff, PerAttemptTimeout, Timeout, Hedging,
// NoBreaker), given in any of three places: to New (the default of every
// call), to WithMethodPolicy (the methods a matcher selects: MatchMethods,
// MatchService, MatchMethodPrefix, or any rule with MatchFunc; one that can
// match nothing is rejected by New), or with a call. A service
// config (WithServiceConfig) sets the same policy from gRFC A6 JSON. The
// layers apply in order — defaults, New's PolicyOptions, the service
// config, method policies, the call's own — and all but the last are
// resolved once per method (and per service config version), not on every
// call. PolicyOptions passed with a call are removed before the call
// reaches the transport. Alternatively, scope a whole Middleware to some
// methods with go-grpc-middleware's selector package.
//
// # Service config
//
// WithServiceConfig takes the JSON grpc.WithDefaultServiceConfig takes
// (gRFC A6) and gives it the same meaning:
//
//	methodConfig[].name            [{"service": "pkg.Svc", "method": "M"}]: exact method > service > {} (default)
//	methodConfig[].timeout         "1.5s": the deadline of a call that has none
//	methodConfig[].retryPolicy     maxAttempts (>= 2), initialBackoff, maxBackoff, backoffMultiplier,
//	                               retryableStatusCodes (names such as "UNAVAILABLE", or numbers)
//	methodConfig[].hedgingPolicy   maxAttempts (>= 2), hedgingDelay, nonFatalStatusCodes
//	retryThrottling                maxTokens (0, 1000], tokenRatio > 0: the retry budget per target
//
// The backoff of a retryPolicy is grpc-go v1.85's: before retry n (counted
// since the last server pushback), min(initialBackoff × backoffMultiplier^(n−1),
// maxBackoff) times a random factor in [0.8, 1.2). A hedgingPolicy's
// maxAttempts attempts may all be in flight; without nonFatalStatusCodes
// every failure is fatal, as in A6.
//
// What A6 lacks lives under the "resilience" key (ExtensionKey), which
// grpc-go's parser ignores, so one JSON can serve both:
//
//	methodConfig[].resilience.perAttemptTimeout   "0.5s"
//	methodConfig[].resilience.hedgingPercentile   0.95: hedge at the method's observed p95 (with a hedgingPolicy)
//	methodConfig[].resilience.breaker             false: the methods bypass the breaker
//	resilience.readyWait                          "5s": WithReadyWait (read by New only)
//	resilience.breaker                            window, openTimeout, maxOpenTimeout, openMultiplier,
//	                                              openJitter, minRequests, failureRatio,
//	                                              consecutiveFailures, halfOpenProbes (read by New only)
//	resilience.concurrencyLimit                   false, or fixed, initialLimit, minLimit, maxLimit,
//	                                              queue (a count or "none"), perMethod:
//	                                              WithConcurrencyLimit (read by New only)
//	resilience.throttle                           false, or {} / k, window: WithThrottle (read by New only)
//
// Errors name the JSON path and the value. SetServiceConfig swaps the JSON
// of a running Middleware atomically; MethodPolicy tells what a method
// resolved to.
//
// # Telemetry
//
// Calls are traced and measured with OpenTelemetry. Attribute names follow
// the semantic conventions v1.43.0 (go.opentelemetry.io/otel/semconv/v1.43.0,
// the version shipped with go.opentelemetry.io/otel v1.47.0, also used by
// otelgrpc v0.72.0); in that version the service is part of rpc.method
// ("pkg.Service/Method") and the status code is rpc.response.status_code,
// a name such as "UNAVAILABLE". What the conventions do not cover is in the
// resilience.* namespace.
//
// Each call makes a span tree under the caller's span:
//
//	pkg.Service/Method  INTERNAL  the logical call
//	├─ pkg.Service/Method  CLIENT  attempt 1  → the server's span
//	└─ pkg.Service/Method  CLIENT  attempt 2  → the server's span
//
// The call span is INTERNAL because the attempts are the RPCs: a CLIENT
// span above CLIENT attempt spans would make service maps and span-derived
// RPC metrics count each request twice. It carries rpc.method and, when it
// ends, resilience.attempts, rpc.response.status_code and, on failure,
// error.type and status Error with the last status message. Its events:
//
//	resilience.retry             resilience.attempt (the attempt to come), resilience.retry.delay (s),
//	                             rpc.response.status_code (of the attempt that failed)
//	resilience.breaker.rejected  resilience.attempt (the attempt refused), error.type
//	resilience.budget.exhausted  resilience.attempt (the retry refused)
//	resilience.pushback          resilience.pushback.delay (s), or resilience.pushback.stop=true
//	resilience.refused           resilience.attempt, resilience.refusal (limiter, throttle), error.type
//	resilience.limiter.queued    resilience.attempt, resilience.limiter.wait (s), resilience.limiter.admitted
//
// A call refused by a breaker before any attempt still leaves its call span.
// Attempt spans are CLIENT spans with rpc.system.name, rpc.method,
// server.address and server.port (from the dial target),
// resilience.attempt and, when the target's breaker was not closed (a
// half-open probe), resilience.breaker.state (half-open, open). They end with
// rpc.response.status_code and, for any code but OK, error.type and status
// Error, as the conventions require for client spans.
//
// The trace context of each attempt is injected, with the propagator set
// by WithPropagators (default: the global one), into a copy of the
// outgoing metadata; the caller's metadata is never modified. The server's
// span is thus a child of its attempt span. A call that is not sampled
// records no span but still passes the unsampled context on, so that the
// server keeps the caller's sampling decision. Nothing is injected while
// tracing is off.
//
// otelgrpc.NewClientHandler, installed as a stats handler, makes a CLIENT
// span of its own for each attempt, under the attempt span, and injects
// that span instead:
//
//	call INTERNAL ─ attempt CLIENT (ours) ─ attempt CLIENT (otelgrpc) ─ server SERVER
//
// To keep one CLIENT span per attempt, use WithAttemptSpans(false):
// otelgrpc's spans then hang directly under the call span, and each attempt
// becomes a resilience.attempt event on the call span (resilience.attempt,
// rpc.response.status_code, error.type, resilience.breaker.state).
//
// Metrics are named resilience.client.* so that they never collide with
// otelgrpc's rpc.client.*:
//
//	resilience.client.attempts               counter    {attempt}    attempts that reached the transport
//	resilience.client.retries                counter    {retry}      retries scheduled, by the code retried
//	resilience.client.call.duration          histogram  s            logical calls, backoff waits included
//	resilience.client.attempt.duration       histogram  s            single attempts
//	resilience.client.breaker.state          gauge      {state}      0 closed, 1 half-open, 2 open; by resilience.breaker.key
//	resilience.client.breaker.rejections     counter    {rejection}  attempts refused by a breaker
//	resilience.client.budget.throttled       counter    {retry}      retries refused by the retry budget
//	resilience.client.fallbacks              counter    {call}       fallbacks asked to answer, by resilience.fallback.result
//	resilience.client.policy.ignored         counter    {call}       calls a setting of their policy did not apply to, by resilience.policy.setting
//	resilience.client.refusals               counter    {attempt}    attempts the client refused itself, by resilience.refusal (limiter, throttle)
//	resilience.client.limiter.queue_wait     histogram  s            waits in the limiter's queue, by resilience.limiter.admitted
//	resilience.client.limiter.limit          gauge      {attempt}    concurrency limit, per target (or target and method)
//	resilience.client.limiter.in_flight      updown     {attempt}    attempts holding a place under it
//	resilience.client.limiter.queued         updown     {attempt}    attempts waiting in its queue
//	resilience.client.throttle.probability   gauge      1            probability that throttling refuses the next attempt
//
// WithMetricNames(MetricNamesGRPC) records the call and attempt metrics
// under gRPC's standard names instead (gRFC A66 grpc.client.attempt.started,
// grpc.client.attempt.duration, grpc.client.call.duration and A96
// grpc.client.call.retries, .hedges, .retry_delay); the breaker, budget,
// fallback, policy ignored and overload metrics keep their names (and
// take grpc.method and grpc.target). Package monitoring ships Prometheus
// rules and dashboards for both namings.
//
// They carry rpc.system.name, rpc.method, server.address and server.port
// (with MetricNamesGRPC: grpc.method and grpc.target); attempts, retries
// and the durations add rpc.response.status_code, and the durations of
// failures error.type. The limiter and throttle gauges are per target, not
// per call: they carry resilience.target, the target as dialled (with
// MetricNamesGRPC: grpc.target), and rpc.method (grpc.method) for limiters
// keyed by method. They are observable instruments (updown: an
// UpDownCounter, which adds up across targets; Prometheus shows it as a
// gauge), read from the Middleware's limiters when the metrics are
// collected, at no cost to the calls. The MeterProvider holds the
// Middleware weakly: a Middleware that is no longer used is garbage
// collected, and its gauges stop.
//
// Payloads and metadata values are never recorded: spans and metrics hold
// the method, the target, status codes and, as span status descriptions,
// status messages.
//
// WithTracerProvider and WithMeterProvider default to the global providers,
// looked up on each call, so providers installed with otel.SetTracerProvider
// or otel.SetMeterProvider after New take effect. While tracing and metrics
// are off (no-op providers, or global providers never installed), the
// telemetry of a call costs a few nanoseconds and allocates nothing.
//
// # Logs
//
// WithLogger(*slog.Logger) logs what an operator acts on: breaker
// transitions (open at Warn), calls that gave up after retries or whose
// retries a policy stopped (attempts, last code, reason), rate-limited per
// target, once per setting, method and target, a setting that did not
// apply to the calls it was given for (Warn: hedging on a stream,
// endpoint ejection replaced by the channel's own service config), and a
// concurrency limit that fell by half or to its minimum (Warn) or
// recovered (Info). Nothing is logged for successful calls, and never a payload or a
// metadata value. Off by default.
//
// # Concurrency
//
// A Middleware and its interceptors are safe for concurrent use. The
// attempt loop runs on the caller's goroutine; no goroutine is started on
// the happy path, hedged calls included until a hedge actually fires.
// Goroutines exist only for hedges that fired (one per hedge, all ended
// before the call returns) and, while calls wait on a connection, one
// watcher per connection (it ends the waits when the connection closes and
// probes reconnection during ready waits).
package interceptors
