package breaker

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// refBreaker is the state machine as the package documentation states it,
// written as plainly as possible: the reference the Set is checked against.
// Its window is a list of every outcome counted since the breaker last
// closed, filtered by bucket when the rule is read; its open periods draw
// from a copy of the Set's random source.
type refBreaker struct {
	c         Config // defaults filled in
	rand      func() float64
	opens     int // openings since the breaker last closed
	state     State
	gen       int
	openUntil time.Duration
	consec    int
	hist      []refOutcome
	probes    int // half-open: admitted this generation, less those excluded
	ok        int // half-open: successes this generation
	trans     []string
}

type refOutcome struct {
	bucket int64
	failed bool
}

func (m *refBreaker) period() time.Duration { return m.c.Window / time.Duration(m.c.Buckets) }

func (m *refBreaker) to(st State, now time.Duration) {
	m.trans = append(m.trans, fmt.Sprintf("%v->%v", m.state, st))
	m.state = st
	m.gen++
	m.consec, m.probes, m.ok = 0, 0, 0
	switch st {
	case StateOpen:
		m.opens++
		m.openUntil = now + m.openPeriod()
	case StateClosed:
		m.hist = nil
		m.opens = 0
	}
}

// openPeriod is d(opens) of Config.OpenTimeout's documentation, shortened
// by the jitter.
func (m *refBreaker) openPeriod() time.Duration {
	c := m.c
	d := float64(c.OpenTimeout) * math.Pow(c.OpenMultiplier, float64(m.opens-1))
	d = min(d, float64(max(c.MaxOpenTimeout, c.OpenTimeout)))
	return time.Duration(d * (1 - c.OpenJitter*m.rand()))
}

func (m *refBreaker) ready(now time.Duration) {
	if m.state == StateOpen {
		m.to(StateHalfOpen, now)
	}
}

func (m *refBreaker) allow(now time.Duration) (admitted bool, refused State) {
	if m.state == StateOpen {
		if now < m.openUntil {
			return false, StateOpen
		}
		m.to(StateHalfOpen, now)
	}
	if m.state == StateHalfOpen {
		slots := 1 // the first probe goes alone
		if m.ok > 0 {
			slots = int(m.c.HalfOpenProbes)
		}
		if m.probes >= slots {
			return false, StateHalfOpen
		}
		m.probes++
	}
	return true, 0
}

func (m *refBreaker) stateAt(now time.Duration) State {
	if m.state == StateOpen && now >= m.openUntil {
		m.to(StateHalfOpen, now)
	}
	return m.state
}

func (m *refBreaker) done(gen int, k refKind, now time.Duration) {
	if gen != m.gen {
		return // stale: admitted before the last transition
	}
	switch m.state {
	case StateClosed:
		if k == refExcluded {
			return
		}
		failed := k == refFailure
		m.hist = append(m.hist, refOutcome{int64(now / m.period()), failed})
		if !failed {
			m.consec = 0
			return
		}
		m.consec++
		if m.consec >= int(m.c.ConsecutiveFailures) || m.windowHolds(now) {
			m.to(StateOpen, now)
		}
	case StateHalfOpen:
		switch k {
		case refExcluded:
			m.probes--
		case refFailure:
			m.to(StateOpen, now)
		default:
			if m.ok++; m.ok >= int(m.c.HalfOpenProbes) {
				m.to(StateClosed, now)
			}
		}
	}
}

func (m *refBreaker) windowHolds(now time.Duration) bool {
	cur := int64(now / m.period())
	var total, failed int
	for _, o := range m.hist {
		if o.bucket > cur-int64(m.c.Buckets) {
			total++
			if o.failed {
				failed++
			}
		}
	}
	return total >= int(m.c.MinRequests) && float64(failed)/float64(total) >= m.c.FailureRatio
}

type refKind int

const (
	refSuccess refKind = iota
	refFailure
	refExcluded
	refRequestFault // an answer: counts as a success
)

var refErrs = [...]error{refSuccess: nil, refFailure: errUnavailable, refExcluded: context.Canceled, refRequestFault: errNotFound}

// pendingAttempt is an admitted attempt whose done is not called yet.
type pendingAttempt struct {
	done    func(error)
	gen     int   // the reference's generation when admitted
	probe   bool  // admitted as a probe (half-open)
	realGen int64 // the Set's generation when admitted
}

// propertyConfig keeps every rule and the open period's growth within
// reach of a few hundred steps.
var propertyConfig = Config{
	Window: time.Second, Buckets: 4, MinRequests: 4, FailureRatio: 0.5,
	ConsecutiveFailures: 3, HalfOpenProbes: 2,
	OpenTimeout: 250 * time.Millisecond, MaxOpenTimeout: time.Second, OpenMultiplier: 2, OpenJitter: 0.5,
}

