package interceptors

import (
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/clock"
)

// targetState is what a Middleware keeps per target.
type targetState struct {
	budget *budget.Budget // nil when budgets are off
	// troubled counts down the successful calls since the target last
	// failed: while it is above zero, first attempts ask for the trailer
	// to read server pushback from. A healthy target's calls skip it,
	// which saves grpc-go copying every trailer.
	troubled atomic.Int32
}

// troubledCalls is how many successful attempts after a failure keep
// first attempts reading trailers.
const troubledCalls = 100

// failed records a failed attempt.
func (ts *targetState) failed() { ts.troubled.Store(troubledCalls) }

// succeeded records a successful attempt.
func (ts *targetState) succeeded() {
	if v := ts.troubled.Load(); v > 0 {
		ts.troubled.CompareAndSwap(v, v-1)
	}
}

// wantsTrailer reports whether attempt n should read the trailer for
// server pushback: retries always do, first attempts while the target is
// troubled.
func (ts *targetState) wantsTrailer(n int) bool {
	return n > 1 || ts == nil || ts.troubled.Load() > 0
}

// targetState returns the state of target, creating it on first use.
func (m *Middleware) targetState(target string) *targetState {
	return loadOrCreate(&m.mu, &m.targets, target, func() *targetState {
		ts := &targetState{}
		if m.cfg.budget != nil {
			// The config was validated by New.
			ts.budget, _ = budget.New(*m.cfg.budget)
		}
		if m.breakers != nil && !m.cfg.breakerMethod {
			// Give the breaker state gauge its first point: closed.
			m.tel.breakerState(target, breakerClosed)
		}
		return ts
	})
}

// loadOrCreate returns (*mp)[key], creating it with create, under mu's
// write lock, on first use; lookups of existing keys take the read lock
// only.
func loadOrCreate[V any](mu *sync.RWMutex, mp *map[string]*V, key string, create func() *V) *V {
	mu.RLock()
	v := (*mp)[key]
	mu.RUnlock()
	if v != nil {
		return v
	}
	mu.Lock()
	defer mu.Unlock()
	if v = (*mp)[key]; v == nil {
		if *mp == nil {
			*mp = make(map[string]*V)
		}
		v = create()
		(*mp)[key] = v
	}
	return v
}

// probes shortens reconnection while calls wait for a connection: for each
// connection with waiting calls, one goroutine resets grpc-go's reconnect
// backoff every interval, so that a restarted server is found within about
// an interval instead of behind a backoff of a second or more. The
// goroutine exits when the last waiting call leaves.
type probes struct {
	interval time.Duration
	clock    clock.Clock
	mu       sync.Mutex
	conns    map[*grpc.ClientConn]*probe
}

type probe struct {
	waiters int
	stop    chan struct{}
	done    chan struct{}
}

// acquire registers a call waiting for cc to be ready. The returned
// function must be called once when it stops waiting.
func (p *probes) acquire(cc *grpc.ClientConn) func() {
	if p.interval <= 0 || cc == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.conns[cc]
	if pr == nil {
		pr = &probe{stop: make(chan struct{}), done: make(chan struct{})}
		if p.conns == nil {
			p.conns = make(map[*grpc.ClientConn]*probe)
		}
		p.conns[cc] = pr
		kick(cc)
		go p.run(cc, pr)
	}
	pr.waiters++
	return func() { p.release(cc, pr) }
}

func (p *probes) release(cc *grpc.ClientConn, pr *probe) {
	p.mu.Lock()
	pr.waiters--
	last := pr.waiters == 0
	if last {
		delete(p.conns, cc)
		close(pr.stop)
	}
	p.mu.Unlock()
	if last {
		<-pr.done
	}
}

func (p *probes) run(cc *grpc.ClientConn, pr *probe) {
	defer close(pr.done)
	for {
		t := p.clock.NewTimer(p.interval)
		select {
		case <-pr.stop:
			t.Stop()
			return
		case <-t.C():
		}
		kick(cc)
	}
}

// kick makes cc try to connect now if it is not connected or connecting:
// it cuts grpc-go's reconnect backoff short and asks the balancer to
// connect subchannels that went idle after their backoff.
func kick(cc *grpc.ClientConn) {
	switch cc.GetState() {
	case connectivity.Idle:
		cc.Connect()
	case connectivity.TransientFailure:
		cc.ResetConnectBackoff()
		cc.Connect()
	}
}
