package limiter

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/grpc-resilience/resilience/internal/outcome"
)

// ErrLimited is matched (errors.Is) by every refusal of a [Limiter]: the
// limit was reached and the call could not wait for a permit.
var ErrLimited = errors.New("limiter: concurrency limit reached")

// ErrQueueTimeout is matched, besides [ErrLimited], by the refusal of a
// call that waited in the queue for as long as its deadline allowed. The
// other refusals come at once, without waiting: the queue was full, or
// the deadline left no time to wait.
var ErrQueueTimeout = errors.New("limiter: waited for a permit as long as the deadline allows")

// The refusals carry outcome.RefusalStatus's detail, so that a service
// passing one on to its caller passes it on as a refusal, and
// codes.Unavailable, so that a caller (and grpc-go's own retry, or a
// caller's) treats them as "try again later".
var (
	errFull    = outcome.Refusal("limiter: concurrency limit reached, queue full", ErrLimited)
	errNoTime  = outcome.Refusal("limiter: concurrency limit reached, no time left to wait for a permit", ErrLimited)
	errTimeout = outcome.Refusal("limiter: concurrency limit reached, waited as long as the deadline allows", ErrLimited, ErrQueueTimeout)
)

// Outcome is how an attempt that held a permit ended, as the limiter
// counts it.
type Outcome uint8

const (
	// Answered: the server answered (a success, or an error about the
	// request). Its round trip is a sample of the downstream's latency.
	Answered Outcome = iota
	// Overloaded: the attempt timed out, or the server said it is out of
	// resources (ResourceExhausted): the limit goes down.
	Overloaded
	// Dropped: the attempt says nothing about the downstream's latency
	// (the caller gave up, the connection was down, the server failed at
	// once): the permit is given back, nothing is measured.
	Dropped
)

// Limiter bounds the attempts in flight to one downstream. See the package
// documentation for the model. A Limiter is safe for concurrent use; the
// zero Limiter is not usable: create one with [New].
type Limiter struct {
	fixed    bool
	min, max float64
	initial  float64
	queueCap int // 0: the limit; < 0: none

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []*waiter // FIFO: the calls waiting for a permit

	win    window
	noLoad noLoadMin
	// rtt is the latest window's median round trip: what an attempt is
	// expected to take, for deciding whether a call can still wait.
	rtt time.Duration
	// congested is when the limit last fell.
	congested time.Time

	// Config.OnLimitChange: the limit it was last told (the initial one
	// at first), and whether a goroutine is telling it changes now.
	hook    func(from, to int)
	told    int
	telling bool
}

type waiter struct {
	ready chan struct{} // closed when the waiter is handed a permit
	given bool          // guarded by Limiter.mu
}

// window is the measurement of the current sampling window.
type window struct {
	start       time.Time
	n           int
	rtts        [maxSamples]time.Duration // the first maxSamples round trips
	inflightSum int
	maxInflight int
	overloaded  int
}

// New returns a Limiter configured by c (zero fields take their defaults),
// or an error wrapping [ErrInvalidConfig].
func New(c Config) (*Limiter, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.withDefaults()
	return &Limiter{
		fixed:    c.Fixed != 0,
		min:      float64(d.MinLimit),
		max:      float64(d.MaxLimit),
		initial:  float64(d.InitialLimit),
		queueCap: c.Queue,
		limit:    float64(d.InitialLimit),
		hook:     c.OnLimitChange,
		told:     d.InitialLimit,
		// A new limit counts as just measured: an unused one rises only
		// staleCongestion after it.
		congested: time.Now(),
	}, nil
}

// Permit is the right to run one attempt. Call Done exactly once when the
// attempt ends. The zero Permit is not a permit; Done on it does nothing.
type Permit struct {
	l        *Limiter
	start    time.Time
	inflight int // attempts in flight when it was granted, itself included
}

// Done gives the permit back and tells the limiter how the attempt ended.
func (p Permit) Done(o Outcome) {
	if p.l != nil {
		p.l.done(p, o)
	}
}

// TryAcquire returns a permit if one is free and nobody waits for one,
// without waiting or allocating; ok is false otherwise (then Acquire
// queues, or refuses).
func (l *Limiter) TryAcquire() (p Permit, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.waiters) == 0 && float64(l.inflight) < l.limit {
		return l.grantLocked(), true
	}
	return Permit{}, false
}

