// Package scenario runs the benchmarks' scenarios against the client
// stacks (package stacks) and the fault-injecting interop server (package
// faultserver), and renders the results as Markdown tables with ratios to
// the bare grpc-go client.
//
// # The classic comparison (Run, cmd/compare)
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
//
// # The overload comparison (RunOverload, cmd/overload)
//
// Five scenarios (OverloadParams sizes them), each run for every stack
// against fresh loopback TCP servers and a fresh client, warmed up with
// sequential calls that must all succeed. The load is open-loop with
// Poisson arrivals from a seeded generator: every stack gets the same
// arrival times. Each scenario has three phases — before the trouble, the
// trouble, after it — and the trouble begins and ends on the load's clock:
//
//   - spike: a server of finite capacity (faultserver.Capacity: 4 workers
//     of 2 ms, 2,000/s, a FIFO queue of 500, Unavailable when full, queued
//     work done even for callers that have gone) gets 0.7 × its capacity,
//     then 1.5 × for the trouble, then 0.7 × again; every call has a
//     100 ms deadline;
//   - drop: the same server and 0.7 × load throughout; the trouble halves
//     the capacity (4 ms service);
//   - outage: a server that is up answers Unavailable to everything during
//     the trouble, then is healthy; 1 s deadlines;
//   - restart: 50 calls/s without a caller deadline; the server is stopped
//     hard (listener and connections closed) for the trouble and comes
//     back on the same port; every stack with the README's Quickstart
//     settings (stacks.Quickstart);
//   - chain: caller → F → M → L, three servers, each hop a client of the
//     stack under test passing the incoming context on; L answers
//     Unavailable to everything during the trouble; 1 s deadlines.
//
// The figures (OverloadResult), all from the caller's call records (start,
// end, success), the marks of the trouble's beginning and end, and the
// servers' own counts:
//
//   - goodput during (spike, drop): the successes that ended during the
//     trouble, per second, over the capacity the server had then (for the
//     drop, the reduced one); p50 and p99 are those successes' latencies;
//   - goodput after: the successes that ended in the After phase, per
//     second, over the full capacity (the load is 0.7 of it);
//   - back to ≥ 95 %: the calls started after the trouble's end are
//     counted in 100 ms bins aligned to that end; the figure is the start
//     of the first bin from which 5 consecutive bins (500 ms) each had at
//     least 95 % of their calls succeed, a bin without calls counting as
//     meeting it; "never" when no such run ended before the load did;
//   - work for callers gone: of the work the capacity-limited server
//     completed during the whole load (queued work still done after the
//     load included), the share whose attempt's deadline had passed, or
//     whose client had cancelled it, when the work ended;
//   - attempts/call: attempts the caller's client started (a stats.Handler,
//     grpc-go's retries and attempts without a connection included) per
//     call started — the amplification; below 1 when a stack refuses calls
//     before they reach the network;
//   - attempts/s at the failing server, settled (outage): attempts that
//     reached it from 1 s after it began failing (at most half the
//     outage) to its end, per second — one client, so per client; the
//     attempts of that first second are shown apart;
//   - first success after (outage, restart, chain): from the trouble's end
//     (the heal; the restarted listener accepting) to the end of the
//     earliest success that ended after it;
//   - success (restart): the share of all calls that succeeded; "failed,
//     deadline after back": failed calls whose caller deadline fell after
//     the server was back — without a caller deadline, every failed call;
//   - leaf attempts/call while failing (chain): attempts that reached L
//     while it failed, per call the caller started then;
//   - success of the calls started: per second (or per 100 ms around the
//     trouble's end), the share of the calls started in that slice that
//     succeeded, whenever they ended.
//
// The report puts every stack's figures in a table, then ours (each
// variant of stacks.OursFamily) against bare and against the best peer
// (neither bare nor ours) figure by figure, then the series, then ours
// against the targets of issue 21. CheckOverload checks invariants no
// correct harness and stack can break, never which stack is better.
package scenario
