package endpoint

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// detector is the ejection logic of one channel, free of gRPC: it is fed
// outcomes per endpoint and reads time only from its clock, so tests and the
// simulation drive it directly. Ejections end lazily: an endpoint whose
// ejection time is over returns to service at the next outcome, pick or
// sweep that notices it. No timer or goroutine runs.
type detector struct {
	target string
	now    func() time.Time
	base   time.Time // time 0 of the ns offsets below

	mu         sync.Mutex
	cfg        Config // every default filled in
	width      int64  // bucket width in ns: cfg.Window / buckets
	eps        map[*epStats]struct{}
	nEjected   int
	queue      []ejectEvent // for cfg.OnEject, delivered outside mu
	delivering bool
}

type ejectEvent struct {
	addr    string
	ejected bool
}

// epStats is one endpoint's state in a detector.
type epStats struct {
	addr string
	// until is the end of the current ejection in ns since det.base, 0 while
	// in service. Written under det.mu, read by pickers without it.
	until atomic.Int64

	// Guarded by det.mu.
	removed       bool
	head          int64 // absolute index of the newest bucket
	ok, fail      [buckets]uint32
	okSum         int
	failSum       int
	consecutive   int
	ejections     int   // the multiplier of the ejection time
	backInService int64 // when the last ejection ended (ns), or -1
}

func newDetector(target string, cfg Config) *detector {
	cfg = cfg.withDefaults()
	return &detector{
		target: target,
		now:    cfg.now,
		base:   cfg.now(),
		cfg:    cfg,
		width:  int64(cfg.Window / buckets),
		eps:    make(map[*epStats]struct{}),
	}
}

// elapsed returns the clock's reading in ns since d.base.
func (d *detector) elapsed() int64 { return int64(d.now().Sub(d.base)) }

// reconfigure applies a new configuration (every default filled in). The
// clock stays the first one. A new Window restarts every endpoint's window.
func (d *detector) reconfigure(cfg Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg.Window != d.cfg.Window {
		d.width = int64(cfg.Window / buckets)
		for e := range d.eps {
			e.resetCounts(d.elapsed() / d.width)
		}
	}
	d.cfg = cfg
}

// add starts tracking an endpoint.
func (d *detector) add(addr string) *epStats {
	e := &epStats{addr: addr, backInService: -1}
	d.mu.Lock()
	e.resetCounts(d.elapsed() / d.width)
	d.eps[e] = struct{}{}
	d.mu.Unlock()
	return e
}

// remove stops tracking an endpoint and forgets its state; outcomes still
// reported for it are dropped. An ejected endpoint reports its return.
func (d *detector) remove(e *epStats) {
	d.mu.Lock()
	d.removeLocked(e)
	d.unlockAndDeliver()
}

func (d *detector) removeLocked(e *epStats) {
	if e.removed {
		return
	}
	if e.until.Load() != 0 {
		d.returnLocked(e, 0)
	}
	e.removed = true
	delete(d.eps, e)
}

// close removes every endpoint.
func (d *detector) close() {
	d.mu.Lock()
	for e := range d.eps {
		d.removeLocked(e)
	}
	d.unlockAndDeliver()
}

// sweep returns every endpoint whose ejection time is over to service.
func (d *detector) sweep() {
	d.mu.Lock()
	d.sweepLocked(d.elapsed())
	d.unlockAndDeliver()
}

func (d *detector) sweepLocked(t int64) {
	if d.nEjected == 0 {
		return
	}
	for e := range d.eps {
		if u := e.until.Load(); u != 0 && t >= u {
			d.returnLocked(e, t)
		}
	}
}

// ejected reports whether e is ejected at time t (ns since base); an
// ejection whose time is over counts as ended even before a sweep notices.
func (e *epStats) ejected(t int64) bool {
	u := e.until.Load()
	return u != 0 && t < u
}

// record counts one outcome of e (excluded outcomes are not reported) and
// reports whether it ejected e. Outcomes of an ejected or removed endpoint
// are dropped: an ejected endpoint starts afresh when it returns.
func (d *detector) record(e *epStats, failure bool) (ejected bool) {
	d.mu.Lock()
	if e.removed {
		d.mu.Unlock()
		return false
	}
	t := d.elapsed()
	d.sweepLocked(t)
	if e.until.Load() != 0 {
		d.unlockAndDeliver()
		return false
	}
	slot := e.roll(t / d.width)
	if failure {
		e.fail[slot]++
		e.failSum++
		e.consecutive++
		if d.tripsLocked(e) && d.nEjected < d.maxEjectedLocked() {
			d.ejectLocked(e, t)
			ejected = true
		}
	} else {
		e.ok[slot]++
		e.okSum++
		e.consecutive = 0
	}
	d.unlockAndDeliver()
	return ejected
}

