package breaker

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recShared is a Shared that records what the Set tells it; the tests play
// the fleet through the Member it was handed.
type recShared struct {
	m     *Member
	mu    sync.Mutex
	got   []string
	votes []string
}

func (r *recShared) Attach(m *Member) error {
	if r.m != nil {
		return errors.New("already attached")
	}
	r.m = m
	return nil
}

func (r *recShared) Transition(t Transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%s:%s->%s", t.Key, t.From, t.To)
	if t.To == StateOpen {
		s += fmt.Sprintf(" for %v", t.OpenFor)
	}
	if t.Fleet {
		s += " (fleet)"
	}
	if t.Own {
		s += " (own)"
	}
	r.got = append(r.got, s)
}

func (r *recShared) Voted(key string, v Vote) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.votes = append(r.votes, fmt.Sprintf("%s:%v", key, v))
}

func (r *recShared) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recShared) voteList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.votes)
}

func (r *recShared) local(t *testing.T, key string) Local {
	t.Helper()
	for _, l := range r.m.Snapshot(nil) {
		if l.Key == key {
			return l
		}
	}
	t.Fatalf("Snapshot holds no %q", key)
	return Local{}
}

func newSharedSet(t *testing.T, c Config) (*Set, *recShared) {
	t.Helper()
	sh := &recShared{}
	c.Shared = sh
	s := newTestSet(t, c)
	sh.m.SetDegraded(false)
	return s, sh
}

// member returns a Set in a fleet whose view of key is f: it has called
// key once, successfully, and the fleet's Shared handed it f.
func member(t *testing.T, c Config, key string, f Fleet) (*Set, *recShared) {
	t.Helper()
	s, sh := newSharedSet(t, c)
	attempt(s, key, nil)
	sh.m.SetFleet(key, f)
	return s, sh
}

func failN(s *Set, key string, n int) {
	for range n {
		attempt(s, key, errUnavailable)
	}
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func TestSharedAttachError(t *testing.T) {
	sh := &recShared{}
	if _, err := NewSet(Config{Shared: sh}); err != nil {
		t.Fatal(err)
	}
	_, err := NewSet(Config{Shared: sh})
	if !errors.Is(err, ErrInvalidConfig) || err.Error() != "breaker: invalid config: Shared: already attached" {
		t.Fatalf("second NewSet error = %v", err)
	}
}

func TestQuorumValidate(t *testing.T) {
	for _, q := range []float64{-0.1, 1.01, math.NaN(), math.Inf(1)} {
		err := Config{Quorum: q}.Validate()
		want := fmt.Sprintf("breaker: invalid config: Quorum must be in (0,1] (0 means default), got %v", q)
		if err == nil || err.Error() != want || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Quorum %v: Validate() = %v, want %q", q, err, want)
		}
	}
	for _, q := range []float64{0, 0.01, 0.5, 1} {
		if err := (Config{Quorum: q}).Validate(); err != nil {
			t.Errorf("Quorum %v: Validate() = %v, want nil", q, err)
		}
	}
	if got := DefaultConfig().Quorum; got != 0.5 {
		t.Errorf("DefaultConfig().Quorum = %v, want 0.5", got)
	}
}

// The quorum and the share of the trip rule each member's vote needs, as
// the package documentation lists them for the default rule.
func TestQuorumAndVoteThresholds(t *testing.T) {
	for _, tc := range []struct {
		quorum       float64
		n, q         uint32
		run, request uint32
	}{
		{0.5, 1, 1, 25, 50}, // a lone caller: the whole rule
		{0.5, 2, 2, 13, 25},
		{0.5, 3, 2, 13, 25},
		{0.5, 4, 3, 9, 25},
		{0.5, 5, 3, 9, 25},
		{0.5, 10, 6, 5, 25},
		{0.5, 20, 11, 4, 25}, // the floors
		{0.5, 100, 51, 4, 25},
		{1, 5, 5, 5, 25},
		{1, 1, 1, 25, 50},
		{0.01, 5, 1, 25, 50}, // any one member: the whole rule, as a local breaker
		{0.2, 5, 2, 13, 25},
	} {
		s := newTestSet(t, Config{Quorum: tc.quorum})
		q := s.quorumOf(tc.n)
		run, req := s.voteThresholds(q)
		if q != tc.q || run != tc.run || req != tc.request {
			t.Errorf("Quorum %v, %d members: quorum %d, vote after %d in a row or %d in the window; want %d, %d, %d",
				tc.quorum, tc.n, q, run, req, tc.q, tc.run, tc.request)
		}
	}
	// Rules switched off stay off; rules below the floors are kept whole.
	s := newTestSet(t, Config{ConsecutiveFailures: math.MaxUint32, MinRequests: math.MaxUint32})
	if run, req := s.voteThresholds(3); run < math.MaxUint32/3 || req < math.MaxUint32/3 {
		t.Errorf("rules off: vote thresholds %d, %d; want at least %d (never reached)", run, req, uint32(math.MaxUint32/3))
	}
	s = newTestSet(t, Config{ConsecutiveFailures: 3, MinRequests: 10})
	if run, req := s.voteThresholds(3); run != 3 || req != 10 {
		t.Errorf("small rules: vote thresholds %d, %d; want 3, 10 (the rule's own)", run, req)
	}
}

