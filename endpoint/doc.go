// Package endpoint is a gRPC load-balancing policy, registered as
// "resilience_endpoint", that takes a failing endpoint (one bad pod of a
// headless Kubernetes service, say) out of rotation and sends a call's
// retries and hedges to endpoints the call has not tried yet.
//
// A per-target circuit breaker is for outages: when every endpoint fails.
// This policy is for a bad endpoint among good ones, which a breaker must
// not trip on and under plain round_robin costs every caller a share of
// failed first attempts for as long as it stays bad.
//
// # Model
//
// The policy is built on grpc-go's balancer API the way its own round_robin
// and weighted_round_robin are: endpointsharding with one pick_first child
// per endpoint the resolver reports (pick_first walks an endpoint's
// addresses and reconnects it). The picker round-robins over the ready
// endpoints that are in service and wraps every pick's Done callback, so it
// sees each attempt's outcome per endpoint, classified as the rest of the
// library classifies outcomes (package breaker's DefaultIsFailure and
// DefaultIsExcluded), with the call's context deciding DeadlineExceeded:
//
//   - failure (the endpoint or the path to it is in trouble): Unavailable,
//     Internal, Unknown, ResourceExhausted, DataLoss, errors without a gRPC
//     status, and DeadlineExceeded while the call is still wanted (a deadline
//     the server sent, or an attempt timeout of the interceptors while the
//     call's context from [NewCall] is alive);
//   - success (the endpoint answered): nil and every other code, such as
//     InvalidArgument, NotFound, PermissionDenied, Unimplemented;
//   - excluded (the caller gave up, which says nothing about the endpoint):
//     Canceled, plain context errors, and DeadlineExceeded once the call's
//     context (without a call record: the attempt's) is done. Excluded
//     outcomes count neither way.
//
// An endpoint in service is ejected after a failure when either rule holds
// (fields of [Config], JSON keys in parentheses):
//
//   - consecutive rule: ConsecutiveFailures (consecutiveFailures, default
//     20) failures in a row; a success resets the run;
//   - failure-ratio rule: within the rolling Window (window, 10s, rolled in
//     10 steps) at least MinRequests (minRequests, 50) counted outcomes of
//     which at least FailureRatio (failureRatio, 0.7) are failures;
//
// and the cap allows it: at most floor(n x MaxEjectedRatio) (maxEjectedRatio,
// 0.2) of the target's n endpoints are ejected at once, but at least one when
// n >= 2, so that one bad endpoint of two to four can go (as gRFC A50 allows
// one ejection when its percentage rounds down to none). With a single
// endpoint nothing is ejected: there is nowhere else to go, and the breaker
// handles it. An endpoint whose rule holds while the cap is reached stays in
// service and is ejected at its next failure once a slot is free.
//
// The k-th ejection of an endpoint lasts k x BaseEjectionTime
// (baseEjectionTime, 30s), at most MaxEjectionTime (maxEjectionTime, 5m);
// k drops by one for every BaseEjectionTime the endpoint spends in service.
// An endpoint that stays bad is thus out for 30s, 60s, 90s, … then 5 minutes
// at a time, each return costing ConsecutiveFailures failed attempts (which
// the call record sends on to other endpoints). An ejected endpoint's
// outcomes are ignored (it gets attempts only when nothing else is left);
// it returns with an empty window and run.
//
// The picker skips ejected endpoints. If every ready endpoint is ejected or
// tried (see below), it still picks one: ejection never makes a call fail
// by itself.
//
// # Why these defaults
//
// Under independent 30% noise (every attempt to every endpoint fails with
// probability 0.3) the defaults eject nothing in practice:
//
//   - the consecutive rule completes a run of 20 with probability
//     0.7 x 0.3^20 = 2.4e-11 per attempt: one false ejection per 13 years at
//     a sustained 100 attempts/s to one endpoint, per 1.3 years at 1000/s;
//   - the failure-ratio rule is most exposed at 5 attempts/s per endpoint,
//     where the window just reaches 50 outcomes: P(at least 35 of 50 fail) =
//     6.5e-9, and a union bound over every evaluation (each failure) gives at
//     most 3.5e-5 false ejections per endpoint and hour; 7e-6 at 6/s, 7e-11
//     at 10/s (90 outcomes or more), 5e-24 at 20/s. Below 5/s the window
//     never holds 50 outcomes and the rule cannot fire.
//
// The tests simulate 20 seeds of 30% noise over five endpoints (an hour at
// 5/s and 30s at 400/s per endpoint) and see no ejection, while rules as eager
// as Envoy's default (5 consecutive failures: 1.7e-3 per attempt) or 50% of
// 20 eject under the same noise.
//
// An endpoint failing 100% is ejected at its 20th failure whatever the rate
// and whatever its window held: within 1s once it gets 20 attempts/s or more
// (100/s over five endpoints), within 50 failures always. One failing 75% of
// the time, where runs of 20 are rare (7.9e-4 per attempt), goes by the
// failure-ratio rule once its window holds 50 outcomes. A full outage of all
// endpoints ejects one of five (the cap) and leaves the rest to the breaker.
//
// Set MinRequests or ConsecutiveFailures to math.MaxInt32 to switch a rule
// off.
//
// # Retries and hedges go elsewhere
//
// [NewCall] attaches a record to a logical call's context; the interceptors
// give that context (or one derived from it) to every attempt. The picker
// records in it, at pick time and under the record's lock, the endpoint of
// every attempt, and picks by preference: a ready endpoint in service the
// call has not tried; else one not tried though ejected; else one in service
// (the normal round robin, also when the call has tried every ready
// endpoint); else any. Where several qualify and the round-robin turn's does
// not, they take turns, one per round-robin lap, so that a skipped
// endpoint's load spreads evenly over them. Two attempts of one call in flight at once (a hedge)
// therefore never share an endpoint while two or more are ready. A call
// without a record is picked by plain round robin over the endpoints in
// service. [Attempts] reads the record back: the endpoint of each attempt and
// whether its outcome ejected it.
//
// # Turning it on
//
// With the interceptors, one option does it all (the README's way):
//
//	m, err := interceptors.New(interceptors.WithEndpointEjection(endpoint.Config{}))
//	conn, err := grpc.NewClient(target, append(m.DialOptions(), grpc.WithTransportCredentials(creds))...)
//
// DialOptions then installs the policy as the channel's default service
// config, every call gets a record ([NewCall]) that its retries and hedges
// share, ejections reach the interceptors' span events and their
// resilience.client.endpoint.ejected counter, and the Middleware warns when
// a service config of the channel's own has replaced the policy.
//
// Without the interceptors: [DialOption] returns
// grpc.WithDefaultServiceConfig with the policy and a [Config], and
// [ServiceConfig] returns the JSON alone; calls then need [NewCall] on
// their context for retries to go elsewhere. The JSON config is an
// object with the optional keys window, minRequests, failureRatio,
// consecutiveFailures, baseEjectionTime, maxEjectionTime (durations in
// google.protobuf.Duration's JSON form, as the gRPC service config's:
// "10s", "1.5s") and maxEjectedRatio; omitted keys mean the default,
// unknown keys and invalid values are errors naming the key, reported
// together when the channel is created. A service config from the resolver
// replaces the default one (grpc-go's rule), so a user's own
// loadBalancingConfig keeps working; list {"resilience_endpoint":{}} first in
// it to keep this policy. The policy works with any resolver (dns:///, a
// manual resolver); endpoints the resolver adds get their own state, removed
// ones lose theirs (an ejected one reports its return).
//
// # Observing
//
// [Config.OnEject] is told (target, addr, ejected) about every ejection and
// return, for span events and a gauge of ejected endpoints by target; the
// target is grpc.ClientConn.CanonicalTarget's. Calls for one channel are
// made in order, never concurrently with each other and never under a lock
// of the policy: the goroutine whose outcome or pick caused a transition
// delivers it before it returns, unless another one is delivering, which then
// delivers it too. A panic in OnEject reaches the goroutine delivering it;
// the transitions queued behind it are not lost but delivered by the next
// outcome or pick that causes or notices one.
//
// # Time
//
// The window and ejection times run on time.Now's monotonic clock; nothing
// is injected (the tests run the policy's logic in testing/synctest
// bubbles, whose fake clock time.Now follows). No timer or goroutine runs:
// an ejection whose time is over ends for the picker at once and is
// reported (OnEject) by the next outcome or pick that notices it.
//
// # Concurrency and cost
//
// Everything is safe for concurrent use. A pick costs a context lookup, an
// atomic increment and one atomic load per endpoint considered; the clock is
// read only while some endpoint is ejected. A call record's lock is taken
// only by that call's picks. Each outcome takes the channel's detector lock
// once and reads the clock once; a pick's Done wrapper is one allocation.
// Beside grpc-go's own state per endpoint, the policy keeps about 200 bytes.
//
// The policy does not implement A50's success-rate (standard deviation)
// ejection, and it does not change how a down endpoint is reconnected.
package endpoint
