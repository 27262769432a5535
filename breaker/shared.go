package breaker

import (
	"fmt"
	"math"
	"time"
)

// Shared connects a [Set] to breaker state shared with other Sets: a fleet
// of processes calling the same downstreams (module
// github.com/grpc-resilience/resilience/redisbreaker implements it on Redis).
// Set it in [Config.Shared].
//
// The split keeps the network off the call path. The Set never waits for,
// and never calls, the Shared while admitting an attempt or taking its
// outcome; it only counts, as it does anyway. The Shared works from its own
// goroutines through the [Member] handed to Attach: it reads the counts
// ([Member.Snapshot]) and publishes them, and hands back what the fleet saw
// ([Member.SetFleet]), that another member opened ([Member.Open]) or closed
// ([Member.Close]) a breaker, and which breaker holds the fleet's half-open
// probe lease ([Member.Lease]). With a Shared attached:
//
//   - the trip rule adds the fleet's window and failure run to the local
//     ones: a closed breaker opens when the fleet, not each member on its
//     own, has seen ConsecutiveFailures failures or the window's share;
//   - a half-open breaker admits probes only while it holds the fleet's
//     lease, so a recovering downstream gets HalfOpenProbes probes from the
//     fleet rather than from every member.
//
// While the Shared reports itself degraded ([Member.SetDegraded], the state
// a Set starts in) the Set is purely local: fleet counts are dropped and
// half-open breakers probe without a lease.
type Shared interface {
	// Attach is called once by NewSet, before NewSet returns. An error (for
	// example: already attached to another Set) makes NewSet fail.
	Attach(m *Member) error
	// Transition is told of every state transition of every breaker of
	// the Set, in order, while that breaker's lock is held: it must return
	// at once (queue the work for a goroutine of its own) and must not call
	// into the Set or the Member.
	Transition(t Transition)
}

// Transition is one state transition as reported to [Shared.Transition].
type Transition struct {
	Key      string
	From, To State
	// OpenFor is how long the breaker stays open, when To is StateOpen.
	OpenFor time.Duration
	// Fleet reports that the transition was made on the fleet's word
	// ([Member.Open] or [Member.Close]): another member decided, and there
	// is nothing to tell the fleet. A trip by the rule on the fleet's
	// counts ([Member.SetFleet]) is this Set's own decision: Fleet is false.
	Fleet bool
}

// Local is one breaker's state as [Member.Snapshot] reports it.
type Local struct {
	Key   string
	State State
	// Successes and Failures count the outcomes the breaker counted while
	// closed since it was created (they restart from zero if the key's
	// breaker is evicted and created again).
	Successes, Failures uint64
	// Run is the number of failures since the last success this breaker
	// knows of, its own or (through Fleet.ResetRun) another member's.
	Run uint32
	// Leased reports that the breaker is half-open and holds the fleet's
	// probe lease.
	Leased bool
}

// Fleet is what the other members of a fleet counted for one key, as handed
// to [Member.SetFleet].
type Fleet struct {
	// Successes and Failures are the other members' counted outcomes within
	// the rolling window (Config.Window).
	Successes, Failures uint32
	// Run is the other members' failures since the fleet's last success.
	Run uint32
	// ResetRun reports a success elsewhere in the fleet since the last
	// SetFleet: this member's Run restarts from zero.
	ResetRun bool
}

// Member is a Set's side of a [Shared]: the handle through which the Shared
// reads the Set's counts and hands it the fleet's. Its methods are safe for
// concurrent use; none of them blocks on anything but the Set's own locks.
type Member struct{ s *Set }

// Config returns the Set's configuration with its defaults filled in.
func (m *Member) Config() Config { return m.s.cfg }

// Snapshot appends the state of every breaker the Set holds to dst and
// returns it.
func (m *Member) Snapshot(dst []Local) []Local {
	s := m.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, e := range s.m {
		e.mu.Lock()
		dst = append(dst, Local{
			Key: k, State: e.state,
			Successes: e.nsucc, Failures: e.nfail,
			Run: e.frun, Leased: e.leased,
		})
		e.mu.Unlock()
	}
	return dst
}

