package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is the state of one breaker. Its numeric values are stable and meant
// for a metric gauge: 0 closed, 1 half-open, 2 open.
type State int8

// The states of a breaker.
const (
	// StateClosed lets every attempt through and counts outcomes.
	StateClosed State = 0
	// StateHalfOpen lets a bounded number of probe attempts through.
	StateHalfOpen State = 1
	// StateOpen rejects every attempt until the open timeout has passed.
	StateOpen State = 2
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// Set is a bounded set of circuit breakers, one per key, created on first use.
// The key is usually the client's target (or target and method). A Set is safe
// for concurrent use by any number of goroutines; see the package
// documentation for the model, the trip rule, eviction and the state hook.
// Create one with NewSet; the zero Set is not usable.
type Set struct {
	isFailure   func(error) bool
	isExcluded  func(error) bool
	hook        func(key string, from, to State)
	maxKeys     int
	probes      uint32
	minRequests uint32
	consecutive uint32
	ratio       float64
	buckets     int
	period      int64 // bucket period, ns
	openTimeout int64 // ns
	idleTimeout int64 // ns
	sweepEvery  int64 // ns

	now   func() time.Time // injectable clock
	epoch time.Time        // clock reading that nanos() counts from

	cfg    Config      // as configured, defaults filled in (Member.Config)
	shared Shared      // nil: every breaker is local
	fleet  atomic.Bool // shared is attached and not degraded

	mu        sync.RWMutex
	m         map[string]*entry // guarded by mu
	lastSweep int64             // guarded by mu

	hmu         sync.Mutex // guards the hook queue below
	events      []event
	head        int
	dispatching bool
}

type event struct {
	key      string
	from, to State
}

// entry is one key's breaker. gobreaker keeps the state machine (closed, open,
// half-open, generations, consecutive counts, half-open slot accounting with
// exclusions); the entry adds what depends on time, read from the Set's clock:
// the rolling window the trip rule reads and the end of the open period.
//
// gobreaker reads time.Now itself. It is configured so that its own reading
// never matters: no closed-state interval (Interval 0) and an open timeout of
// 1ns, while the entry refuses to call into gobreaker at all until its own
// clock says the open period is over. Every call into gobreaker happens under
// e.mu, so that check and the call are atomic and OnStateChange (which
// gobreaker runs under its own lock, inside those calls) can update the
// entry's fields.
//
// With Interval 0, the done callbacks gobreaker's Allow returns within one
// generation are interchangeable (they carry the generation and a bucket age
// that stays 0). The entry keeps the first one of each generation (gbDone) and
// hands every attempt of a generation the same done func (doneFn), so a closed
// breaker admits attempts without calling gobreaker or allocating. Half-open
// admissions still go through gobreaker's Allow, which counts the probe slots.
type entry struct {
	key string
	s   *Set
	cb  *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu        sync.Mutex
	state     State       // mirror of gobreaker's state, kept by onStateChange
	gen       uint64      // bumped on every transition, like gobreaker's generation
	gbDone    func(error) // gobreaker's done callback for gen, nil until first needed
	doneFn    func(error) // the done func handed out for gen, nil until first needed
	openUntil int64       // end of the open period (ns), valid while state == StateOpen
	now       int64       // clock reading of the current call, for onStateChange
	lastUsed  int64       // creation, last done, or last Allow that asked gobreaker (ns)
	inflight  int32       // admitted attempts whose done has not been called
	queued    bool        // onStateChange queued a hook event during this call
	evicted   bool        // removed from the Set; hooks are no longer reported
	win       window
	changed   chan struct{} // closed at the next transition or freed probe slot; nil until awaited
	openErr   *OpenError    // cached rejections, built on first use
	probeErr  *OpenError

	// Fleet sharing (Config.Shared). The counts are kept whether or not a
	// Shared is attached: two increments cost less than a branch would save.
	nsucc, nfail uint64 // outcomes counted while closed, since creation
	frun         uint32 // failures since the last success known here or in the fleet
	rsucc, rfail uint32 // the fleet's other members' window (Member.SetFleet)
	rrun         uint32 // the fleet's other members' failure run
	leased       bool   // half-open and holding the fleet's probe lease
	force        bool   // readyToTrip says yes: forceFailure is opening the breaker
	fromFleet    bool   // the transition in progress is the fleet's (Transition.Fleet)
	forceFor     int64  // open period forceFailure asks for (ns); 0: OpenTimeout
}

// Outcomes as handed to gobreaker, after classification.
var (
	errFailure  = errors.New("breaker: failure")
	errExcluded = errors.New("breaker: excluded")
)

func gbIsSuccessful(err error) bool { return err == nil }
func gbIsExcluded(err error) bool   { return err == errExcluded }

// NewSet returns an empty Set configured by c (zero fields take their
// defaults). It returns an error wrapping [ErrInvalidConfig] if c is invalid.
func NewSet(c Config) (*Set, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	defaultClassification := c.IsFailure == nil && c.IsExcluded == nil
	c = c.withDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	s := &Set{
		isFailure:   c.IsFailure,
		isExcluded:  c.IsExcluded,
		hook:        c.OnStateChange,
		maxKeys:     c.MaxKeys,
		probes:      c.HalfOpenProbes,
		minRequests: c.MinRequests,
		consecutive: c.ConsecutiveFailures,
		ratio:       c.FailureRatio,
		buckets:     c.Buckets,
		period:      int64(c.Window / time.Duration(c.Buckets)),
		openTimeout: int64(c.OpenTimeout),
		idleTimeout: int64(c.IdleTimeout),
		sweepEvery:  max(int64(c.IdleTimeout)/4, 1),
		now:         c.Now,
		epoch:       c.Now(),
		m:           make(map[string]*entry),
		cfg:         c,
	}
	if defaultClassification {
		s.isFailure, s.isExcluded = nil, nil // classify takes the fast path
	}
	if c.Shared != nil {
		if err := s.attach(c.Shared); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// nanos is the Set's clock in nanoseconds since the Set was created.
func (s *Set) nanos() int64 {
	if n := int64(s.now().Sub(s.epoch)); n > 0 {
		return n
	}
	return 0
}

// Allow asks the key's breaker, creating it if needed, whether an attempt may
// proceed.
//
// If it may, Allow returns done and a nil error; done must be called exactly
// once, when the attempt has ended, with its outcome (nil for success; see
// [Config.IsFailure] and [Config.IsExcluded] for how errors count). Calling
// done more than once is a bug. An attempt whose done is never called holds
// its half-open probe slot, if it has one, for good.
//
// If it may not, Allow returns a nil done and an [*OpenError], which matches
// [ErrOpen] and carries codes.Unavailable; the attempt must fail without
// touching the network. Rejections neither count as outcomes nor allocate.
func (s *Set) Allow(key string) (done func(err error), err error) {
	for {
		e := s.entry(key)
		e.mu.Lock()
		if e.evicted { // lost a race with eviction: use the new entry
			e.mu.Unlock()
			continue
		}
		// Closed with gobreaker's callback for this generation at hand:
		// gobreaker would admit, so there is nothing to ask it (and no need
		// for the time: done stamps lastUsed, and an entry with attempts in
		// flight is never idle).
		if e.state != StateClosed || e.gbDone == nil {
			now := s.nanos()
			e.lastUsed = now
			if e.state == StateOpen && now < e.openUntil {
				err := e.rejection(StateOpen)
				e.mu.Unlock()
				return nil, err
			}
			e.now = now
			if e.state != StateClosed && !e.leased && s.fleet.Load() {
				// The fleet leases its probes: without the lease a breaker
				// past its open period turns half-open (telling the Shared,
				// which asks the fleet for the lease) but admits nothing.
				if e.state == StateOpen {
					e.cb.State()
				}
				if e.state != StateClosed {
					err := e.rejection(StateHalfOpen)
					s.unlockAndDispatch(e)
					return nil, err
				}
			}
			gbDone, gbErr := e.cb.Allow() // may turn an open breaker half-open
			if gbErr != nil {
				st := StateOpen
				if gbErr == gobreaker.ErrTooManyRequests {
					st = StateHalfOpen
				}
				err := e.rejection(st)
				s.unlockAndDispatch(e)
				return nil, err
			}
			if e.gbDone == nil {
				e.gbDone = gbDone
			}
		}
		e.inflight++
		if e.doneFn == nil {
			gen := e.gen
			e.doneFn = func(err error) { e.done(gen, err) }
		}
		done := e.doneFn
		s.unlockAndDispatch(e)
		return done, nil
	}
}

// AllowWait is Allow for a caller that can wait for a probe slot: when the
// key's breaker is half-open with every probe slot taken, it waits until a
// probe ends or the breaker changes state and asks again, until ctx is done;
// then it returns the last refusal. Any other refusal (an open breaker) is
// returned at once, as by Allow. The wait costs no goroutine: the caller's
// own blocks on a channel the breaker closes.
//
// Bound the wait with ctx: after an outage, the calls that queued while the
// breaker was open would otherwise all be refused in the moment the probes
// take to close it.
func (s *Set) AllowWait(ctx context.Context, key string) (done func(err error), err error) {
	for {
		if done, err = s.Allow(key); err == nil || !probesBusy(err) || ctx.Err() != nil {
			return done, err
		}
		changed := s.changed(key)
		// Ask again now that we listen: a probe may have ended between the
		// refusal and the registration.
		if done, err = s.Allow(key); err == nil || !probesBusy(err) {
			return done, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, err
		}
	}
}

// probesBusy reports whether err is a half-open breaker's refusal.
func probesBusy(err error) bool {
	oe, ok := err.(*OpenError)
	return ok && oe.State == StateHalfOpen
}

// changed returns a channel closed at the key's next transition, freed probe
// slot or eviction.
func (s *Set) changed(key string) <-chan struct{} {
	e := s.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.changed == nil {
		e.changed = make(chan struct{})
		if e.evicted {
			close(e.changed) // the caller asks again and meets the new entry
		}
	}
	return e.changed
}

// notifyLocked wakes the AllowWait callers of e. Caller holds e.mu.
func (e *entry) notifyLocked() {
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// State returns the key's current state; StateClosed for a key the Set does
// not hold (a new breaker starts closed). Like Allow, it moves an open breaker
// whose open period is over to half-open.
func (s *Set) State(key string) State {
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil {
		return StateClosed
	}
	now := s.nanos()
	e.mu.Lock()
	if e.evicted {
		e.mu.Unlock()
		return StateClosed
	}
	if e.state == StateOpen && now >= e.openUntil {
		e.now = now
		e.cb.State() // lets gobreaker turn half-open; onStateChange updates e.state
	}
	st := e.state
	s.unlockAndDispatch(e)
	return st
}

// Len returns how many breakers the Set holds.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// done reports the outcome of an attempt admitted in generation gen.
func (e *entry) done(gen uint64, err error) {
	s := e.s
	outcome := s.classify(err)
	now := s.nanos()
	e.mu.Lock()
	e.inflight--
	e.lastUsed = now
	// An attempt admitted before the last transition is stale: gobreaker would
	// drop it (its generation moved on too), and calling into gobreaker while
	// the open period runs could let its own 1ns timer turn it half-open early.
	if e.state == StateHalfOpen {
		// A probe ended: its slot is free, or the outcome is about to
		// decide the probe. Either way, waiters ask again.
		e.notifyLocked()
	}
	if gen == e.gen && !e.evicted {
		if e.state == StateClosed && outcome != errExcluded {
			failed := outcome == errFailure
			e.win.add(now, s.period, failed)
			if failed {
				e.nfail++
				e.frun++
			} else {
				e.nsucc++
				e.frun = 0
			}
		}
		e.now = now
		e.gbDone(outcome)
	}
	s.unlockAndDispatch(e)
}

// classify maps an attempt's error to the outcome handed to gobreaker: nil
// (success), errFailure or errExcluded.
func (s *Set) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case s.isExcluded == nil: // both defaults: one pass over the error
		excluded, failure := defaultClassify(err)
		if excluded {
			return errExcluded
		}
		if failure {
			return errFailure
		}
		return nil
	case s.isExcluded(err):
		return errExcluded
	case s.isFailure(err):
		return errFailure
	}
	return nil
}

// readyToTrip is gobreaker's ReadyToTrip; it runs under e.mu (inside done),
// after the failure was added to the window.
func (e *entry) readyToTrip(c gobreaker.Counts) bool {
	s := e.s
	if e.force || c.ConsecutiveFailures >= s.consecutive {
		return true
	}
	if s.fleet.Load() {
		return e.fleetRuleHolds()
	}
	return e.windowRuleHolds(0, 0)
}

// onStateChange is gobreaker's OnStateChange. It runs under gobreaker's lock,
// inside a call made under e.mu: it only updates the entry and queues the
// event; unlockAndDispatch delivers it once the locks are released.
func (e *entry) onStateChange(_ string, from, to gobreaker.State) {
	e.state = State(to)
	e.gen++
	e.notifyLocked()
	e.gbDone, e.doneFn = nil, nil
	e.leased = false
	openFor := e.s.openTimeout
	switch e.state {
	case StateOpen:
		if e.forceFor > 0 {
			openFor = e.forceFor
		}
		e.openUntil = e.now + openFor
		if e.openUntil < e.now { // overflow: open "forever"
			e.openUntil = math.MaxInt64
		}
	case StateClosed:
		e.win.reset(e.now, e.s.period)
		e.frun, e.rsucc, e.rfail, e.rrun = 0, 0, 0, 0
	}
	if !e.evicted {
		e.queue(State(from), State(to))
		if sh := e.s.shared; sh != nil {
			t := Transition{Key: e.key, From: State(from), To: State(to), Fleet: e.fromFleet}
			if t.To == StateOpen {
				t.OpenFor = time.Duration(openFor)
			}
			sh.Transition(t)
		}
	}
}

// queue records a transition for the hook. Caller holds e.mu.
func (e *entry) queue(from, to State) {
	s := e.s
	if s.hook == nil {
		return
	}
	s.hmu.Lock()
	s.events = append(s.events, event{key: e.key, from: from, to: to})
	s.hmu.Unlock()
	e.queued = true
}

// rejection returns the shared OpenError for the state. Caller holds e.mu.
func (e *entry) rejection(st State) *OpenError {
	p := &e.openErr
	if st == StateHalfOpen {
		p = &e.probeErr
	}
	if *p == nil {
		*p = newOpenError(e.key, st)
	}
	return *p
}

// evictable reports whether the entry may go without losing anything that
// matters: no attempt in flight and not inside its open period. Caller holds
// e.mu.
func (e *entry) evictable(now int64) bool {
	return e.inflight == 0 && !(e.state == StateOpen && now < e.openUntil)
}

// unlockAndDispatch releases e.mu and delivers the hook events this call
// queued, if any.
func (s *Set) unlockAndDispatch(e *entry) {
	q := e.queued
	e.queued = false
	e.mu.Unlock()
	if q {
		s.dispatch()
	}
}

// dispatch delivers queued hook events in order. Only one goroutine delivers
// at a time; a goroutine that finds another delivering leaves its events to
// it (the deliverer drains the queue before it stops). No lock is held while
// the hook runs, so it may call back into the Set; events it causes are
// delivered after it returns.
func (s *Set) dispatch() {
	s.hmu.Lock()
	if s.dispatching {
		s.hmu.Unlock()
		return
	}
	s.dispatching = true
	for s.head < len(s.events) {
		ev := s.events[s.head]
		s.events[s.head] = event{}
		s.head++
		s.hmu.Unlock()
		s.deliver(ev)
		s.hmu.Lock()
	}
	s.events = s.events[:0]
	s.head = 0
	s.dispatching = false
	s.hmu.Unlock()
}

func (s *Set) deliver(ev event) {
	ok := false
	defer func() {
		if !ok { // the hook panicked: let the next transition deliver the rest
			s.hmu.Lock()
			s.dispatching = false
			s.hmu.Unlock()
		}
	}()
	s.hook(ev.key, ev.from, ev.to)
	ok = true
}

// entry returns the key's breaker, creating it if needed.
func (s *Set) entry(key string) *entry {
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e != nil {
		return e
	}
	return s.insert(key)
}

func (s *Set) insert(key string) *entry {
	now := s.nanos()
	s.mu.Lock()
	if e := s.m[key]; e != nil {
		s.mu.Unlock()
		return e
	}
	queued := false
	if now-s.lastSweep >= s.sweepEvery {
		queued = s.sweepLocked(now)
	}
	for len(s.m) >= s.maxKeys {
		queued = s.evictOneLocked(now) || queued
	}
	e := s.newEntry(key, now)
	s.m[key] = e
	s.mu.Unlock()
	if queued {
		s.dispatch()
	}
	return e
}

func (s *Set) newEntry(key string, now int64) *entry {
	e := &entry{key: key, s: s, lastUsed: now}
	e.win.buckets = make([]bucket, s.buckets)
	e.win.reset(now, s.period)
	e.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          key,
		MaxRequests:   s.probes,
		Timeout:       time.Nanosecond, // the entry times the open period
		ReadyToTrip:   e.readyToTrip,
		OnStateChange: e.onStateChange,
		IsSuccessful:  gbIsSuccessful,
		IsExcluded:    gbIsExcluded,
	})
	return e
}

