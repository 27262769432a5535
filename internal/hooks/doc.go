// Package hooks delivers state-change events to a user's hook in order,
// outside the locks of the code that caused them: package breaker's
// OnStateChange and package endpoint's OnEject.
//
// # Model
//
// The code that makes a transition pushes an event onto a [Queue] while it
// holds its own locks, releases them, then calls [Queue.Deliver]. Deliver
// hands the queued events to the deliver func in the order they were
// pushed, one goroutine at a time: a goroutine that finds another one
// delivering leaves its events to it (the deliverer drains the queue before
// it stops), so no goroutine is started per event and the hook never runs
// concurrently with itself. Since no lock of the caller is held while the
// hook runs, the hook may call back into the code that caused the event;
// events it causes are delivered after it returns.
//
// A panic in the deliver func reaches the goroutine that was delivering; the
// events queued behind the one that panicked stay queued and are delivered
// by the next Deliver.
//
// # Concurrency and cost
//
// A Queue is safe for concurrent use. Deliver with nothing queued is one
// atomic load, so callers may call it after every operation; Push appends
// to a slice that is reused once drained.
package hooks
