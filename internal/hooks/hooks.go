package hooks

import (
	"sync"
	"sync/atomic"
)

// Queue holds events until they are delivered. Make one with New.
type Queue[E any] struct {
	deliver func(E)
	pending atomic.Int64 // events pushed and not yet taken by a deliverer

	mu         sync.Mutex
	events     []E
	head       int
	delivering bool
}

// New returns an empty Queue whose events go to deliver.
func New[E any](deliver func(E)) *Queue[E] {
	return &Queue[E]{deliver: deliver}
}

// Push queues e. It may be called while the caller holds its own locks;
// call Deliver once they are released.
func (q *Queue[E]) Push(e E) {
	q.mu.Lock()
	q.events = append(q.events, e)
	q.pending.Add(1)
	q.mu.Unlock()
}

// Deliver hands every queued event to the deliver func, in order, unless
// another goroutine is delivering (it then delivers them too). Call it
// with none of the locks held that the deliver func may need.
func (q *Queue[E]) Deliver() {
	if q.pending.Load() == 0 {
		return
	}
	q.mu.Lock()
	if q.delivering {
		q.mu.Unlock()
		return
	}
	q.delivering = true
	for q.head < len(q.events) {
		e := q.events[q.head]
		var zero E
		q.events[q.head] = zero
		q.head++
		q.pending.Add(-1)
		q.mu.Unlock()
		q.deliverOne(e)
		q.mu.Lock()
	}
	q.events = q.events[:0]
	q.head = 0
	q.delivering = false
	q.mu.Unlock()
}

// deliverOne runs the deliver func; if it panics, the queue is left for
// the next Deliver before the panic goes on.
func (q *Queue[E]) deliverOne(e E) {
	ok := false
	defer func() {
		if !ok {
			q.mu.Lock()
			q.delivering = false
			q.mu.Unlock()
		}
	}()
	q.deliver(e)
	ok = true
}
