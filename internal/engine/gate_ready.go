package engine

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// readyGate waits, before an attempt, for a connection that is down (up to
// the ready wait, while the reconnect probe cuts grpc-go's reconnect
// backoff short), instead of letting the attempt fail fast. An attempt
// that found no connection is not the server's failure until a whole ready
// wait has passed: a restart is ridden out, not counted.
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
				err = status.Errorf(status.Code(err), "%s; last connection error: %s", status.Convert(err).Message(), status.Convert(*ce).Message())
			}
		}
		return err
	default:
		// Still down after a whole wait: the attempt fails fast, and that
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

// waitConn waits, for at most the ready wait, until the connection is
// ready, while the reconnect probe shortens grpc-go's reconnect backoff.
// end is set when the caller's context or the connection ended the wait.
func (c *call) waitConn(ctx context.Context) (ready bool, end error) {
	end = c.wait(ctx, c.e.cfg.ReadyWait, true, func(wctx context.Context) {
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
	return ready, end
}

// notReady reports whether a connection in state s has lost its
// transport: it failed to connect, or it went idle after a connection loss.
// CONNECTING is not counted: grpc-go can still publish it for a moment
// after the first RPC on a new connection has completed.
func notReady(s connectivity.State) bool {
	return s == connectivity.TransientFailure || s == connectivity.Idle
}
