package limiter

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// changes records the OnLimitChange calls of a limiter.
type changes struct {
	mu    sync.Mutex
	calls [][2]int
	// running counts the hook calls in progress, most the highest seen.
	running, most int
	l             *Limiter
	// block, if not nil, is waited on by the first call.
	block chan struct{}
}

func (c *changes) hook(from, to int) {
	c.mu.Lock()
	c.running++
	c.most = max(c.most, c.running)
	first := len(c.calls) == 0
	c.calls = append(c.calls, [2]int{from, to})
	block := c.block
	c.mu.Unlock()
	// The limiter's lock is not held: reading it does not deadlock.
	if got := c.l.Limit(); got < 0 {
		panic("negative limit")
	}
	if first && block != nil {
		<-block
	}
	c.mu.Lock()
	c.running--
	c.mu.Unlock()
}

func (c *changes) told() [][2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// learnRoundTrip gives l a 10 ms round trip from answered attempts.
func learnRoundTrip(l *Limiter) {
	for range minSamples {
		p, _ := l.Acquire(context.Background())
		time.Sleep(10 * time.Millisecond)
		p.Done(Answered)
	}
}

// timeOut makes one attempt that times out after a round trip: one 10 %
// cut of the limit.
func timeOut(l *Limiter) {
	p, _ := l.Acquire(context.Background())
	time.Sleep(10 * time.Millisecond)
	p.Done(Overloaded)
}

func TestOnLimitChangeIsToldEveryChangeInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &changes{}
		c.l = mustNew(t, Config{InitialLimit: 100, OnLimitChange: c.hook})
		learnRoundTrip(c.l)
		if got := c.told(); len(got) != 0 {
			t.Fatalf("told %v while the limit stayed at 100", got)
		}
		for range 3 {
			timeOut(c.l)
		}
		// 100 → 90 → 81 → 72.9, as Limit reports it.
		want := [][2]int{{100, 90}, {90, 81}, {81, 72}}
		if got := c.told(); !slices.Equal(got, want) {
			t.Errorf("told %v, want %v", got, want)
		}
	})
}

// A change made while the hook runs is told when it returns, merged with
// the others made meanwhile; the Done that made it does not wait.
func TestOnLimitChangeMergesChangesMadeWhileItRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &changes{block: make(chan struct{})}
		c.l = mustNew(t, Config{InitialLimit: 100, OnLimitChange: c.hook})
		learnRoundTrip(c.l)
		var wg sync.WaitGroup
		wg.Go(func() { timeOut(c.l) }) // tells 100 → 90, and blocks in the hook
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		for range 3 {
			start := time.Now()
			timeOut(c.l)
			if took := time.Since(start); took != 10*time.Millisecond {
				t.Fatalf("a Done took %v beyond the round trip while the hook was busy, want no wait", took-10*time.Millisecond)
			}
		}
		if got := c.told(); len(got) != 1 {
			t.Fatalf("told %v while the first call still runs, want the first change only", got)
		}
		close(c.block)
		wg.Wait()
		// 90 → 81 → 72.9 → 65.6, told as one change.
		want := [][2]int{{100, 90}, {90, 65}}
		if got := c.told(); !slices.Equal(got, want) || c.most != 1 {
			t.Errorf("told %v (%d calls at once at most), want %v, one at a time", got, c.most, want)
		}
		if got := c.l.Limit(); got != 65 {
			t.Errorf("limit %d, want 65", got)
		}
	})
}

func TestOnLimitChangePanicReachesTheCallerAndLaterChangesAreTold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var told [][2]int
		l := mustNew(t, Config{InitialLimit: 100, OnLimitChange: func(from, to int) {
			told = append(told, [2]int{from, to})
			if len(told) == 1 {
				panic("hook failed")
			}
		}})
		learnRoundTrip(l)
		func() {
			defer func() {
				if r := recover(); fmt.Sprint(r) != "hook failed" {
					t.Errorf("recovered %v, want the hook's panic", r)
				}
			}()
			timeOut(l)
		}()
		timeOut(l)
		if want := [][2]int{{100, 90}, {90, 81}}; !slices.Equal(told, want) {
			t.Errorf("told %v, want %v", told, want)
		}
	})
}

func TestOnLimitChangeNeverCalledForABulkhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &changes{}
		c.l = mustNew(t, Config{Fixed: 4, OnLimitChange: c.hook})
		learnRoundTrip(c.l)
		for range 5 {
			timeOut(c.l)
		}
		if got := c.told(); len(got) != 0 || c.l.Limit() != 4 {
			t.Errorf("a bulkhead of 4 told %v, limit %d", got, c.l.Limit())
		}
	})
}
