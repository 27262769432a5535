package endpoint

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	hookq "github.com/grpc-resilience/resilience/internal/hooks"
	"github.com/grpc-resilience/resilience/internal/window"
)

// detector is the ejection logic of one channel, free of gRPC: it is fed
// outcomes per endpoint and reads time.Now, so tests and the simulation
// drive it directly (in a testing/synctest bubble for time). Ejections end
// lazily: an endpoint whose ejection time is over returns to service at the
// next outcome, pick or sweep that notices it. No timer or goroutine runs.
type detector struct {
	target string
	base   time.Time                // time 0 of the ns offsets below
	events *hookq.Queue[ejectEvent] // for cfg.OnEject, delivered outside mu

	mu       sync.Mutex
	cfg      Config // every default filled in
	width    int64  // bucket width in ns: cfg.Window / buckets
	eps      map[*epStats]struct{}
	nEjected int
}

// ejectEvent is an ejection or a return, for the OnEject in force when it
// happened.
type ejectEvent struct {
	hook    func(target, addr string, ejected bool)
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
	win           window.Window
	consecutive   int
	ejections     int   // the multiplier of the ejection time
	backInService int64 // when the last ejection ended (ns), or -1
}

func newDetector(target string, cfg Config) *detector {
	cfg = cfg.withDefaults()
	d := &detector{
		target: target,
		base:   time.Now(),
		cfg:    cfg,
		width:  int64(cfg.Window / buckets),
		eps:    make(map[*epStats]struct{}),
	}
	d.events = hookq.New(func(ev ejectEvent) { ev.hook(d.target, ev.addr, ev.ejected) })
	return d
}

// elapsed returns the time in ns since d.base, on the monotonic clock.
func (d *detector) elapsed() int64 { return int64(time.Since(d.base)) }

// reconfigure applies a new configuration (every default filled in). A new
// Window restarts every endpoint's window and run.
func (d *detector) reconfigure(cfg Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg.Window != d.cfg.Window {
		d.width = int64(cfg.Window / buckets)
		t := d.elapsed()
		for e := range d.eps {
			e.win.SetWidth(d.width, t)
			e.consecutive = 0
		}
	}
	d.cfg = cfg
}

// add starts tracking an endpoint.
func (d *detector) add(addr string) *epStats {
	e := &epStats{addr: addr, backInService: -1}
	d.mu.Lock()
	e.win = window.New(buckets, d.width, d.elapsed())
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
	e.win.Add(t, failure)
	if failure {
		e.consecutive++
		if d.tripsLocked(e) && d.nEjected < d.maxEjectedLocked() {
			d.ejectLocked(e, t)
			ejected = true
		}
	} else {
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
	succ, fail := e.win.Counts()
	total := int(succ) + int(fail)
	return total >= d.cfg.MinRequests && float64(fail) >= d.cfg.FailureRatio*float64(total)
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
	e.resetCounts(t)
	d.queueLocked(e.addr, true)
}

// returnLocked ends e's ejection at time t.
func (d *detector) returnLocked(e *epStats, t int64) {
	e.until.Store(0)
	e.backInService = t
	d.nEjected--
	e.resetCounts(t)
	d.queueLocked(e.addr, false)
}

func (d *detector) queueLocked(addr string, ejected bool) {
	if d.cfg.OnEject != nil {
		d.events.Push(ejectEvent{d.cfg.OnEject, addr, ejected})
	}
}

// unlockAndDeliver releases d.mu, then hands the queued events to OnEject
// in order: never concurrently with itself and never under d.mu.
func (d *detector) unlockAndDeliver() {
	d.mu.Unlock()
	d.events.Deliver()
}

// resetCounts empties e's window and run, as of time t.
func (e *epStats) resetCounts(t int64) {
	e.win.Reset(t)
	e.consecutive = 0
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