// Acquire asks for a permit. Under the limit it returns one at once. Over
// it, the call waits in the queue (first come, first served) until a
// permit frees, ctx ends, or the latest moment its attempt could still end
// before ctx's deadline (the deadline less the expected round trip); a
// call that finds the queue full, or no time to wait, is refused at once.
// A refusal matches [ErrLimited] and carries codes.Unavailable, and after
// a wait also [ErrQueueTimeout]; a wait that ctx ended returns ctx.Err().
func (l *Limiter) Acquire(ctx context.Context) (Permit, error) {
	l.mu.Lock()
	if len(l.waiters) == 0 && float64(l.inflight) < l.limit {
		p := l.grantLocked()
		l.mu.Unlock()
		return p, nil
	}
	queueCap := l.queueCap
	if queueCap == 0 {
		queueCap = int(l.limit)
	}
	if queueCap < 0 || len(l.waiters) >= queueCap {
		l.mu.Unlock()
		return Permit{}, errFull
	}
	var wait time.Duration = -1 // no deadline: wait for a permit or ctx
	if dl, ok := ctx.Deadline(); ok {
		if wait = time.Until(dl) - l.rtt; wait <= 0 {
			l.mu.Unlock()
			return Permit{}, errNoTime
		}
	}
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	var timeout <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ready:
		return l.granted(), nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = errTimeout
	}
	l.mu.Lock()
	if w.given {
		// Handed a permit as the wait ended: keep it.
		p := l.grantedLocked()
		l.mu.Unlock()
		return p, nil
	}
	l.removeLocked(w)
	l.mu.Unlock()
	return Permit{}, err
}

// granted is the permit of a waiter that was handed one (the count in
// flight already includes it).
func (l *Limiter) granted() Permit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grantedLocked()
}

// grantedLocked is granted with l.mu held.
func (l *Limiter) grantedLocked() Permit {
	return Permit{l: l, start: time.Now(), inflight: l.inflight}
}

// grantLocked takes a permit. Caller holds l.mu.
func (l *Limiter) grantLocked() Permit {
	l.inflight++
	return l.grantedLocked()
}

// removeLocked takes w out of the queue. Caller holds l.mu.
func (l *Limiter) removeLocked(w *waiter) {
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
	}
}

// handOffLocked gives free permits to the waiters at the head of the
// queue. Caller holds l.mu.
func (l *Limiter) handOffLocked() {
	for len(l.waiters) > 0 && float64(l.inflight) < l.limit {
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		w.given = true
		l.inflight++
		close(w.ready)
	}
}

func (l *Limiter) done(p Permit, o Outcome) {
	now := time.Now()
	l.mu.Lock()
	l.inflight--
	l.measureLocked(now, p, o)
	l.handOffLocked()
	l.unlockTelling()
}

// Reset forgets what the limiter measured of the downstream: the limit
// goes back to the initial one (a fixed limit stays), the round trips and
// the no-load estimate are dropped, and the limit rises unused only
// staleCongestion after the reset, as for a new Limiter. Permits held and
// calls queued are kept; queued calls get the places the new limit frees.
// Attempts that started before the reset still count in the first window
// after it. The interceptors reset a target's limiters when its
// connection was down and is ready again: what the old server could
// serve says nothing of the one that restarted.
func (l *Limiter) Reset() {
	now := time.Now()
	l.mu.Lock()
	if !l.fixed {
		l.limit = l.initial
	}
	l.win = window{}
	l.noLoad = noLoadMin{}
	l.rtt = 0
	l.congested = now
	l.handOffLocked()
	l.unlockTelling()
}

// unlockTelling releases l.mu, then tells the OnLimitChange hook of a
// change to the limit unless another goroutine is telling it already.
// Caller holds l.mu.
func (l *Limiter) unlockTelling() {
	tell := l.hook != nil && !l.telling && int(l.limit) != l.told
	l.telling = l.telling || tell
	l.mu.Unlock()
	if tell {
		l.tellChanges()
	}
}

// tellChanges calls the OnLimitChange hook until it has been told the
// current limit. Only the goroutine that set l.telling calls it; a change
// made meanwhile by another goroutine is left to this one, which tells it,
// merged with any other, once the hook returns. The hook runs without
// l.mu held.
func (l *Limiter) tellChanges() {
	returned := false
	defer func() {
		if !returned { // the hook panicked: the next change is told again
			l.mu.Lock()
			l.telling = false
			l.mu.Unlock()
		}
	}()
	l.mu.Lock()
	for int(l.limit) != l.told {
		from, to := l.told, int(l.limit)
		l.told = to
		l.mu.Unlock()
		l.hook(from, to)
		l.mu.Lock()
	}
	l.telling = false
	returned = true
	l.mu.Unlock()
}

// Limit returns the current limit.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// InFlight returns the number of permits held.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// Queued returns the number of calls waiting for a permit.
func (l *Limiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}

// Sampling: a window closes at the first outcome after it has both
// minSamples round trips and twice the no-load round trip behind it, or
// maxWindow whatever it holds.
const (
	minSamples = 20
	maxSamples = 64 // kept for the window's median
	maxWindow  = time.Second
	// decrease is the factor an overloaded window applies to the limit.
	decrease = 0.9
	// staleCongestion is how long after the limit last fell it may rise
	// although unused.
	staleCongestion = 10 * time.Second
)

