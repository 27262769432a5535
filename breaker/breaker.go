package breaker

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/internal/hooks"
	"github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/internal/window"
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
	period      int64                // bucket period, ns
	openPeriods *backoff.Exponential // the open period of the n-th opening
	idleTimeout int64                // ns
	sweepEvery  int64                // ns

	epoch time.Time // the reading of time.Now that nanos() counts from

	cfg    Config      // as configured, defaults filled in (Member.Config)
	shared Shared      // nil: every breaker is local
	fleet  atomic.Bool // shared is attached and not degraded

	mu        sync.RWMutex
	m         map[string]*entry // guarded by mu
	lastSweep int64             // guarded by mu

	events *hooks.Queue[event] // transitions for hook, delivered outside every lock
}

type event struct {
	key      string
	from, to State
}

// entry is one key's breaker: the state machine (closed, open, half-open),
// its generation, the closed state's counts and the half-open state's probe
// slots, all guarded by mu.
//
// Every transition starts a new generation. An attempt's done func carries
// the generation it was admitted in, and an outcome of an earlier
// generation changes nothing: an attempt admitted while closed that ends
// while half-open does not decide the probe, and a stale probe that ends
// excluded frees no slot of the new half-open period. All attempts of one
// generation share one done func (doneFn), so a closed breaker admits
// attempts without allocating.
type entry struct {
	key string
	s   *Set

	mu        sync.Mutex
	state     State
	gen       uint64      // bumped on every transition
	doneFn    func(error) // the done func handed out for gen, nil until first needed
	openUntil int64       // end of the open period (ns), valid while state == StateOpen
	lastUsed  int64       // creation, last done, or last Allow that read the clock (ns)
	inflight  int32       // admitted attempts whose done has not been called
	opens     uint32      // openings since the breaker last closed
	consec    uint32      // closed: this breaker's own failures in a row
	probes    uint32      // half-open: probes admitted this generation, less those excluded
	probeOK   uint32      // half-open: probes of this generation that succeeded
	evicted   bool        // removed from the Set; transitions are no longer reported
	win       window.Window
	changed   chan struct{} // closed at the next transition or freed probe slot; nil until awaited
	openErr   *OpenError    // cached rejections, built on first use
	probeErr  *OpenError

	// Fleet sharing (Config.Shared); see shared.go. calls is kept whether
	// or not a Shared is attached: an increment costs less than a branch.
	calls      uint64 // Allow calls, admitted or refused, since creation
	own        bool   // not closed on this member's own trouble, which the fleet did not share
	voted      Vote   // the vote last told to the Shared (Shared.Voted)
	leased     bool   // half-open and holding the fleet's probe lease
	fleetUntil int64  // the fleet's view below holds until then (ns); 0: no view
	members    uint32 // the fleet's view: other members that called the key recently
	failing    uint32 // the fleet's view: how many of them see it failing
}

// NewSet returns an empty Set configured by c (zero fields take their
// defaults). It returns an error wrapping [ErrInvalidConfig] if c is invalid.
func NewSet(c Config) (*Set, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	defaultClassification := c.IsFailure == nil && c.IsExcluded == nil
	c = c.withDefaults()
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
		idleTimeout: int64(c.IdleTimeout),
		sweepEvery:  max(int64(c.IdleTimeout)/4, 1),
		epoch:       time.Now(),
		m:           make(map[string]*entry),
		cfg:         c,
	}
	s.events = hooks.New(func(ev event) { s.hook(ev.key, ev.from, ev.to) })
	r := c.Rand
	if r == nil {
		r = ownRand()
	}
	// The open period is a capped exponential backoff over the openings;
	// an OpenTimeout above MaxOpenTimeout stays fixed.
	var err error
	s.openPeriods, err = backoff.NewExponential(backoff.Config{
		BaseDelay:  c.OpenTimeout,
		MaxDelay:   max(c.MaxOpenTimeout, c.OpenTimeout),
		Multiplier: c.OpenMultiplier,
		Jitter:     c.OpenJitter,
	}, backoff.WithRandom(serialised(r)))
	if err != nil { // not reached: Validate checked every field
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
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

// ownRand returns a random source of the Set's own, seeded at random.
func ownRand() func() float64 {
	var seed [16]byte
	_, _ = crand.Read(seed[:]) // never fails
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))).Float64
}

// serialised returns r with its calls serialised, so that r need not be
// safe for concurrent use.
func serialised(r func() float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r()
	}
}

// nanos is the time in nanoseconds since the Set was created, on the
// monotonic clock.
func (s *Set) nanos() int64 {
	if n := int64(time.Since(s.epoch)); n > 0 {
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
		e.calls++
		// A closed breaker admits without reading the clock: done stamps
		// lastUsed, and an entry with attempts in flight is never idle.
		if e.state != StateClosed {
			if err := e.admitProbeLocked(s.nanos()); err != nil {
				s.unlock(e)
				return nil, err
			}
		}
		e.inflight++
		if e.doneFn == nil {
			gen := e.gen
			e.doneFn = func(err error) { e.done(gen, err) }
		}
		done := e.doneFn
		s.unlock(e)
		return done, nil
	}
}