// One member failing among healthy ones opens only its own breaker: its
// trip is its own, its probes take no lease, its failed probe reopens only
// itself, and the fleet's closing leaves it alone. Its vote stays failing
// until its own probes close it.
func TestOwnTroubleOpensOnlyItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4})
		failN(s, key, 1000) // far past ConsecutiveFailures, at any rate
		checkState(t, s, key, StateOpen)
		if l := sh.local(t, key); !l.Own || l.Vote != VoteAbstain {
			t.Fatalf("Snapshot = %+v, want Own, abstaining", l)
		}
		sh.m.Close(key) // another member's probes: not this member's path
		checkState(t, s, key, StateOpen)
		time.Sleep(25 * time.Millisecond)
		if sh.m.Lease(key) {
			t.Fatal("Lease granted to a breaker on its own trouble")
		}
		mustAllow(t, s, key)(errUnavailable) // a local probe, no lease
		time.Sleep(50 * time.Millisecond)
		for range 3 {
			mustAllow(t, s, key)(nil)
		}
		checkState(t, s, key, StateClosed)
		sameList(t, "transitions", sh.list(), []string{
			"k:closed->open for 25ms (own)", "k:open->half-open (own)", "k:half-open->open for 50ms (own)",
			"k:open->half-open (own)", "k:half-open->closed (own)",
		})
		sameList(t, "votes", sh.voteList(), []string{"k:failing", "k:abstain", "k:healthy"})
	})
}

// A member's vote turns failing at its share of the rule (9 in a row with 5
// members), but the fleet opens only when the fleet's view shows a quorum:
// 3 of 5 counting the member itself.
func TestQuorumOpensTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4, Failing: 1})
		failN(s, key, 8)
		if l := sh.local(t, key); l.Vote != VoteHealthy {
			t.Fatal("voting failing after 8 failures, want 9")
		}
		failN(s, key, 1)
		if l := sh.local(t, key); l.Vote != VoteFailing || l.State != StateClosed {
			t.Fatalf("after 9 failures: %+v, want closed and voting failing", l)
		}
		sameList(t, "votes", sh.voteList(), []string{"k:failing"})
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 1}) // 2 of 5
		checkState(t, s, key, StateClosed)
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 2}) // 3 of 5
		checkState(t, s, key, StateOpen)
		sameList(t, "transitions", sh.list(), []string{"k:closed->open for 25ms"})
		if l := sh.local(t, key); l.Own || l.Vote != VoteHealthy {
			t.Fatalf("fleet opening: %+v, want not Own, voting healthy", l)
		}
		// Half-open on the fleet's schedule: only the lease holder probes.
		time.Sleep(25 * time.Millisecond)
		mustReject(t, s, key, StateHalfOpen)
		if !sh.m.Lease(key) {
			t.Fatal("Lease refused")
		}
		for range 3 {
			mustAllow(t, s, key)(nil)
		}
		checkState(t, s, key, StateClosed)
	})
}

// Each member counts once: a member failing at any rate, with only one
// other member failing, stays short of the quorum of 3 in 5, and trips on
// its own.
func TestVotesWeighedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4, Failing: 1})
		failN(s, key, 24)
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 1})
		checkState(t, s, key, StateClosed)
		failN(s, key, 1)
		sameList(t, "transitions", sh.list(), []string{"k:closed->open for 25ms (own)"})
	})
}

