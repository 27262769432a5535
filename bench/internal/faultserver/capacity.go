package faultserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Capacity makes the server one of finite capacity: Workers attempts are
// served at once, each for Service; up to Queue more wait in a FIFO queue;
// an attempt that finds the queue full is answered Unavailable at once.
// The server does not look at whether a queued attempt's caller is still
// there: it does the work anyway, as most servers do. The zero value (or
// Workers 0) means no limit.
type Capacity struct {
	Workers int
	Service time.Duration
	Queue   int
}

// PerSecond is the number of attempts the server completes per second
// while it is busy.
func (c Capacity) PerSecond() float64 {
	if c.Workers <= 0 || c.Service <= 0 {
		return 0
	}
	return float64(c.Workers) / c.Service.Seconds()
}

// QueueFullMessage is the status message of attempts refused because the
// queue was full (through the TestService for UnaryCall; for the other
// methods, whose requests carry no status, by the interceptor itself).
const QueueFullMessage = "faultserver: queue full"

// Work is what a capacity-limited server has done so far.
type Work struct {
	// Completed counts attempts served to the end of their service time.
	Completed int64 `json:"completed"`
	// Late counts the completed attempts whose caller had given up when
	// the work ended: the attempt's deadline (from the request context) had
	// passed, or the client had cancelled the attempt.
	Late int64 `json:"late"`
	// Rejected counts the attempts refused because the queue was full.
	Rejected int64 `json:"rejected"`
	// MaxBusy and MaxQueued are the most attempts ever in service at once
	// and waiting at once.
	MaxBusy   int `json:"max_busy"`
	MaxQueued int `json:"max_queued"`
}

// Sub returns the counts of w since an earlier snapshot; the maxima are
// w's own.
func (w Work) Sub(earlier Work) Work {
	w.Completed -= earlier.Completed
	w.Late -= earlier.Late
	w.Rejected -= earlier.Rejected
	return w
}

// SetCapacity replaces the capacity limit. It may change while serving:
// attempts in service finish with the service time they started with; a
// larger Workers admits queued attempts at once, a smaller one takes
// effect as attempts finish.
func (s *Server) SetCapacity(c Capacity) error {
	var errs []error
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("faultserver: Capacity.Workers must be >= 0, got %d", c.Workers))
	}
	if c.Workers > 0 && c.Service <= 0 {
		errs = append(errs, fmt.Errorf("faultserver: Capacity.Service must be > 0 with Workers %d, got %v", c.Workers, c.Service))
	}
	if c.Queue < 0 {
		errs = append(errs, fmt.Errorf("faultserver: Capacity.Queue must be >= 0, got %d", c.Queue))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.capacity.set(c)
	return nil
}

// Work returns what the capacity limit has seen so far.
func (s *Server) Work() Work { return s.capacity.snapshot() }

// gate is the capacity limit: a counting semaphore of Workers slots with a
// FIFO queue. A slot handed from a finishing attempt to a queued one
// carries the time the finishing work was due to end, and the queued work
// is due to end Service after that — not Service after its goroutine
// happened to wake up — so that the server completes exactly
// Workers/Service attempts per second while it is busy, whatever the
// scheduler's and timers' delays (a late piece of work is followed by a
// shorter one).
type gate struct {
	mu    sync.Mutex
	cfg   Capacity
	busy  int
	queue []chan time.Time // FIFO: each receives its slot's previous end
	work  Work
}

func (g *gate) set(c Capacity) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = c
	// A larger limit, or none, admits waiters at once.
	for len(g.queue) > 0 && (c.Workers == 0 || g.busy < c.Workers) {
		g.admitLocked(time.Time{})
	}
}

func (g *gate) snapshot() Work {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.work
}

// serve does one attempt's work within the limit. It reports false if the
// queue was full (nothing was done), true when the work is done or there
// is no limit.
func (g *gate) serve(ctx context.Context) bool {
	g.mu.Lock()
	if g.cfg.Workers == 0 {
		g.mu.Unlock()
		return true
	}
	var prevEnd time.Time // the end of the work of the slot's previous holder
	switch {
	case g.busy < g.cfg.Workers && len(g.queue) == 0:
		g.busy++
		g.work.MaxBusy = max(g.work.MaxBusy, g.busy)
		g.mu.Unlock()
	case len(g.queue) >= g.cfg.Queue:
		g.work.Rejected++
		g.mu.Unlock()
		return false
	default:
		ch := make(chan time.Time, 1)
		g.queue = append(g.queue, ch)
		g.work.MaxQueued = max(g.work.MaxQueued, len(g.queue))
		g.mu.Unlock()
		prevEnd = <-ch // never abandoned: the server does not look at the caller
	}

	g.mu.Lock()
	service := g.cfg.Service
	g.mu.Unlock()
	// Queued work starts when the slot's previous work ended (it was
	// waiting then), however late this goroutine woke up; fresh work
	// starts now.
	end := prevEnd
	if end.IsZero() {
		end = time.Now()
	}
	end = end.Add(service)
	if d := time.Until(end); d > 0 {
		time.Sleep(d)
	}
	late := ctx.Err() != nil
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		late = true
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	g.work.Completed++
	if late {
		g.work.Late++
	}
	g.busy--
	// The first waiter takes this slot, and its time; any other comes in
	// by a larger limit and starts afresh.
	handoff := end
	for g.busy < g.cfg.Workers && len(g.queue) > 0 {
		g.admitLocked(handoff)
		handoff = time.Time{}
	}
	return true
}

// admitLocked gives a slot to the head of the queue.
func (g *gate) admitLocked(prevEnd time.Time) {
	ch := g.queue[0]
	g.queue[0] = nil
	g.queue = g.queue[1:]
	g.busy++
	g.work.MaxBusy = max(g.work.MaxBusy, g.busy)
	ch <- prevEnd
}