// admitProbeLocked decides an attempt on a breaker that is not closed: an
// open one past its open period turns half-open, and a half-open one admits
// the attempt as a probe if it has a free slot (and, in a fleet, holds the
// probe lease). It returns the rejection otherwise. Caller holds e.mu.
func (e *entry) admitProbeLocked(now int64) error {
	s := e.s
	e.lastUsed = now
	if e.state == StateOpen {
		if now < e.openUntil {
			return e.rejection(StateOpen)
		}
		e.setStateLocked(StateHalfOpen, now, 0, false)
	}
	// The fleet leases its probes: without the lease a half-open breaker
	// on the fleet's schedule admits nothing (turning half-open told the
	// Shared, which asks the fleet for the lease). One on its own trouble
	// probes as a local breaker does. The first probe goes alone: a
	// downstream that is still gone costs one attempt per open period, not
	// HalfOpenProbes; once it succeeds the others may go at once.
	slots := uint32(1)
	if e.probeOK > 0 {
		slots = s.probes
	}
	if (!e.leased && !e.own && s.fleet.Load()) || e.probes >= slots {
		return e.rejection(StateHalfOpen)
	}
	e.probes++
	return nil
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
func (s *Set) State(key string) State { return s.toHalfOpen(key, false) }

// Ready tells the key's breaker that a connection to its downstream that
// was down is ready again: an open breaker turns half-open at once, so that
// the next Allow is a probe instead of a rejection until the open period
// ends. The open period's growth is kept: if the probe fails, the breaker
// reopens for the next, longer period. A closed or half-open breaker, and
// a key the Set does not hold, are left as they are.
//
// Call it from the code that sees the connection (an attempt that waited
// for a connection and found it ready), so that a restarted server is
// probed as soon as it accepts connections rather than up to an open
// period later. It acts on one key: with breakers per target and method,
// each call that saw the connection come back reports its own key.
func (s *Set) Ready(key string) { s.toHalfOpen(key, true) }

// toHalfOpen moves key's open breaker to half-open once its open period
// is over, or at once if early, and returns the breaker's state:
// StateClosed for a key the Set does not hold.
func (s *Set) toHalfOpen(key string, early bool) State {
	e := s.lookup(key)
	if e == nil {
		return StateClosed
	}
	now := s.nanos()
	e.mu.Lock()
	if e.evicted {
		e.mu.Unlock()
		return StateClosed
	}
	if e.state == StateOpen && (early || now >= e.openUntil) {
		e.setStateLocked(StateHalfOpen, now, 0, false)
	}
	st := e.state
	s.unlock(e)
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
	kind := s.classify(err)
	now := s.nanos()
	e.mu.Lock()
	e.inflight--
	e.lastUsed = now
	if e.state == StateHalfOpen {
		// A probe ended: its slot is free, or the outcome is about to
		// decide the probe. Either way, waiters ask again.
		e.notifyLocked()
	}
	if gen == e.gen && !e.evicted {
		switch e.state {
		case StateClosed:
			e.countLocked(now, kind)
		case StateHalfOpen:
			e.probeEndedLocked(now, kind)
		}
	}
	s.unlock(e)
}

// countLocked counts an outcome of the closed state and opens the breaker
// if the trip rule then holds: for the fleet if its quorum holds too, else
// for this member alone. Caller holds e.mu.
func (e *entry) countLocked(now int64, kind outcome.Kind) {
	switch kind {
	case outcome.CallerGone: // neither extends nor breaks a run
	case outcome.ServerFailure:
		e.win.Add(now, true)
		e.consec++
		if e.tripsLocked() {
			e.own = !e.quorumHoldsLocked(now)
			e.openLocked(now, 0)
		} else if e.s.shared != nil {
			e.revoteLocked(now)
		}
	default:
		e.win.Add(now, false)
		e.consec = 0
		if e.voted == VoteFailing { // a success only ever ends a failing vote
			e.revoteLocked(now)
		}
	}
}

// probeEndedLocked takes a probe's outcome: an excluded one frees its slot,
// HalfOpenProbes successes close the breaker, a failure reopens it. Caller
// holds e.mu.
func (e *entry) probeEndedLocked(now int64, kind outcome.Kind) {
	s := e.s
	switch kind {
	case outcome.CallerGone:
		e.probes--
	case outcome.ServerFailure:
		e.openLocked(now, 0)
	default:
		if e.probeOK++; e.probeOK >= s.probes {
			e.setStateLocked(StateClosed, now, 0, false)
		}
	}
}

// classify sorts an attempt's error into a success (outcome.Success), a
// failure (outcome.ServerFailure) or an excluded outcome
// (outcome.CallerGone), by the Set's IsFailure and IsExcluded.
func (s *Set) classify(err error) outcome.Kind {
	switch {
	case err == nil:
		return outcome.Success
	case s.isExcluded == nil: // both defaults: one pass over the error
		return defaultKind(err)
	case s.isExcluded(err):
		return outcome.CallerGone
	case s.isFailure(err):
		return outcome.ServerFailure
	}
	return outcome.Success
}

// tripsLocked is the trip rule on this breaker's own outcomes, evaluated
// after a failure was counted. Caller holds e.mu.
func (e *entry) tripsLocked() bool {
	return e.ruleHoldsLocked(e.s.consecutive, e.s.minRequests)
}

// ruleHoldsLocked is the trip rule on this breaker's own outcomes with the
// given thresholds: run failures in a row, or at least requests outcomes
// in the window with the failure ratio. Caller holds e.mu.
func (e *entry) ruleHoldsLocked(run, requests uint32) bool {
	if e.consec >= run {
		return true
	}
	succ, fail := e.win.Counts()
	total := uint64(succ) + uint64(fail)
	return total >= uint64(requests) && float64(fail)/float64(total) >= e.s.ratio
}

// openLocked opens a closed or half-open breaker: for d if d > 0 (on the
// fleet's word), else for the open period of its next opening. e.own, set
// by the caller, says whose trouble it is. Caller holds e.mu.
func (e *entry) openLocked(now, d int64) {
	e.opens++
	fleet := d > 0
	if !fleet {
		d = int64(e.s.openPeriods.Delay(int(min(e.opens, math.MaxInt32))))
	}
	e.setStateLocked(StateOpen, now, d, fleet)
}

// setStateLocked moves e to state to at time now, starting a new
// generation: openFor is the open period when to is StateOpen, fleet marks
// a transition made on the fleet's word (Transition.Fleet). The transition
// is queued for the hook, which unlock delivers, and told to the Shared.
// Caller holds e.mu.
func (e *entry) setStateLocked(to State, now, openFor int64, fleet bool) {
	from := e.state
	if from == to {
		return
	}
	own := e.own
	e.state = to
	e.gen++
	e.doneFn = nil
	e.consec, e.probes, e.probeOK = 0, 0, 0
	e.leased = false
	e.notifyLocked()
	switch to {
	case StateOpen:
		e.openUntil = now + openFor
		if e.openUntil < now { // overflow: open "forever"
			e.openUntil = math.MaxInt64
		}
	case StateClosed:
		e.win.Reset(now)
		e.opens, e.own, e.failing = 0, false, 0
	}
	if e.evicted {
		return
	}
	e.queue(from, to)
	if sh := e.s.shared; sh != nil {
		t := Transition{Key: e.key, From: from, To: to, Fleet: fleet, Own: own}
		if to == StateOpen {
			t.OpenFor = time.Duration(openFor)
		}
		sh.Transition(t)
		e.revoteLocked(now)
	}
}

// queue records a transition for the hook. Caller holds e.mu.
func (e *entry) queue(from, to State) {
	if e.s.hook != nil {
		e.s.events.Push(event{key: e.key, from: from, to: to})
	}
}

// unlock releases e.mu and delivers the hook events queued meanwhile.
func (s *Set) unlock(e *entry) {
	e.mu.Unlock()
	s.events.Deliver()
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

// entry returns the key's breaker, creating it if needed.
func (s *Set) entry(key string) *entry {
	if e := s.lookup(key); e != nil {
		return e
	}
	return s.insert(key)
}

// lookup returns the key's breaker, or nil if the Set does not hold it.
func (s *Set) lookup(key string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[key]
}

func (s *Set) insert(key string) *entry {
	now := s.nanos()
	s.mu.Lock()
	if e := s.m[key]; e != nil {
		s.mu.Unlock()
		return e
	}
	if now-s.lastSweep >= s.sweepEvery {
		s.sweepLocked(now)
	}
	for len(s.m) >= s.maxKeys {
		s.evictOneLocked(now)
	}
	e := &entry{key: key, s: s, lastUsed: now, win: window.New(s.buckets, s.period, now)}
	s.m[key] = e
	s.mu.Unlock()
	s.events.Deliver()
	return e
}

// sweepLocked removes every evictable entry idle for IdleTimeout. Caller
// holds s.mu.
func (s *Set) sweepLocked(now int64) {
	s.lastSweep = now
	for k, e := range s.m {
		e.mu.Lock()
		idle := now-e.lastUsed >= s.idleTimeout && e.evictable(now)
		if idle {
			e.evictLocked()
		}
		e.mu.Unlock()
		if idle {
			delete(s.m, k)
		}
	}
}

// Eviction under the cap samples the map (Go randomises where iteration
// starts) and removes the least recently used evictable entry among the
// sample; with none evictable in evictMaxSample entries it removes the least
// recently used one sampled, so the cap always holds.
const (
	evictSample    = 8
	evictMaxSample = 64
)

// evictOneLocked removes one entry. Caller holds s.mu.
func (s *Set) evictOneLocked(now int64) {
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
		return
	}
	best.mu.Lock()
	best.evictLocked()
	best.mu.Unlock()
	delete(s.m, best.key)
}

// evictLocked marks the entry evicted. A breaker that was not closed reports a
// last transition to closed, the state a new breaker for the key starts in.
// Caller holds e.mu.
func (e *entry) evictLocked() {
	if e.state != StateClosed {
		e.queue(e.state, StateClosed)
	}
	e.evicted = true
	e.notifyLocked()
}
