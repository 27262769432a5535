package hooks

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDeliversInOrder(t *testing.T) {
	var got []int
	q := New(func(e int) { got = append(got, e) })
	q.Deliver() // nothing queued
	for i := range 5 {
		q.Push(i)
	}
	q.Deliver()
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	q.Deliver()
	if len(got) != 5 {
		t.Fatalf("delivered again: %v", got)
	}
}

// Events pushed by the hook itself are delivered after it returns, by the
// same Deliver; the hook may push while it runs without deadlock.
func TestHookMayPush(t *testing.T) {
	var got []string
	var q *Queue[string]
	q = New(func(e string) {
		got = append(got, "start "+e)
		if e == "a" {
			q.Push("b")
			q.Deliver() // another delivery in progress: leaves b to it
		}
		got = append(got, "end "+e)
	})
	q.Push("a")
	q.Deliver()
	if want := []string{"start a", "end a", "start b", "end b"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestPanicKeepsLaterEvents(t *testing.T) {
	var got []int
	q := New(func(e int) {
		if e == 1 {
			panic("boom")
		}
		got = append(got, e)
	})
	for i := range 4 {
		q.Push(i)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the hook's panic did not reach the deliverer")
			}
		}()
		q.Deliver()
	}()
	if !slices.Equal(got, []int{0}) {
		t.Fatalf("delivered before the panic: %v, want [0]", got)
	}
	q.Deliver() // the events behind the one that panicked
	if !slices.Equal(got, []int{0, 2, 3}) {
		t.Fatalf("delivered %v, want [0 2 3]", got)
	}
	q.Push(4)
	q.Deliver()
	if !slices.Equal(got, []int{0, 2, 3, 4}) {
		t.Fatalf("delivered %v, want [0 2 3 4]", got)
	}
}

// TestConcurrent pushes from many goroutines (run with -race): every event
// is delivered exactly once, each goroutine's in its own order, and the
// hook never runs concurrently with itself.
func TestConcurrent(t *testing.T) {
	const workers, each = 8, 2000
	var running atomic.Int32
	var mu sync.Mutex
	last := make(map[int]int)
	var bad []string
	total := 0
	q := New(func(e [2]int) {
		if running.Add(1) != 1 {
			bad = append(bad, "concurrent delivery")
		}
		w, i := e[0], e[1]
		mu.Lock()
		if prev, ok := last[w]; (ok && prev != i-1) || (!ok && i != 0) {
			bad = append(bad, fmt.Sprintf("worker %d: %d after %d", w, i, prev))
		}
		last[w] = i
		total++
		mu.Unlock()
		running.Add(-1)
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				q.Push([2]int{w, i})
				q.Deliver()
			}
		})
	}
	wg.Wait()
	q.Deliver()
	if len(bad) > 0 {
		t.Fatalf("%d problems, e.g. %v", len(bad), bad[:min(5, len(bad))])
	}
	if total != workers*each {
		t.Fatalf("delivered %d events, want %d", total, workers*each)
	}
}

func TestDeliverEmptyAllocatesNothing(t *testing.T) {
	q := New(func(int) {})
	if n := testing.AllocsPerRun(1000, q.Deliver); n != 0 {
		t.Errorf("Deliver with nothing queued: %v allocs, want 0", n)
	}
}
