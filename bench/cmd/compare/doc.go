// Command compare runs every benchmark scenario against every client stack
// in one process and prints Markdown tables with ratios to the bare
// grpc-go client (or, with -json, the raw results).
//
//	go -C bench run ./cmd/compare            # full run, about 2.5 minutes on 2 cores
//	go -C bench run ./cmd/compare -quick     # about half a minute
//	go -C bench run ./cmd/compare -json > results.json
//	go -C bench run ./cmd/compare -stacks bare,ours -scenarios outage,restart
//
// Progress goes to standard error, the tables to standard output.
package main
