package engine

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// readyGate waits, before an attempt, for a connection that is down (while
// the reconnect probe cuts grpc-go's reconnect backoff short), instead of
// letting the attempt fail fast, until the connection has been down for
// the ready wait: a restart is ridden out, not counted. After that the
// connection is taken for gone: attempts fail fast, at once, and count
// against the breaker, which then refuses calls at once; the calls that do
// not wait still make the connection reconnect about once per probe
// interval, so that its return is found as fast as by the waits.
type readyGate struct {
	// notReady: the latest attempt found no ready connection.
	notReady bool
}

func (g *readyGate) start(*call) {}

// needed reports whether the next attempt should first wait for the
// connection: it is known to be down, or the previous attempt failed with
// Unavailable and the connection is not (or not yet again) ready. It reads
// the call: call it with the call to oneself.
func (g *readyGate) needed(c *call) bool {
	if c.e.cfg.ReadyWait <= 0 || c.cc == nil {
		return false
	}
	if g.notReady {
		return true
	}
	s := c.cc.GetState()
	if s == connectivity.TransientFailure || s == connectivity.Shutdown {
		return true
	}
	if s == connectivity.Ready && c.g.target.t != nil {
		c.g.target.t.connUp()
	}
	return s != connectivity.Ready && c.last.err != nil && c.last.code == codes.Unavailable
}

func (g *readyGate) before(c *call, a *attempt) error {
	if !a.waitReady {
		return nil
	}
	ready, end := c.waitConn(a.ctx)
	switch {
	case ready:
	case end != nil:
		err := waitError(end, "waiting for a ready connection", a.lastErr)
		if t := c.g.target.t; a.lastErr == nil && t != nil {
			// No attempt of this call ran: say why the connection is down.
			if ce := t.connErr.Load(); ce != nil {
				err = &waitEnded{status.Newf(status.Code(err), "%s; last connection error: %s", status.Convert(err).Message(), status.Convert(*ce).Message())}
			}
		}
		return err
	default:
		// Down for a whole ready wait: the attempt fails fast, and that
		// failure counts against the breaker.
		a.afterWait = true
	}
	return nil
}

func (g *readyGate) after(_ *call, _ *attempt, o *outcome) {
	if o.kind != oc.Refused && o.kind != oc.CallerGone {
		g.notReady = o.noConn
	}
}

// waitConn waits until the connection is ready, while the reconnect probe
// shortens grpc-go's reconnect backoff: within the call's deadline, and
// until the connection has been down for the ready wait, counted from when
// a call first found it down. A connection down for longer is not waited
// for: waitConn returns at once, after making it reconnect unless a call
// that did not wait did so within about a probe interval. end is set when
// the caller's context or the connection ended the wait.
func (c *call) waitConn(ctx context.Context) (ready bool, end error) {
	t := c.g.target.t
	s := c.cc.GetState()
	if s == connectivity.Ready {
		if t != nil {
			t.connUp()
		}
		return true, nil
	}
	d := c.e.cfg.ReadyWait
	if t != nil {
		t.connLost()
		d -= t.downFor()
		if d <= 0 && s != connectivity.Shutdown {
			c.kickPaced(t)
			return false, nil
		}
	}
	end = c.wait(ctx, max(d, 0), true, func(wctx context.Context) {
		for s := c.cc.GetState(); ; s = c.cc.GetState() {
			switch s {
			case connectivity.Ready:
				ready = true
				return
			case connectivity.Shutdown:
				return
			case connectivity.Idle:
				c.cc.Connect()
			}
			if !c.cc.WaitForStateChange(wctx, s) {
				return
			}
		}
	})
	if ready && t != nil {
		t.connUp()
	}
	return ready, end
}

// kickPaced makes the connection reconnect now unless a call that did not
// wait for it did so within about a probe interval (jittered as the
// probe's waits): with no call waiting, no probe runs, and the
// connection's return would be found only behind grpc-go's reconnect
// backoff.
func (c *call) kickPaced(t *target) {
	if c.e.conns.interval <= 0 {
		return
	}
	now, next := t.now(), t.nextKick.Load()
	if now < next || !t.nextKick.CompareAndSwap(next, now+int64(c.e.conns.probeWait())) {
		return
	}
	kick(c.cc)
}

// notReady reports whether a connection in state s has lost its
// transport: it failed to connect, or it went idle after a connection loss.
// CONNECTING is not counted: grpc-go can still publish it for a moment
// after the first RPC on a new connection has completed.
func notReady(s connectivity.State) bool {
	return s == connectivity.TransientFailure || s == connectivity.Idle
}
