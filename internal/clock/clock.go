package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f once after d, on a goroutine of its own (Real) or
	// on the goroutine that advances the time (Fake). Stop on the
	// returned timer prevents the call if it has not happened.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer the project uses.
type Timer interface {
	// C returns the channel on which the timer delivers its time.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Fake is a manually driven clock for tests. Its time moves only through
// Advance; timers fire when Advance reaches their deadline. Waiters can block
// until a given number of timers are pending, so a test can observe that code
// under test has started to wait, and for how long, without sleeping.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever timers change
}

// NewFake returns a Fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake time reaches Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, when: f.now.Add(d), d: d, c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	f.notifyLocked()
	return t
}

// AfterFunc returns a timer that calls fn when the fake time reaches
// Now()+d; fn runs on the goroutine that calls Advance.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	t := &fakeTimer{f: f, when: f.now.Add(d), d: d, c: make(chan time.Time, 1), fn: fn}
	if d <= 0 {
		f.mu.Unlock()
		fn()
		return t
	}
	f.timers = append(f.timers, t)
	f.notifyLocked()
	f.mu.Unlock()
	return t
}

// Advance moves the fake time forward by d and fires every timer whose
// deadline has been reached, in deadline order. Functions of AfterFunc
// timers run after the clock's lock is released, before Advance returns.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].when.Before(f.timers[j].when) })
	kept := f.timers[:0]
	var fns []func()
	for _, t := range f.timers {
		if !t.when.After(f.now) {
			if t.fn != nil {
				fns = append(fns, t.fn)
			} else {
				t.c <- f.now
			}
			continue
		}
		kept = append(kept, t)
	}
	clear(f.timers[len(kept):])
	f.timers = kept
	f.notifyLocked()
	f.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Pending returns the durations the pending timers were created with, in
// creation order.
func (f *Fake) Pending() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Duration, len(f.timers))
	for i, t := range f.timers {
		out[i] = t.d
	}
	return out
}

// WaitForTimers blocks until at least n timers are pending or done is
// closed, and returns the pending durations. It reports false if done
// closed first.
func (f *Fake) WaitForTimers(done <-chan struct{}, n int) ([]time.Duration, bool) {
	for {
		f.mu.Lock()
		if len(f.timers) >= n {
			out := make([]time.Duration, len(f.timers))
			for i, t := range f.timers {
				out[i] = t.d
			}
			f.mu.Unlock()
			return out, true
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return nil, false
		}
	}
}

// WaitFor blocks until ok, called with the pending durations whenever they
// change, returns true, or until done is closed; it reports whether ok
// returned true.
func (f *Fake) WaitFor(done <-chan struct{}, ok func(pending []time.Duration) bool) bool {
	for {
		f.mu.Lock()
		pending := make([]time.Duration, len(f.timers))
		for i, t := range f.timers {
			pending[i] = t.d
		}
		ch := f.changed
		f.mu.Unlock()
		if ok(pending) {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f    *Fake
	when time.Time
	d    time.Duration
	c    chan time.Time
	fn   func() // set for AfterFunc timers
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	for i, p := range t.f.timers {
		if p == t {
			t.f.timers = append(t.f.timers[:i], t.f.timers[i+1:]...)
			t.f.notifyLocked()
			return true
		}
	}
	return false
}
