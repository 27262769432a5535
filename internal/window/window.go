package window

// Window is a rolling count of successes and failures. The zero Window is
// not usable; make one with New.
type Window struct {
	buckets    []bucket
	width      int64 // ns covered by one bucket
	cur        int64 // absolute number (t/width) of the newest bucket
	succ, fail uint32
}

type bucket struct{ succ, fail uint32 }

// New returns an empty Window of n buckets of width ns each, whose newest
// bucket is the one holding now. n and width must be positive.
func New(n int, width, now int64) Window {
	if n <= 0 || width <= 0 {
		panic("window: New needs n > 0 and width > 0") // callers validate their configs
	}
	w := Window{buckets: make([]bucket, n), width: width}
	w.Reset(now)
	return w
}

// Reset empties the window; its newest bucket becomes the one holding now.
func (w *Window) Reset(now int64) {
	clear(w.buckets)
	w.succ, w.fail = 0, 0
	w.cur = now / w.width
}

// SetWidth changes the bucket width and empties the window.
func (w *Window) SetWidth(width, now int64) {
	if width <= 0 {
		panic("window: SetWidth needs width > 0")
	}
	w.width = width
	w.Reset(now)
}

// Add counts one outcome at time now: a failure if failed, else a success.
func (w *Window) Add(now int64, failed bool) {
	w.Advance(now)
	k := &w.buckets[w.cur%int64(len(w.buckets))]
	if failed {
		k.fail++
		w.fail++
	} else {
		k.succ++
		w.succ++
	}
}

// Counts returns the successes and failures in the window as of the last
// Add, Advance or Reset (it does not drop the buckets that have aged out
// since).
func (w *Window) Counts() (succ, fail uint32) { return w.succ, w.fail }

// Advance drops the buckets that have left the window by now.
func (w *Window) Advance(now int64) {
	b := now / w.width
	if b <= w.cur {
		return
	}
	n := int64(len(w.buckets))
	if b-w.cur >= n {
		w.Reset(now)
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
