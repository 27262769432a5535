// Package scenario runs the benchmark's scenarios against every client
// stack (package stacks) and the fault-injecting interop server (package
// faultserver), and renders the results as Markdown tables with ratios to
// the bare grpc-go client.
//
// Scenarios:
//
//   - happy: happy-path overhead, ns/op, B/op and allocs/op over bufconn and
//     loopback TCP, from one goroutine and from many;
//   - transient: 30 % of attempts fail with Unavailable;
//   - outage: every attempt fails with Unavailable (the server is up);
//   - slow: a small fraction of attempts is delayed (slow tail);
//   - restart: the server is stopped and restarted on the same port.
//
// The load scenarios run over loopback TCP with an open-loop load: calls
// start at a fixed rate whatever the stack does with them, as requests from
// upstream would, so a stack that retries more sends more attempts to the
// server instead of slowing its own load down. Every call carries the same
// caller deadline (Params.CallTimeout).
package scenario
