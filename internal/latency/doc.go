// Package latency keeps a compact, rotating histogram of recent latencies,
// from which hedged calls read the percentile they hedge at.
//
// # Model
//
// Buckets are logarithmic, 4 per doubling from 1 µs up to 2^40 µs, so a
// percentile is known within 19 %. Two windows of 1000 samples rotate: the
// histogram follows change within 1000–2000 samples. A percentile is
// reported once 100 samples are in.
//
// # Concurrency
//
// A Histogram is safe for concurrent use; its zero value is ready. Each
// call takes a mutex for a few hundred nanoseconds at most.
package latency
