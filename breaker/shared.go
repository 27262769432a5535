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
// and never calls, the Shared while admitting an attempt; taking an
// outcome, it at most tells the Shared that a vote or a state changed,
// which the Shared queues. The Shared works from its own goroutines
// through the [Member] handed to Attach: it reads each breaker's vote
// ([Member.Snapshot]) and publishes it, and hands back what the fleet
// voted ([Member.SetFleet]), that another member opened ([Member.Open]) or
// closed ([Member.Close]) a breaker, and which breaker holds the fleet's
// half-open probe lease ([Member.Lease]). With a Shared attached:
//
//   - a member votes ([Local.Vote]): it sees a key failing when its own
//     outcomes meet the trip rule with thresholds shared out over the
//     quorum;
//   - the fleet opens a key when a quorum of the members that called it
//     recently vote failing ([Config.Quorum], a majority by default), each
//     member counted once whatever its call rate; the member that sees the
//     quorum opens its breaker and the Shared tells the fleet;
//   - a member whose own outcomes trip the rule without a quorum behind it
//     opens its own breaker only: it is on its own schedule ([Local.Own]),
//     probes as a local breaker does, and its failed probes reopen only
//     itself; meanwhile it abstains, as its path says nothing about the
//     others';
//   - a half-open breaker on the fleet's schedule admits probes only while
//     it holds the fleet's lease, so a recovering downstream gets
//     HalfOpenProbes probes from the fleet rather than from every member,
//     and never from a member on its own schedule.
//
// See the package documentation ("Sharing breakers across a fleet") for
// the rule and why its defaults are what they are.
//
// While the Shared reports itself degraded ([Member.SetDegraded], the state
// a Set starts in) the Set is purely local: the fleet's votes are dropped,
// every opening is the member's own, and half-open breakers probe without
// a lease.
type Shared interface {
	// Attach is called once by NewSet, before NewSet returns. An error (for
	// example: already attached to another Set) makes NewSet fail.
	Attach(m *Member) error
	// Transition is told of every state transition of every breaker of
	// the Set, in order, while that breaker's lock is held: it must return
	// at once (queue the work for a goroutine of its own) and must not call
	// into the Set or the Member.
	Transition(t Transition)
	// Voted is told when a breaker's vote ([Local.Vote]) changes, while
	// that breaker's lock is held, with the same rules as Transition. It
	// lets the Shared publish a vote at once rather than at its next
	// round: the fleet's quorum is then decided within a round trip of the
	// vote that completes it.
	Voted(key string, v Vote)
}

// Vote is a member's vote on one key: what its own outcomes say about the
// downstream.
type Vote int8

// The votes.
const (
	// VoteHealthy: the member's own outcomes do not meet its share of the
	// trip rule (or the fleet opened the key: it has none to judge by).
	VoteHealthy Vote = iota
	// VoteFailing: the member's own outcomes meet the trip rule with the
	// thresholds shared out over the quorum.
	VoteFailing
	// VoteAbstain: the member's breaker is open on its own trouble
	// (Local.Own): its path fails where the others' did not, so its
	// outcomes say nothing about theirs. It counts neither as failing nor
	// among the members that called the key.
	VoteAbstain
)

// String returns "healthy", "failing" or "abstain".
func (v Vote) String() string {
	switch v {
	case VoteHealthy:
		return "healthy"
	case VoteFailing:
		return "failing"
	case VoteAbstain:
		return "abstain"
	}
	return fmt.Sprintf("Vote(%d)", int8(v))
}