// A member whose own rule trips while its view already shows the quorum
// opens the fleet: the rule and the quorum both hold.
func TestOwnTripWithQuorumOpensTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4, Failing: 2})
		failN(s, key, 8)
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 2}) // the member is not failing yet: 2 of 5
		checkState(t, s, key, StateClosed)
		failN(s, key, 17)
		sameList(t, "transitions", sh.list(), []string{"k:closed->open for 25ms"})
	})
}

// A lone caller is its own quorum: its rule opens the fleet.
func TestLoneCallerOpensTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{})
		failN(s, key, 24)
		checkState(t, s, key, StateClosed)
		failN(s, key, 1)
		sameList(t, "transitions", sh.list(), []string{"k:closed->open for 25ms"})
		sameList(t, "votes", sh.voteList(), []string{}) // the vote and the rule turned together
	})
}

// Without a view of the fleet (none yet, expired, or degraded) a trip is
// the member's own: it cannot know it is alone.
func TestNoViewNoFleetOpening(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			view func(s *Set, sh *recShared)
		}{
			{"no view", func(*Set, *recShared) {}},
			{"expired", func(_ *Set, sh *recShared) {
				sh.m.SetFleet("k", Fleet{})
				time.Sleep(time.Second) // one bucket of the default Window
			}},
			{"degraded", func(_ *Set, sh *recShared) {
				sh.m.SetFleet("k", Fleet{})
				sh.m.SetDegraded(true)
				sh.m.SetFleet("k", Fleet{}) // ignored while degraded
			}},
		} {
			s, sh := newSharedSet(t, Config{})
			attempt(s, "k", nil)
			tc.view(s, sh)
			trip(t, s, "k")
			if got := sh.list(); len(got) != 1 || !strings.HasSuffix(got[0], "(own)") {
				t.Errorf("%s: transitions %q, want one opening of its own", tc.name, got)
			}
		}
	})
}

// The quorum is configurable: 1 waits for every member; a value below 1/n
// lets any one member's rule open the fleet.
func TestQuorumConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{Quorum: 1}, key, Fleet{Members: 4, Failing: 3})
		failN(s, key, 5) // every member's share: 25/5
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 3})
		checkState(t, s, key, StateClosed)
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 4})
		checkState(t, s, key, StateOpen)

		s, sh = member(t, Config{Quorum: 0.1}, key, Fleet{Members: 4})
		failN(s, key, 25)
		sameList(t, "transitions", sh.list(), []string{"k:closed->open for 25ms"})
	})
}

// The window part of the vote: 25 outcomes with 70% failing, none of them
// 9 in a row.
func TestWindowVote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4, Failing: 2}) // one success counted
		for i := range 23 {                                              // 16 failures, 7 successes
			if i%3 == 2 {
				attempt(s, key, nil)
			} else {
				attempt(s, key, errUnavailable)
			}
		}
		if l := sh.local(t, key); l.Vote != VoteHealthy {
			t.Fatal("voting failing with 24 outcomes in the window")
		}
		attempt(s, key, errUnavailable) // 17 of 25 failed: 68%
		if l := sh.local(t, key); l.Vote != VoteHealthy {
			t.Fatal("voting failing at 68%")
		}
		attempt(s, key, errUnavailable) // 18 of 26: 69%
		attempt(s, key, errUnavailable) // 19 of 27: 70.4%
		if l := sh.local(t, key); l.Vote != VoteFailing {
			t.Fatal("not voting failing at 70% of 27")
		}
		sh.m.SetFleet(key, Fleet{Members: 4, Failing: 2})
		checkState(t, s, key, StateOpen)
	})
}

// The fleet's opening reaches a member on its own trouble without taking it
// onto the fleet's schedule: it stays open at least as long, probes without
// a lease, and the fleet's closing does not close it.
func TestFleetOpeningKeepsOwnTrouble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 4})
		trip(t, s, key)
		sh.m.Open(key, 80*time.Millisecond)
		sh.m.Close(key)
		mustReject(t, s, key, StateOpen)
		time.Sleep(80 * time.Millisecond)
		mustAllow(t, s, key)(nil) // no lease needed
		if l := sh.local(t, key); !l.Own || l.Vote != VoteAbstain {
			t.Fatalf("%+v, want still Own, abstaining", l)
		}
		// Half-open, reopened on the fleet's word: still its own.
		sh.m.Open(key, 100*time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		mustAllow(t, s, key)(nil)
		mustAllow(t, s, key)(nil)
		mustAllow(t, s, key)(nil)
		checkState(t, s, key, StateClosed)
		if l := sh.local(t, key); l.Own || l.Vote != VoteHealthy {
			t.Fatalf("%+v after its probes closed it, want not Own, voting healthy", l)
		}
	})
}