// measureLocked adds the outcome of p to the window and, once the window
// is complete, moves the limit. Caller holds l.mu.
func (l *Limiter) measureLocked(now time.Time, p Permit, o Outcome) {
	w := &l.win
	if w.start.IsZero() {
		w.start = now
	}
	switch o {
	case Answered:
		rtt := now.Sub(p.start)
		if w.n < maxSamples {
			w.rtts[w.n] = rtt
		}
		w.n++
		w.inflightSum += p.inflight
		w.maxInflight = max(w.maxInflight, p.inflight)
	case Overloaded:
		w.overloaded++
		w.maxInflight = max(w.maxInflight, p.inflight)
	default:
		return
	}
	age := now.Sub(w.start)
	full := w.n >= minSamples && age >= 2*l.noLoad.get(now)
	if w.n >= maxSamples && age < maxWindow {
		full = true // the samples kept are all the window will have
	}
	// An overload closes the window once a round trip has passed since
	// it began: one cut per round trip, however many attempts time out.
	cut := w.overloaded > 0 && age >= l.rtt
	if !full && !cut && age < maxWindow {
		return
	}
	l.updateLocked(now)
	w.start, w.n, w.inflightSum, w.maxInflight, w.overloaded = now, 0, 0, 0, 0
}

// updateLocked keeps the window's median round trip (the expected time
// of an attempt, for the queue) and, unless the limit is fixed, moves it at
// the end of a window. An overloaded window cuts it by a tenth. Otherwise
// the queue the downstream holds for this client is estimated from
// Little's law, as TCP Vegas does: of the attempts in flight, the share
// (1 − noLoad/rtt) is waiting rather than being served. The median, not
// the mean, stands for the window: a loaded client's own scheduling delays
// inflate the mean of round trips, not their median, and would read as a
// queue at the downstream. Above beta the limit falls — from the most in
// flight in the window, not from an unused limit — by half the excess;
// below alpha it rises, but only if the window used it: by a quarter while
// nothing queues at all, else by a step. The thresholds and the step grow
// with log10 of the limit.
func (l *Limiter) updateLocked(now time.Time) {
	w := &l.win
	if w.n > 0 {
		rtts := w.rtts[:min(w.n, maxSamples)]
		slices.Sort(rtts)
		l.rtt = rtts[len(rtts)/2]
		// The window's lower quartile is its candidate no-load round
		// trip: a minimum would take one lucky (or early) answer for the
		// downstream's speed.
		l.noLoad.add(now, rtts[len(rtts)/4])
	}
	switch {
	case l.fixed:
	case w.overloaded > 0:
		l.limit = max(l.min, l.limit*decrease)
		l.congested = now
	case w.n > 0:
		rtt, noLoad := l.rtt, l.noLoad.get(now)
		if noLoad <= 0 || rtt <= 0 {
			return // nothing measured yet
		}
		inflight := float64(w.inflightSum) / float64(w.n)
		queue := inflight * (1 - float64(noLoad)/float64(rtt))
		lg := math.Log10(max(l.limit, 1))
		alpha, beta, step := max(5, 3*lg), max(10, 6*lg), max(1, lg)
		// A limit that went unused rises too once the last congestion is
		// stale: what the downstream could serve then says little now
		// (a restarted server, a recovered dependency).
		used := float64(w.maxInflight) >= l.limit-step || now.Sub(l.congested) >= staleCongestion
		switch {
		case queue > beta:
			l.congested = now
			// Take back half the excess queue from what was in flight,
			// from no higher than the most that was (a limit above it
			// says nothing) and by at most half in one window: the
			// estimate lags a limit already cut.
			from := min(l.limit, float64(w.maxInflight))
			target := inflight - (queue-beta)/2
			l.limit = max(l.min, from/2, min(from, target))
		case queue < 1 && used:
			l.limit = min(l.max, l.limit+max(step, l.limit/4))
		case queue < alpha && used:
			l.limit = min(l.max, l.limit+step)
		}
	}
}

// noLoadMin is the least round trip seen over the last noLoadBuckets
// seconds, kept in one-second buckets: the round trip of the downstream
// when nothing waits. A downstream that became slower for good is followed
// within that span; a queue that builds up for less does not raise it.
type noLoadMin struct {
	buckets [noLoadBuckets]struct {
		sec int64
		min time.Duration
	}
}

const noLoadBuckets = 10

func (m *noLoadMin) add(now time.Time, rtt time.Duration) {
	sec := now.UnixNano() / int64(time.Second)
	b := &m.buckets[sec%noLoadBuckets]
	if b.sec != sec || rtt < b.min {
		b.sec, b.min = sec, rtt
	}
}

// get returns the least round trip of the buckets still in the span; 0 if
// none.
func (m *noLoadMin) get(now time.Time) time.Duration {
	sec := now.UnixNano() / int64(time.Second)
	var least time.Duration
	for _, b := range m.buckets {
		if b.sec > sec-noLoadBuckets && b.min > 0 && (least == 0 || b.min < least) {
			least = b.min
		}
	}
	return least
}
