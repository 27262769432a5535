// Command overload runs the overload comparison: every overload scenario
// (a spike against a server of finite capacity, that capacity halved, an
// outage that ends, a 3 s restart, a chain of three services) against
// every stack — bare grpc-go, grpc-go's retry,
// go-grpc-middleware's retry, failsafe-go's adaptivelimiter,
// adaptivethrottler and bulkhead, and the ours family — in one process and
// one run. It prints Markdown tables with ratios to the bare client and to
// the best peer, a series per second and one per 100 ms around the
// trouble's end, and ours against the targets of issue 21; it writes the
// raw results as JSON.
//
//	go -C bench run ./cmd/overload            # full run, about five minutes on 2 cores
//	go -C bench run ./cmd/overload -quick     # about two minutes
//	go -C bench run ./cmd/overload -stacks bare,failsafe-limiter,ours -scenarios spike,drop
//	go -C bench run ./cmd/overload -json results/overload.json
//
// Progress goes to standard error, the tables to standard output. The
// figures are defined in package scenario's documentation and in
// BENCHMARKS.md.
package main
