package resiliencetest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxRecords is how many records of the latest attempts Faults keeps.
const maxRecords = 1000

// Record is what Faults saw of one attempt. Records returns copies.
type Record struct {
	// Method is the attempt's full method name.
	Method string
	// Number is the attempt number as AttemptNumbers counts it: read from
	// AttemptMetadataKey, 1 when absent, 0 when not a positive integer.
	Number int
	// Metadata is a copy of the attempt's incoming metadata.
	Metadata metadata.MD
	// Arrived is when the attempt reached Faults.
	Arrived time.Time
	// Deadline is the deadline of the attempt's context, the zero Time if
	// it had none. Deadline.Sub(Arrived) is the time the attempt had left
	// when it arrived.
	Deadline time.Time
	// Done reports whether the attempt has ended; Code is valid only then.
	Done bool
	// Code is the status code the attempt ended with as it left Faults'
	// interceptor: an injected fault's, its context's, or the handler's.
	Code codes.Code
}

// Records returns the records of the attempts on method (with AllMethods,
// on every method) that arrived since NewFaults or Reset, in arrival order:
// those among the latest 1000 attempts, so that a server under load for
// hours keeps bounded memory (counts are never dropped). An attempt still
// running shows Done false.
func (f *Faults) Records(method string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Record
	for _, r := range f.records[max(0, len(f.records)-maxRecords):] {
		if matches(method, r.Method) {
			c := *r
			c.Metadata = r.Metadata.Copy()
			out = append(out, c)
		}
	}
	return out
}

// WaitAttempts waits until at least n attempts on method (with AllMethods,
// on every method) have arrived since NewFaults or Reset, as Attempts
// counts them, or until ctx ends; then it returns an error wrapping ctx's.
// Use it instead of sleeping to let a test go on once, say, a hedge has
// reached the server; in a testing/synctest bubble the wait lets fake time
// move on to the attempt. It returns once the attempt is counted (step 1
// of the package documentation), before it is held, delayed or given a
// fault; in a bubble, synctest.Wait then lets it go as far as it can. A
// malformed method or a negative n is an error wrapping ErrInvalidConfig.
func (f *Faults) WaitAttempts(ctx context.Context, method string, n int) error {
	const fn = "WaitAttempts"
	if err := validMethod(fn, method); err != nil {
		return err
	}
	if n < 0 {
		return invalid("%s: n: %d is negative", fn, n)
	}
	for {
		f.mu.Lock()
		got := f.attemptsLocked(method)
		if got >= n {
			f.mu.Unlock()
			return nil
		}
		if f.arrival == nil {
			// Made by a waiter, never by a handler, so that it belongs to
			// the waiter's testing/synctest bubble.
			f.arrival = make(chan struct{})
		}
		arrival := f.arrival
		f.mu.Unlock()
		select {
		case <-arrival:
		case <-ctx.Done():
			return fmt.Errorf("resiliencetest: %s: %d of %d attempts on %s arrived: %w", fn, got, n, method, ctx.Err())
		}
	}
}

// arriveLocked counts and keeps rec, and wakes WaitAttempts. f.mu must be
// held.
func (f *Faults) arriveLocked(rec *Record) {
	byNum := f.counts[rec.Method]
	if byNum == nil {
		byNum = make(map[int]int)
		f.counts[rec.Method] = byNum
	}
	byNum[rec.Number]++
	if len(f.records) == 2*maxRecords {
		// Drop the older half at once: each record is moved at most once.
		f.records = append(make([]*Record, 0, 2*maxRecords), f.records[maxRecords:]...)
	}
	f.records = append(f.records, rec)
	if f.arrival != nil {
		close(f.arrival)
		f.arrival = nil
	}
}

// end records the outcome of the attempt of rec.
func (f *Faults) end(rec *Record, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec.Done, rec.Code = true, status.Code(err)
}
