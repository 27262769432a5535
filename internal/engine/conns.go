package engine

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// conns watches the connections that calls wait on. For each connection
// with at least one waiting call, one goroutine follows its state: when the
// connection shuts down it ends every wait on it at once, and while calls
// wait for it to be ready it resets grpc-go's reconnect backoff every
// interval, so that a restarted server is found within about an interval
// instead of behind a backoff of a second or more. The goroutine exits when
// the last waiting call leaves: none runs while no call waits.
//
// Each wait of the probe is drawn uniformly from [0.5, 1.5) x interval, so
// that the clients of a fleet that lost the same server do not reconnect in
// lockstep; the mean stays the interval, which bounds the connection
// attempts the probe makes to about 1/interval per connection.
type conns struct {
	interval time.Duration  // mean wait of the reconnect probe; 0: none
	rand     func() float64 // in [0, 1); jitters the probe
	mu       sync.Mutex
	m        map[*grpc.ClientConn]*watch
	// probed holds when the probe last ran for a connection no call waits
	// for any more; entries older than recentProbe intervals go at the next
	// register or release, so at most one connection is held past that.
	probed map[*grpc.ClientConn]time.Time
}

// recentProbe is how long, in probe intervals, a connection counts as
// probed after its last waiter left: a new waiter then leaves the next
// kick to the jittered timer instead of kicking at once. Calls whose ready
// waits end together (they began together, when the server went away)
// would otherwise all kick at the same moment.
const recentProbe = 2

// watch is the state of one watched connection; guarded by conns.mu.
type watch struct {
	waiters map[*waiter]struct{}
	ready   int  // waiters waiting for the connection to be ready
	closed  bool // the connection shut down
	stop    context.CancelFunc
	wake    context.CancelFunc // interrupts the current state wait
	done    chan struct{}
}

// waiter is one wait registered on a connection.
type waiter struct {
	cancel context.CancelFunc
	closed bool // the wait ended because the connection shut down; guarded by conns.mu
}

// register adds a wait on cc, ended by cancel when cc shuts down. ready is
// set for waits for the connection to be ready, which turn the reconnect
// probe on. The returned waiter must be released.
func (c *conns) register(cc *grpc.ClientConn, cancel context.CancelFunc, ready bool) *waiter {
	w := &waiter{cancel: cancel}
	c.mu.Lock()
	defer c.mu.Unlock()
	wa := c.m[cc]
	if wa == nil {
		ctx, stop := context.WithCancel(context.Background())
		wa = &watch{waiters: make(map[*waiter]struct{}), stop: stop, done: make(chan struct{})}
		if c.m == nil {
			c.m = make(map[*grpc.ClientConn]*watch)
		}
		c.m[cc] = wa
		go c.run(ctx, cc, wa)
	}
	wa.waiters[w] = struct{}{}
	if wa.closed {
		w.closed = true
		cancel()
	}
	if ready {
		wa.ready++
		if wa.ready == 1 && c.interval > 0 {
			if !c.recentlyProbedLocked(cc) {
				kick(cc)
			}
			if wa.wake != nil {
				wa.wake() // arm the probe timer
			}
		}
	}
	return w
}

// release removes w. It reports whether the wait ended because the
// connection shut down.
func (c *conns) release(cc *grpc.ClientConn, w *waiter, ready bool) (closed bool) {
	c.mu.Lock()
	wa := c.m[cc]
	delete(wa.waiters, w)
	if ready {
		wa.ready--
	}
	last := len(wa.waiters) == 0
	if last {
		delete(c.m, cc)
		wa.stop()
		if ready && c.interval > 0 {
			c.recentlyProbedLocked(cc) // prunes
			if c.probed == nil {
				c.probed = make(map[*grpc.ClientConn]time.Time)
			}
			c.probed[cc] = time.Now()
		}
	}
	closed = w.closed
	c.mu.Unlock()
	if last {
		<-wa.done
	}
	return closed
}

// recentlyProbedLocked reports whether the probe ran for cc within the
// last recentProbe intervals, and forgets connections probed before that.
func (c *conns) recentlyProbedLocked(cc *grpc.ClientConn) bool {
	if len(c.probed) == 0 {
		return false
	}
	now := time.Now()
	recent := false
	for k, at := range c.probed {
		switch {
		case now.Sub(at) >= recentProbe*c.interval:
			delete(c.probed, k)
		case k == cc:
			recent = true
		}
	}
	return recent
}

func (c *conns) run(ctx context.Context, cc *grpc.ClientConn, wa *watch) {
	defer close(wa.done)
	for {
		s := cc.GetState()
		if s == connectivity.Shutdown {
			c.mu.Lock()
			wa.closed = true
			for w := range wa.waiters {
				w.closed = true
				w.cancel()
			}
			c.mu.Unlock()
			return
		}
		wctx, wake := context.WithCancel(ctx)
		c.mu.Lock()
		wa.wake = wake
		probing := wa.ready > 0 && c.interval > 0
		c.mu.Unlock()
		var t *time.Timer
		if probing {
			t = time.AfterFunc(c.probeWait(), wake)
		}
		changed := cc.WaitForStateChange(wctx, s)
		if t != nil {
			t.Stop()
		}
		wake()
		if ctx.Err() != nil {
			return
		}
		if !changed && probing {
			kick(cc)
		}
	}
}

// probeWait returns the next wait of the probe: uniform in
// [0.5, 1.5) x interval.
func (c *conns) probeWait() time.Duration {
	return time.Duration((0.5 + c.rand()) * float64(c.interval))
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
