package breaker

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recShared is a Shared that records what the Set tells it; the tests play
// the fleet through the Member it was handed.
type recShared struct {
	m   *Member
	mu  sync.Mutex
	got []string
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
	r.got = append(r.got, s)
}

func (r *recShared) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func newSharedSet(t *testing.T, c Config) (*Set, *recShared) {
	t.Helper()
	sh := &recShared{}
	c.Shared = sh
	s := newTestSet(t, c)
	sh.m.SetDegraded(false)
	return s, sh
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

// The fleet's run adds to the local one: 20 failures elsewhere and 5 here
// make the 25 of the consecutive rule.
func TestSharedFleetRunTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := newSharedSet(t, Config{})
		const key = "k"
		attempt(s, key, nil)
		sh.m.SetFleet(key, Fleet{Run: 20})
		for range 4 {
			attempt(s, key, errUnavailable)
		}
		checkState(t, s, key, StateClosed)
		attempt(s, key, errUnavailable)
		checkState(t, s, key, StateOpen)
		if got, want := sh.list(), []string{"k:closed->open for 25ms"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
		l := sh.m.Snapshot(nil)
		if len(l) != 1 || l[0].Successes != 1 || l[0].Failures != 5 {
			t.Fatalf("Snapshot = %+v", l)
		}
	})
}

// A success elsewhere restarts the local run; SetFleet alone trips when the
// fleet's counts make the rule hold, with no local failure.
func TestSharedSetFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := newSharedSet(t, Config{})
		const key = "k"
		for range 10 {
			attempt(s, key, errUnavailable)
		}
		sh.m.SetFleet(key, Fleet{Run: 14, ResetRun: true})
		if l := sh.m.Snapshot(nil); l[0].Run != 0 {
			t.Fatalf("Run after ResetRun = %d", l[0].Run)
		}
		attempt(s, key, errUnavailable)
		checkState(t, s, key, StateClosed) // 1 + 14 < 25
		sh.m.SetFleet(key, Fleet{Successes: 10, Failures: 60})
		checkState(t, s, key, StateOpen) // window: 71 of 81 failed
		sh.m.SetFleet("unknown", Fleet{Run: 100})
		if s.Len() != 1 {
			t.Fatalf("SetFleet created a key")
		}
	})
}

func TestSharedOpenAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := newSharedSet(t, Config{})
		const key = "k"
		sh.m.Open(key, 2*time.Second) // creates the breaker
		mustReject(t, s, key, StateOpen)
		sh.m.Open(key, time.Second) // earlier end: no change
		time.Sleep(1500 * time.Millisecond)
		mustReject(t, s, key, StateOpen)
		sh.m.Close(key)
		checkState(t, s, key, StateClosed)
		attempt(s, key, nil)
		want := []string{"k:closed->open for 2s (fleet)", "k:open->half-open (fleet)", "k:half-open->closed (fleet)"}
		if got := sh.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})
}

// Without the lease a half-open breaker admits nothing; with it, the
// HalfOpenProbes of a local one; degraded, it probes locally.
func TestSharedProbeLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := newSharedSet(t, Config{})
		const key = "k"
		trip(t, s, key)
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
		if l := sh.m.Snapshot(nil); l[0].Leased {
			t.Fatal("closed breaker still leased")
		}
	})
}

// Degraded, the fleet's counts are dropped and ignored.
func TestSharedDegradedIgnoresFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, sh := newSharedSet(t, Config{})
		const key = "k"
		attempt(s, key, nil)
		sh.m.SetFleet(key, Fleet{Run: 24})
		sh.m.SetDegraded(true)
		attempt(s, key, errUnavailable)
		checkState(t, s, key, StateClosed)
		sh.m.SetFleet(key, Fleet{Run: 24}) // ignored while degraded
		sh.m.SetDegraded(false)
		attempt(s, key, errUnavailable)
		checkState(t, s, key, StateClosed)
	})
}
