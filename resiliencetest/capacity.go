package resiliencetest

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// QueueFullMessage is the status message of an attempt that found the
// queue of a Capacity full; its code is codes.Unavailable.
const QueueFullMessage = "resiliencetest: queue full"

// Capacity is a server of finite capacity, for SetCapacity: Workers
// attempts are served at once, each for Service; up to Queue more wait for
// a worker, first come first served; an attempt that finds the queue full
// is answered Unavailable (QueueFullMessage) at once. While busy the server
// completes Workers/Service attempts per second, exactly: a queued
// attempt's work starts when its worker's previous work was due to end,
// however late timers fire.
//
// Like most servers it does not look whether a queued attempt's caller is
// still there: once queued, an attempt is served to the end of its
// service time even if its caller gave up meanwhile, and Work counts that
// work as Late. Overload then shows as it does in production: a client
// that keeps sending more than the capacity makes the queue, and the
// latency, grow until every attempt served is one whose caller has gone.
//
// The zero Capacity (Workers 0) is no limit.
type Capacity struct {
	// Workers is how many attempts are served at once; 0 means no limit.
	Workers int
	// Service is how long a worker takes per attempt; it must be above 0
	// when Workers is.
	Service time.Duration
	// Queue is how many attempts may wait for a worker; 0 refuses every
	// attempt that finds all workers busy.
	Queue int
}

// validate checks c for the function fn.
func (c Capacity) validate(fn string) error {
	var errs []error
	if c.Workers < 0 {
		errs = append(errs, invalid("%s: Capacity.Workers: %d is negative", fn, c.Workers))
	}
	if c.Workers > 0 && c.Service <= 0 {
		errs = append(errs, invalid("%s: Capacity.Service: must be > 0 with %d workers, got %v", fn, c.Workers, c.Service))
	}
	if c.Queue < 0 {
		errs = append(errs, invalid("%s: Capacity.Queue: %d is negative", fn, c.Queue))
	}
	return errors.Join(errs...)
}

// Work is what the capacity limits of Faults did, since NewFaults or
// Reset, for the attempts on a method (or on every method).
type Work struct {
	// Served counts the attempts a worker served to the end of their
	// service time.
	Served int
	// Late counts the attempts among Served whose caller had gone when
	// the work ended (their context had ended: the deadline passed, the
	// client cancelled, the connection closed): work done for nobody.
	Late int
	// QueueFull counts the attempts refused at once because the queue was
	// full.
	QueueFull int
}

// SetCapacity makes the server one of finite capacity for method (a full
// method name, or AllMethods: one set of workers and one queue shared by
// every method without rules of its own). An attempt that no fault ended
// then waits for a worker, takes its service time and only then reaches
// the handler; see Capacity. Capacity{} removes the limit. A later call for
// the same method replaces the limit: attempts in service finish with the
// service time they started with; queued attempts wait for the new number
// of workers (and take the new service time when they start), or, with no
// limit left, go on to the handler at once. Clear and Reset remove the
// limit as Capacity{} does.
//
// Queued work is done even for callers who have gone, so a server stopped
// with a long queue (grpc.Server.Stop with grpc.WaitForHandlers, or
// goleak at the end of a test) waits for that work at Workers/Service per
// second; remove the limit first to let it all go on at once.
func (f *Faults) SetCapacity(method string, c Capacity) error {
	const fn = "SetCapacity"
	if err := validMethod(fn, method); err != nil {
		return err
	}
	if err := c.validate(fn); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rulesLocked(method)
	if r.pool == nil {
		if c.Workers == 0 {
			return nil
		}
		r.pool = &pool{}
	}
	r.pool.set(c)
	return nil
}

// Work returns what the capacity limits did for the attempts on method
// since NewFaults or Reset; with AllMethods, for those on every method.
func (f *Faults) Work(method string) Work {
	f.mu.Lock()
	defer f.mu.Unlock()
	var w Work
	for m, mw := range f.work {
		if matches(method, m) {
			w.Served += mw.Served
			w.Late += mw.Late
			w.QueueFull += mw.QueueFull
		}
	}
	return w
}

// pool is the workers and the queue of a Capacity. Faults.mu guards it.
type pool struct {
	cfg   Capacity
	busy  int         // attempts in service
	queue []chan slot // FIFO: each receives its worker
}

// slot is a worker handed to a queued attempt: its work starts at start
// (the zero Time: now) and takes service. A slot with no service (a
// limit has Service > 0) lets the attempt go on without any work: the
// limit was removed.
type slot struct {
	start   time.Time
	service time.Duration
}

// set replaces the pool's limit and admits the queued attempts it makes
// room for (all of them without a limit).
func (p *pool) set(c Capacity) {
	p.cfg = c
	p.admit(time.Time{})
}

// admit hands free workers to the head of the queue: the first gets start
// (a worker's previous work's end), any other starts now. Without a limit
// every queued attempt goes on, with no work.
func (p *pool) admit(start time.Time) {
	for len(p.queue) > 0 && (p.cfg.Workers == 0 || p.busy < p.cfg.Workers) {
		ch := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if p.cfg.Workers == 0 {
			ch <- slot{}
			continue
		}
		p.busy++
		ch <- slot{start: start, service: p.cfg.Service}
		start = time.Time{}
	}
}

// release ends the pool: every queued attempt goes on at once, without
// service time.
func (p *pool) release() { p.set(Capacity{}) }

// serve does the attempt's work within the capacity set for method, if
// any: it waits for a worker, then for the service time, whatever becomes
// of ctx meanwhile. It returns an Unavailable error if the queue was full,
// ctx's status if the caller has gone by the end of the work, else nil.
func (f *Faults) serve(ctx context.Context, method string) error {
	f.mu.Lock()
	r := f.rulesFor(method)
	if r == nil || r.pool == nil || r.pool.cfg.Workers == 0 {
		f.mu.Unlock()
		return nil
	}
	p := r.pool
	work := entry(f.work, method)
	var s slot
	var wait chan slot
	switch {
	case p.busy < p.cfg.Workers && len(p.queue) == 0:
		p.busy++
		s = slot{service: p.cfg.Service}
	case len(p.queue) >= p.cfg.Queue:
		work.QueueFull++
		f.mu.Unlock()
		return status.Error(codes.Unavailable, QueueFullMessage)
	default:
		wait = make(chan slot, 1)
		p.queue = append(p.queue, wait)
	}
	f.mu.Unlock()
	if wait != nil {
		s = <-wait // never abandoned: the server does not look at the caller
		if s.service == 0 {
			return nil // the limit was removed
		}
	}

	start := s.start
	if start.IsZero() {
		start = time.Now()
	}
	end := start.Add(s.service)
	time.Sleep(time.Until(end)) // the server's work, whatever the caller does
	late := ctx.Err() != nil
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		late = true
	}

	f.mu.Lock()
	work.Served++
	if late {
		work.Late++
	}
	p.busy--
	p.admit(end)
	f.mu.Unlock()
	if late {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	return nil
}