// sweepLocked removes every evictable entry idle for IdleTimeout. Caller holds
// s.mu. It reports whether hook events were queued.
func (s *Set) sweepLocked(now int64) (queued bool) {
	s.lastSweep = now
	for k, e := range s.m {
		e.mu.Lock()
		idle := now-e.lastUsed >= s.idleTimeout && e.evictable(now)
		if idle {
			queued = e.evictLocked() || queued
		}
		e.mu.Unlock()
		if idle {
			delete(s.m, k)
		}
	}
	return queued
}

// Eviction under the cap samples the map (Go randomises where iteration
// starts) and removes the least recently used evictable entry among the
// sample; with none evictable in evictMaxSample entries it removes the least
// recently used one sampled, so the cap always holds.
const (
	evictSample    = 8
	evictMaxSample = 64
)

// evictOneLocked removes one entry. Caller holds s.mu. It reports whether hook
// events were queued.
func (s *Set) evictOneLocked(now int64) bool {
	var best, oldest *entry
	var bestUsed, oldestUsed int64
	n := 0
	for _, e := range s.m {
		e.mu.Lock()
		used, ok := e.lastUsed, e.evictable(now)
		e.mu.Unlock()
		if oldest == nil || used < oldestUsed {
			oldest, oldestUsed = e, used
		}
		if ok && (best == nil || used < bestUsed) {
			best, bestUsed = e, used
		}
		n++
		if (n >= evictSample && best != nil) || n >= evictMaxSample {
			break
		}
	}
	if best == nil {
		best = oldest
	}
	if best == nil {
		return false
	}
	best.mu.Lock()
	queued := best.evictLocked()
	best.mu.Unlock()
	delete(s.m, best.key)
	return queued
}

