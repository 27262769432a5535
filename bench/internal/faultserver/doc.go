// Package faultserver runs grpc-go's interop TestService — a server none of
// the compared stacks wrote — behind a thin fault-injecting server
// interceptor, over bufconn or loopback TCP.
//
// The interceptor never answers on the service's behalf: to fail an attempt
// it sets ResponseStatus in the SimpleRequest, and the TestService's own
// UnaryCall returns that status. It can
//
//   - fail a random fraction of attempts with Unavailable (transient noise),
//   - fail every attempt with Unavailable (an outage of a server that is up),
//   - delay a random fraction of attempts (a slow tail), ending the delay
//     early when the client gives up on the attempt,
//
// and it can give the server a finite capacity (SetCapacity): a fixed
// number of workers, each serving one attempt for a fixed time, a FIFO
// queue of bounded length, and Unavailable when the queue is full. That
// server does the work of a queued attempt even when its caller has gone,
// and counts the work that ended after its caller's deadline (Work). A
// server can also forward each attempt to the next hop of a chain
// (SetForward) with the attempt's context. The server as a whole can be
// stopped and restarted on the same port; Stop waits for every handler,
// queued ones included. Every attempt that reaches the interceptor is
// counted (Hits).
//
// A Server is safe for concurrent use.
package faultserver