// SetFleet hands the key's breaker what the rest of the fleet counted. A
// closed breaker whose rule then holds on the combined counts opens at once
// (a transition with Fleet false: the Shared should tell the fleet). Keys the
// Set does not hold, and calls while degraded, are ignored.
func (m *Member) SetFleet(key string, f Fleet) {
	s := m.s
	e := s.lookup(key)
	if e == nil {
		return
	}
	now := s.nanos()
	e.mu.Lock()
	if e.evicted || !s.fleet.Load() {
		e.mu.Unlock()
		return
	}
	e.rsucc, e.rfail, e.rrun = f.Successes, f.Failures, f.Run
	if f.ResetRun {
		e.frun = 0
	}
	if e.state == StateClosed && e.fleetRuleHolds() {
		e.openLocked(now, 0, false)
	}
	s.unlock(e)
}

// Open opens the key's breaker for d on the fleet's word (another member
// opened it), creating the breaker if the Set does not hold the key yet. An
// open breaker stays open until the later of its own end and now+d.
func (m *Member) Open(key string, d time.Duration) {
	if d <= 0 {
		return
	}
	s := m.s
	for {
		e := s.entry(key)
		now := s.nanos()
		e.mu.Lock()
		if e.evicted {
			e.mu.Unlock()
			continue
		}
		until := now + int64(d)
		if until < now {
			until = math.MaxInt64
		}
		if e.state == StateOpen {
			e.openUntil = max(e.openUntil, until)
		} else {
			e.openLocked(now, until-now, true)
		}
		s.unlock(e)
		return
	}
}

// Close closes the key's breaker on the fleet's word (another member's
// probes succeeded). An open breaker passes through half-open, so the
// Transition hook sees both steps. Keys the Set does not hold are ignored.
func (m *Member) Close(key string) {
	s := m.s
	e := s.lookup(key)
	if e == nil {
		return
	}
	now := s.nanos()
	e.mu.Lock()
	if e.evicted || e.state == StateClosed {
		e.mu.Unlock()
		return
	}
	if e.state == StateOpen {
		e.setStateLocked(StateHalfOpen, now, 0, true)
	}
	e.setStateLocked(StateClosed, now, 0, true)
	s.unlock(e)
}

// Lease gives the key's half-open breaker the fleet's probe lease: it may
// now admit HalfOpenProbes probes. It reports false, granting nothing, when
// the breaker is not half-open (the Shared should then give the lease back).
func (m *Member) Lease(key string) bool {
	s := m.s
	e := s.lookup(key)
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.evicted || e.state != StateHalfOpen {
		return false
	}
	e.leased = true
	e.notifyLocked() // AllowWait callers ask again
	return true
}

// SetDegraded switches the Set between fleet mode (false) and purely local
// breakers (true), the state a Set starts in. Going degraded drops the
// fleet's counts from every breaker and lets half-open breakers probe
// without a lease.
func (m *Member) SetDegraded(degraded bool) {
	s := m.s
	if s.fleet.Swap(!degraded) == !degraded || !degraded {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.m {
		e.mu.Lock()
		e.rsucc, e.rfail, e.rrun = 0, 0, 0
		e.notifyLocked()
		e.mu.Unlock()
	}
}

// attach connects c.Shared to s.
func (s *Set) attach(sh Shared) error {
	s.shared = sh
	if err := sh.Attach(&Member{s: s}); err != nil {
		return fmt.Errorf("%w: Shared: %w", ErrInvalidConfig, err)
	}
	return nil
}

// fleetRuleHolds reports whether the trip rule holds on the local and fleet
// counts together. Caller holds e.mu.
func (e *entry) fleetRuleHolds() bool {
	s := e.s
	if uint64(e.frun)+uint64(e.rrun) >= uint64(s.consecutive) {
		return true
	}
	return e.windowRuleHolds(uint64(e.rsucc), uint64(e.rfail))
}

// windowRuleHolds is the window rule on the local window plus the given
// fleet counts. Caller holds e.mu.
func (e *entry) windowRuleHolds(rsucc, rfail uint64) bool {
	s := e.s
	succ, fail := e.win.Counts()
	nfail := uint64(fail) + rfail
	total := uint64(succ) + rsucc + nfail
	return total >= uint64(s.minRequests) && float64(nfail)/float64(total) >= s.ratio
}