// Transition is one state transition as reported to [Shared.Transition].
//
// What the Shared tells the fleet follows from Fleet and Own: a transition
// with neither is this member's decision for the fleet (an opening its
// quorum or its leased probe decided, a closing by its leased probes),
// which the Shared publishes; a half-open breaker that is not Own asks
// for the fleet's probe lease.
type Transition struct {
	Key      string
	From, To State
	// OpenFor is how long the breaker stays open, when To is StateOpen.
	OpenFor time.Duration
	// Fleet reports that the transition was made on the fleet's word
	// ([Member.Open] or [Member.Close]): another member decided, and there
	// is nothing to tell the fleet.
	Fleet bool
	// Own reports that the breaker left (or is leaving) the closed state on
	// this member's own trouble, which the fleet's quorum did not share:
	// only this member's breaker moves, on its own schedule; there is
	// nothing to tell the fleet and no probe lease to ask for.
	Own bool
}

// Local is one breaker's state as [Member.Snapshot] reports it.
type Local struct {
	Key   string
	State State
	// Calls counts the Allow calls of the breaker, admitted or refused,
	// since it was created (it restarts from zero if the key's breaker is
	// evicted and created again): a member called the key since an earlier
	// Snapshot if Calls changed.
	Calls uint64
	// Vote is the member's vote on the key (see the package
	// documentation for the thresholds).
	Vote Vote
	// Own reports that the breaker is not closed on this member's own
	// trouble, which the fleet did not share (see [Transition.Own]).
	Own bool
	// Leased reports that the breaker is half-open and holds the fleet's
	// probe lease.
	Leased bool
}

// Fleet is what the other members of a fleet voted on one key, as handed to
// [Member.SetFleet].
type Fleet struct {
	// Members is how many other members called the key recently (the
	// Shared says how recently; redisbreaker: within one to two buckets of
	// the Window), less those that abstain.
	Members uint32
	// Failing is how many of them vote failing; at most Members.
	Failing uint32
}

// Member is a Set's side of a [Shared]: the handle through which the Shared
// reads the Set's votes and hands it the fleet's. Its methods are safe for
// concurrent use; none of them blocks on anything but the Set's own locks.
type Member struct{ s *Set }

// Config returns the Set's configuration with its defaults filled in.
func (m *Member) Config() Config { return m.s.cfg }

// Snapshot appends the state of every breaker the Set holds to dst and
// returns it.
func (m *Member) Snapshot(dst []Local) []Local {
	s := m.s
	now := s.nanos()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, e := range s.m {
		e.mu.Lock()
		dst = append(dst, Local{
			Key: k, State: e.state, Calls: e.calls,
			Vote: e.voteLocked(now), Own: e.own, Leased: e.leased,
		})
		e.mu.Unlock()
	}
	return dst
}

// SetFleet hands the key's breaker what the rest of the fleet voted; the
// view holds for one bucket of the Window (Window/Buckets), after which the
// breaker acts on its own outcomes alone until the next SetFleet. A closed
// breaker that votes failing, and finds a quorum of the members (itself
// and f.Members) failing, opens at once: a transition with Fleet and Own
// false, which the Shared should tell the fleet. Keys the Set does not
// hold, and calls while degraded, are ignored.
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
	e.fleetUntil = now + s.period
	e.members, e.failing = f.Members, min(f.Failing, f.Members)
	// Only a closed breaker votes failing.
	if v := e.voteLocked(now); v == VoteFailing && e.quorumHoldsLocked(now) {
		e.own = false
		e.openLocked(now, 0)
	} else {
		e.publishVoteLocked(v)
	}
	s.unlock(e)
}

// Open opens the key's breaker for d on the fleet's word (another member
// opened it), creating the breaker if the Set does not hold the key yet. An
// open breaker stays open until the later of its own end and now+d. A
// breaker on its own trouble stays on its own schedule (Local.Own): the
// fleet's opening lengthens or starts its open period, but its probes
// still take no lease and the fleet's closing does not close it.
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
		switch e.state {
		case StateOpen:
			e.openUntil = max(e.openUntil, until)
		case StateClosed:
			e.own = false
			fallthrough
		default:
			e.openLocked(now, until-now)
		}
		s.unlock(e)
		return
	}
}

