// Package interceptors provides gRPC client interceptors that keep calls
// working while a downstream is flaky, restarting or overloaded: retries
// with exponential backoff and jitter that never outlive the caller's
// deadline, a default call deadline, per-attempt timeouts, and dial options
// that switch off grpc-go's own retries and shorten its connect timeout.
//
// # Use
//
//	m, err := interceptors.New(interceptors.WithMaxAttempts(4))
//	if err != nil { ... }
//	conn, err := grpc.NewClient(target, append(m.DialOptions(),
//		grpc.WithTransportCredentials(creds))...)
//
// UnaryClientInterceptor, StreamClientInterceptor and DialOptions are
// shortcuts that panic on invalid options.
//
// # The attempt loop
//
// For each call:
//
//  1. The call deadline is the caller's; if the caller's context has none,
//     the default call timeout (WithCallTimeout) is applied.
//  2. Attempt n (1..max attempts) runs with a context bounded by the
//     per-attempt timeout, if any, and by the call deadline. From the
//     second attempt on, the attempt number travels to the server in the
//     outgoing metadata under AttemptMetadataKey; the caller's metadata is
//     never modified.
//  3. The call ends on success, on a non-retryable code, after the last
//     attempt, or once the caller's context is done. DeadlineExceeded is
//     retried only while the caller's context is alive (a per-attempt
//     timeout fired, or the server sent the code).
//  4. Otherwise the backoff delay for attempt n is computed. If the next
//     attempt could not start before the call deadline, the call ends at
//     once with the last attempt's error instead of sleeping. Otherwise it
//     waits; a caller that cancels during the wait gets its answer at once,
//     with the context's code (Canceled or DeadlineExceeded).
//
// A failed call returns an *Error that keeps the last attempt's status
// (status.Code(err) is that attempt's code) and the number of attempts.
//
// # Defaults
//
//	max attempts          3 (DefaultMaxAttempts), counting the first
//	retryable codes       Unavailable, DeadlineExceeded
//	backoff               backoff.DefaultConfig: 50 ms × 2^(n-1), cap 2 s, jitter 0.2
//	per-attempt timeout   none
//	call timeout          10 s (DefaultCallTimeout), only when the caller set no deadline
//	connect (DialOptions) MinConnectTimeout 3 s; reconnect backoff 100 ms × 1.6^n, cap 3 s, jitter 0.2
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
// # Per-method and per-call policy
//
// WithMethodPolicy applies CallOptions to the methods a matcher selects
// (MatchMethods, MatchService, MatchMethodPrefix, or any func). CallOptions
// passed with a call override both; they are removed before the call
// reaches the transport. Alternatively, scope a whole Middleware to some
// methods with go-grpc-middleware's selector package.
//
// # Concurrency
//
// A Middleware and its interceptors are safe for concurrent use. They start
// no goroutines: the attempt loop runs on the caller's goroutine.
package interceptors