// tripsLocked reports whether either rule holds for e.
func (d *detector) tripsLocked(e *epStats) bool {
	if e.consecutive >= d.cfg.ConsecutiveFailures {
		return true
	}
	total := e.okSum + e.failSum
	return total >= d.cfg.MinRequests && float64(e.failSum) >= d.cfg.FailureRatio*float64(total)
}

// maxEjectedLocked is how many endpoints may be ejected at once: at most
// floor(n x MaxEjectedRatio), at least one when n >= 2, none when n < 2.
func (d *detector) maxEjectedLocked() int {
	n := len(d.eps)
	if n < 2 {
		return 0
	}
	// The small addend keeps products such as 100 x 0.29 from flooring to 28.
	return max(1, int(math.Floor(float64(n)*d.cfg.MaxEjectedRatio+1e-9)))
}

func (d *detector) ejectLocked(e *epStats, t int64) {
	base, limit := d.cfg.BaseEjectionTime, d.cfg.MaxEjectionTime
	if e.backInService >= 0 {
		// One ejection is forgiven per BaseEjectionTime spent in service.
		e.ejections = max(0, e.ejections-int((t-e.backInService)/int64(base)))
	}
	if time.Duration(e.ejections)*base < limit {
		e.ejections++
	}
	e.until.Store(t + int64(min(time.Duration(e.ejections)*base, limit)))
	d.nEjected++
	e.resetCounts(t / d.width)
	d.queueLocked(e.addr, true)
}

// returnLocked ends e's ejection at time t.
func (d *detector) returnLocked(e *epStats, t int64) {
	e.until.Store(0)
	e.backInService = t
	d.nEjected--
	e.resetCounts(t / d.width)
	d.queueLocked(e.addr, false)
}

func (d *detector) queueLocked(addr string, ejected bool) {
	if d.cfg.OnEject != nil {
		d.queue = append(d.queue, ejectEvent{addr, ejected})
	}
}

// unlockAndDeliver releases d.mu after handing queued events to OnEject in
// order. Only one goroutine delivers at a time; events queued meanwhile are
// delivered by it, so the hook never runs concurrently with itself and never
// under d.mu.
func (d *detector) unlockAndDeliver() {
	if d.delivering || len(d.queue) == 0 {
		d.mu.Unlock()
		return
	}
	d.delivering = true
	locked := true
	defer func() { // also when the hook panics
		if !locked {
			d.mu.Lock()
		}
		d.delivering = false
		d.mu.Unlock()
	}()
	for len(d.queue) > 0 {
		q, hook := d.queue, d.cfg.OnEject
		d.queue = nil
		d.mu.Unlock()
		locked = false
		for _, ev := range q {
			if hook != nil {
				hook(d.target, ev.addr, ev.ejected)
			}
		}
		d.mu.Lock()
		locked = true
	}
}

// resetCounts empties e's window and run, with idx as the newest bucket.
func (e *epStats) resetCounts(idx int64) {
	e.ok, e.fail = [buckets]uint32{}, [buckets]uint32{}
	e.okSum, e.failSum, e.consecutive = 0, 0, 0
	e.head = idx
}

// roll moves e's window forward to bucket idx and returns its slot.
func (e *epStats) roll(idx int64) int {
	if idx > e.head {
		if idx-e.head >= buckets {
			// The whole window is stale; the run of failures is not.
			e.ok, e.fail = [buckets]uint32{}, [buckets]uint32{}
			e.okSum, e.failSum = 0, 0
			e.head = idx
		} else {
			for i := e.head + 1; i <= idx; i++ {
				s := i % buckets
				e.okSum -= int(e.ok[s])
				e.failSum -= int(e.fail[s])
				e.ok[s], e.fail[s] = 0, 0
			}
			e.head = idx
		}
	}
	// A clock that went back lands in the newest bucket.
	return int(e.head % buckets)
}

// ejectedAddrs lists the endpoints ejected now, for tests.
func (d *detector) ejectedAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.elapsed()
	var out []string
	for e := range d.eps {
		if e.ejected(t) {
			out = append(out, e.addr)
		}
	}
	return out
}

// size is how many endpoints d tracks, for tests.
func (d *detector) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.eps)
}