// Close closes the key's breaker on the fleet's word (another member's
// probes succeeded). An open breaker passes through half-open, so the
// Transition hook sees both steps. Keys the Set does not hold, and breakers
// on their own trouble (Local.Own), which close on their own probes, are
// left as they are.
func (m *Member) Close(key string) {
	s := m.s
	e := s.lookup(key)
	if e == nil {
		return
	}
	now := s.nanos()
	e.mu.Lock()
	if e.evicted || e.state == StateClosed || e.own {
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
// the breaker is not half-open or is on its own trouble (the Shared should
// then give the lease back).
func (m *Member) Lease(key string) bool {
	s := m.s
	e := s.lookup(key)
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.evicted || e.state != StateHalfOpen || e.own {
		return false
	}
	e.leased = true
	e.notifyLocked() // AllowWait callers ask again
	return true
}

// SetDegraded switches the Set between fleet mode (false) and purely local
// breakers (true), the state a Set starts in. Going degraded drops the
// fleet's votes from every breaker and lets half-open breakers probe
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
		e.fleetUntil = 0 // members and failing are read only while it is ahead
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

// The vote's thresholds never fall below these (nor above the trip rule's
// own): a run of 4 failures, or 25 outcomes in the window. Below them, noise
// alone would make large fleets vote failing together; see the package
// documentation.
const (
	minVoteRun      = 4
	minVoteRequests = 25
)

// quorumOf returns how many of n members (n >= 1) make a quorum: more than
// Quorum of them, and at most all of them.
func (s *Set) quorumOf(n uint32) uint32 {
	return min(uint32(math.Floor(s.cfg.Quorum*float64(n)))+1, n)
}

// voteThresholds returns the trip rule's thresholds shared out over a
// quorum of q members: what each member's own outcomes must meet for it to
// vote failing.
func (s *Set) voteThresholds(q uint32) (run, requests uint32) {
	share := func(total, floor uint32) uint32 {
		per := uint32((uint64(total) + uint64(q) - 1) / uint64(q))
		return min(total, max(per, floor))
	}
	return share(s.consecutive, minVoteRun), share(s.minRequests, minVoteRequests)
}

// viewLocked reports whether the fleet's view of the key is at hand (the
// Shared attached, not degraded, a SetFleet within one bucket) and the
// quorum it asks for. Caller holds e.mu.
func (e *entry) viewLocked(now int64) (fresh bool, quorum uint32) {
	if !e.s.fleet.Load() || now >= e.fleetUntil {
		return false, 1
	}
	return true, e.s.quorumOf(1 + e.members)
}

// voteLocked is the breaker's vote. Caller holds e.mu.
func (e *entry) voteLocked(now int64) Vote {
	switch {
	case e.state != StateClosed && e.own:
		return VoteAbstain
	case e.state != StateClosed:
		return VoteHealthy
	}
	if _, q := e.viewLocked(now); e.ruleHoldsLocked(e.s.voteThresholds(q)) {
		return VoteFailing
	}
	return VoteHealthy
}

// quorumHoldsLocked reports whether the fleet's view is at hand and, this
// member voting failing, a quorum votes failing. Caller holds e.mu.
func (e *entry) quorumHoldsLocked(now int64) bool {
	fresh, q := e.viewLocked(now)
	return fresh && 1+e.failing >= q
}

// revoteLocked tells the Shared when the breaker's vote changed. Caller
// holds e.mu.
func (e *entry) revoteLocked(now int64) {
	if e.s.shared != nil && !e.evicted {
		e.publishVoteLocked(e.voteLocked(now))
	}
}

// publishVoteLocked tells the Shared of v if it is a new vote. Caller
// holds e.mu; the Set has a Shared and e is not evicted.
func (e *entry) publishVoteLocked(v Vote) {
	if v != e.voted {
		e.voted = v
		e.s.shared.Voted(e.key, v)
	}
}
