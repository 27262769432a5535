package engine

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/grpc-resilience/resilience/internal/clock"
)

// conns watches the connections that calls wait on. For each connection
// with at least one waiting call, one goroutine follows its state: when the
// connection shuts down it ends every wait on it at once, and while calls
// wait for it to be ready it resets grpc-go's reconnect backoff every
// interval, so that a restarted server is found within about an interval
// instead of behind a backoff of a second or more. The goroutine exits when
// the last waiting call leaves: none runs while no call waits.
type conns struct {
	interval time.Duration // reconnect probe; 0: none
	clock    clock.Clock
	mu       sync.Mutex
	m        map[*grpc.ClientConn]*watch
}

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
			kick(cc)
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
	}
	closed = w.closed
	c.mu.Unlock()
	if last {
		<-wa.done
	}
	return closed
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
		var t clock.Timer
		if probing {
			t = c.clock.AfterFunc(c.interval, wake)
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