// A closed member told of the fleet's opening is on the fleet's schedule:
// its probes need the lease, a failed one reopens it for the fleet (the
// Shared publishes it), and the fleet's closing closes it.
func TestFleetOpeningOnTheFleetsWord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := newSharedSet(t, Config{})
		sh.m.Open(key, 2*time.Second) // creates the breaker
		mustReject(t, s, key, StateOpen)
		sh.m.Open(key, time.Second) // earlier end: no change
		time.Sleep(2 * time.Second)
		mustReject(t, s, key, StateHalfOpen)
		if !sh.m.Lease(key) {
			t.Fatal("Lease refused")
		}
		mustAllow(t, s, key)(errUnavailable)
		sh.m.Close(key)
		checkState(t, s, key, StateClosed)
		attempt(s, key, nil)
		sameList(t, "transitions", sh.list(), []string{
			"k:closed->open for 2s (fleet)", "k:open->half-open", "k:half-open->open for 50ms",
			"k:open->half-open (fleet)", "k:half-open->closed (fleet)",
		})
	})
}

// Without the lease a half-open breaker on the fleet's schedule admits
// nothing; with it, the HalfOpenProbes of a local one; degraded, it probes
// locally.
func TestSharedProbeLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{})
		trip(t, s, key) // a lone caller: the fleet's opening
		time.Sleep(5 * time.Second)
		mustReject(t, s, key, StateHalfOpen)
		checkState(t, s, key, StateHalfOpen)
		if sh.m.Lease("other") {
			t.Fatal("Lease of an unknown key granted")
		}
		if !sh.m.Lease(key) {
			t.Fatal("Lease refused")
		}
		mustAllow(t, s, key)(nil) // the first probe goes alone
		var dones []func(error)
		for range 2 {
			dones = append(dones, mustAllow(t, s, key))
		}
		mustReject(t, s, key, StateHalfOpen)
		dones[0](errUnavailable) // reopens; the lease goes with the half-open state
		dones[1](nil)
		checkState(t, s, key, StateOpen)
		time.Sleep(5 * time.Second)
		mustReject(t, s, key, StateHalfOpen)
		sh.m.SetDegraded(true)
		for range 3 {
			mustAllow(t, s, key)(nil)
		}
		checkState(t, s, key, StateClosed)
		if l := sh.local(t, key); l.Leased {
			t.Fatal("closed breaker still leased")
		}
	})
}

// Snapshot counts every Allow, admitted or refused: the Shared's sign that
// the member called the key.
func TestSnapshotCountsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{OpenTimeout: time.Hour}, key, Fleet{})
		trip(t, s, key) // 25 more
		mustReject(t, s, key, StateOpen)
		if l := sh.local(t, key); l.Calls != 27 {
			t.Fatalf("Calls = %d, want 27", l.Calls)
		}
	})
}

// A vote turns failing with the rule's share and back at the next success.
func TestVotedTellsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "k"
		s, sh := member(t, Config{}, key, Fleet{Members: 1}) // 2 members: 13 in a row
		for range 30 {                                       // the window's share stays below 70%
			attempt(s, key, nil)
		}
		failN(s, key, 12)
		attempt(s, key, nil)
		failN(s, key, 13)
		failN(s, key, 3) // no news
		attempt(s, key, nil)
		attempt(s, key, nil)
		sameList(t, "votes", sh.voteList(), []string{"k:failing", "k:healthy"})
	})
}

func TestVoteString(t *testing.T) {
	for v, want := range map[Vote]string{VoteHealthy: "healthy", VoteFailing: "failing", VoteAbstain: "abstain", 7: "Vote(7)"} {
		if got := v.String(); got != want {
			t.Errorf("Vote(%d).String() = %q, want %q", int8(v), got, want)
		}
	}
}