// runProperty drives a Set and the reference with the operations ops
// decodes to, in a synctest bubble, and fails at the first difference or
// broken invariant.
func runProperty(t *testing.T, ops []byte) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		c := propertyConfig
		c.OnStateChange = func(_ string, from, to State) { got = append(got, fmt.Sprintf("%v->%v", from, to)) }
		seed := uint64(len(ops))
		for _, b := range ops {
			seed = seed*31 + uint64(b)
		}
		c.Rand = rand.New(rand.NewPCG(seed, 1)).Float64
		s := newTestSet(t, c)
		m := &refBreaker{c: c.withDefaults(), rand: rand.New(rand.NewPCG(seed, 1)).Float64}
		start := time.Now()
		const key = "k"
		var pending []pendingAttempt
		sleeps := []time.Duration{time.Nanosecond, 50 * time.Millisecond, 125 * time.Millisecond, 249 * time.Millisecond, 250 * time.Millisecond, time.Second, 3 * time.Second}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%5, int(ops[i+1])
			now := time.Since(start)
			switch op {
			case 0: // Allow
				stateBefore := m.stateAt(now) // the reference's view, as Allow will find it
				done, err := s.Allow(key)
				admitted, refused := m.allow(now)
				if (err == nil) != admitted {
					t.Fatalf("step %d at %v: Allow admitted=%v, reference %v (refusing as %v)", i/2, now, err == nil, admitted, refused)
				}
				if err != nil {
					if oe := err.(*OpenError); oe.State != refused {
						t.Fatalf("step %d: refused as %v, reference as %v", i/2, oe.State, refused)
					}
					continue
				}
				if stateBefore == StateOpen && now < m.openUntil {
					t.Fatalf("step %d: admitted while open", i/2)
				}
				pending = append(pending, pendingAttempt{done: done, gen: m.gen, probe: m.state == StateHalfOpen, realGen: int64(s.lookup(key).genLocked())})
			case 1: // an attempt ends
				if len(pending) == 0 {
					continue
				}
				j := arg % len(pending)
				p := pending[j]
				pending = append(pending[:j], pending[j+1:]...)
				k := refKind(arg / 64 % 4)
				e := s.lookup(key)
				stateBefore, genBefore := e.stateLocked(), e.genLocked()
				p.done(refErrs[k])
				m.done(p.gen, k, now)
				if int64(genBefore) != p.realGen && (e.stateLocked() != stateBefore || e.genLocked() != genBefore) {
					t.Fatalf("step %d: a stale outcome (%v) moved the breaker from %v to %v", i/2, refErrs[k], stateBefore, e.stateLocked())
				}
			case 2: // time passes
				time.Sleep(sleeps[arg%len(sleeps)])
			case 3: // State
				if st, want := s.State(key), m.stateAt(now); st != want {
					t.Fatalf("step %d at %v: State = %v, reference %v", i/2, now, st, want)
				}
			case 4: // a connection became ready
				s.Ready(key)
				m.ready(now)
			}
			// Invariants, whatever the reference says.
			if m.state == StateHalfOpen {
				inFlight := 0
				for _, p := range pending {
					if p.probe && p.gen == m.gen {
						inFlight++
					}
				}
				if inFlight > int(c.HalfOpenProbes) {
					t.Fatalf("step %d: %d probes in flight, HalfOpenProbes %d", i/2, inFlight, c.HalfOpenProbes)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(m.trans) {
				t.Fatalf("step %d: transitions %v, reference %v", i/2, got, m.trans)
			}
		}
		for _, p := range pending {
			p.done(nil)
		}
	})
}

func (e *entry) stateLocked() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

func (e *entry) genLocked() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// TestStateMachineMatchesReference runs 300 random sequences of 400
// operations.
func TestStateMachineMatchesReference(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 0xb4ea))
		ops := make([]byte, 800)
		for i := 0; i < len(ops); i += 8 {
			binary.LittleEndian.PutUint64(ops[i:], rng.Uint64())
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runProperty(t, ops) })
		if t.Failed() {
			return
		}
	}
}

// FuzzStateMachine is the same check on the fuzzer's sequences:
// go test -fuzz FuzzStateMachine ./breaker/
func FuzzStateMachine(f *testing.F) {
	f.Add([]byte{0, 0, 1, 64, 0, 0, 1, 64, 0, 0, 1, 64, 2, 4, 0, 0, 0, 0, 1, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 64, 1, 64, 1, 64, 2, 5, 0, 0, 0, 0, 0, 0, 1, 128, 1, 0, 1, 64})
	f.Fuzz(runProperty)
}