// evictLocked marks the entry evicted. A breaker that was not closed reports a
// last transition to closed, the state a new breaker for the key starts in.
// Caller holds e.mu.
func (e *entry) evictLocked() bool {
	if e.state != StateClosed {
		e.queue(e.state, StateClosed)
	}
	e.evicted = true
	e.notifyLocked()
	q := e.queued
	e.queued = false
	return q
}

// window is the rolling window of counted outcomes: a ring of buckets, each
// covering one period; cur is the absolute number (now/period) of the newest.
type window struct {
	buckets    []bucket
	cur        int64
	succ, fail uint32
}

type bucket struct{ succ, fail uint32 }

func (w *window) reset(now, period int64) {
	clear(w.buckets)
	w.succ, w.fail = 0, 0
	w.cur = now / period
}

// advance drops the buckets that have left the window by now.
func (w *window) advance(now, period int64) {
	b := now / period
	if b <= w.cur {
		return
	}
	n := int64(len(w.buckets))
	if b-w.cur >= n {
		w.reset(now, period)
		return
	}
	for i := w.cur + 1; i <= b; i++ {
		k := &w.buckets[i%n]
		w.succ -= k.succ
		w.fail -= k.fail
		*k = bucket{}
	}
	w.cur = b
}

func (w *window) add(now, period int64, failed bool) {
	w.advance(now, period)
	k := &w.buckets[w.cur%int64(len(w.buckets))]
	if failed {
		k.fail++
		w.fail++
	} else {
		k.succ++
		w.succ++
	}
}
