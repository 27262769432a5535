// Package window counts successes and failures over a rolling window of
// time: the counts both trip rules of the library read (package breaker's
// window rule and package endpoint's failure-ratio rule), and package
// throttle's requests and accepts.
//
// # Model
//
// A [Window] is a ring of n buckets, each covering width nanoseconds of a
// monotonic axis the caller supplies (nanoseconds since some start of its
// own, read from time.Now's monotonic clock). An outcome is added to the
// bucket its time falls in; outcomes older than the window leave it one
// bucket at a time, so [Window.Counts] sees between (n-1)·width and n·width
// of history. A time earlier than the newest bucket (a caller's clock read
// before another's) lands in the newest bucket.
//
// # Concurrency and cost
//
// A Window is not safe for concurrent use: its owner guards it with the
// lock that guards the rule reading it. Add, Advance and Counts allocate nothing;
// New allocates the n buckets (8 bytes each).
package window
