package clock

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeFiresInOrderOnAdvance(t *testing.T) {
	start := time.Unix(1000, 0)
	f := NewFake(start)
	a := f.NewTimer(2 * time.Second)
	b := f.NewTimer(time.Second)
	f.Advance(time.Second)
	select {
	case got := <-b.C():
		if want := start.Add(time.Second); !got.Equal(want) {
			t.Errorf("b fired at %v, want %v", got, want)
		}
	default:
		t.Fatal("1s timer did not fire after Advance(1s)")
	}
	select {
	case <-a.C():
		t.Fatal("2s timer fired after Advance(1s)")
	default:
	}
	if got := f.Pending(); len(got) != 1 || got[0] != 2*time.Second {
		t.Errorf("Pending() = %v, want [2s]", got)
	}
	if !a.Stop() {
		t.Error("Stop() of a pending timer = false, want true")
	}
	if a.Stop() {
		t.Error("second Stop() = true, want false")
	}
}

func TestFakeWaitForTimers(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	go func() { f.NewTimer(5 * time.Millisecond) }()
	got, ok := f.WaitForTimers(nil, 1)
	if !ok || len(got) != 1 || got[0] != 5*time.Millisecond {
		t.Fatalf("WaitForTimers = %v, %v; want [5ms], true", got, ok)
	}
	done := make(chan struct{})
	close(done)
	if _, ok := f.WaitForTimers(done, 2); ok {
		t.Error("WaitForTimers with closed done and too few timers reported true")
	}
}

func TestFakeZeroDurationFiresAtOnce(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	select {
	case <-f.NewTimer(0).C():
	default:
		t.Fatal("zero-duration timer did not fire at once")
	}
}

func TestReal(t *testing.T) {
	tm := Real.NewTimer(time.Hour)
	if !tm.Stop() {
		t.Error("Stop() of a fresh real timer = false")
	}
	if Real.Now().IsZero() {
		t.Error("Real.Now() is zero")
	}
}

func TestFakeAfterFunc(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	called := 0
	stopped := f.AfterFunc(time.Second, func() { called += 10 })
	f.AfterFunc(time.Second, func() { called++ })
	if !stopped.Stop() {
		t.Fatal("Stop() of a pending AfterFunc = false")
	}
	f.Advance(999 * time.Millisecond)
	if called != 0 {
		t.Fatalf("called = %d before the deadline", called)
	}
	f.Advance(time.Millisecond)
	if called != 1 {
		t.Errorf("called = %d after the deadline, want 1 (the stopped one not at all)", called)
	}
	if tm := Real.AfterFunc(time.Hour, func() {}); !tm.Stop() {
		t.Error("Stop() of a fresh real AfterFunc = false")
	}
}

func TestWaitFor(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	got := make(chan bool, 1)
	go func() {
		got <- f.WaitFor(done, func(p []time.Duration) bool { return len(p) == 1 && p[0] == time.Second })
	}()
	f.NewTimer(time.Minute).Stop()
	f.NewTimer(time.Second)
	if !<-got {
		t.Fatal("WaitFor did not see the 1s timer")
	}
	close(done)
	if f.WaitFor(done, func([]time.Duration) bool { return false }) {
		t.Fatal("WaitFor reported true after done closed")
	}
}
