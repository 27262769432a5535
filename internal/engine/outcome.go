package engine

import (
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// outcome is how an attempt ended, classified once (classify): every gate's
// after step, decide, the fallback and the error the call returns read this
// value and nothing else.
type outcome struct {
	kind oc.Kind
	err  error
	code codes.Code
	// noConn: a server failure that never reached a server: the
	// connection was down. The next attempt waits for it.
	noConn bool
	// gate: refused by a gate of this client, before any attempt; a
	// Refused outcome without it is an attempt a service answered with
	// its own client's refusal or failure, passed on.
	gate bool
	// hasPushback: the server sent the pushback trailer; pushback < 0
	// means do not retry.
	hasPushback bool
	pushback    time.Duration
}

// classify returns the outcome of attempt a, which ended with err and, if
// known, trailer. The caller's context and its deadline are consulted
// first: an attempt that ended because the caller gave up says nothing
// about the server, whatever its code.
func (c *call) classify(a *attempt, err error, trailer metadata.MD) outcome {
	o := outcome{err: err, kind: oc.Of(err)}
	if err == nil {
		return o
	}
	o.code = status.Code(err)
	if c.callerGone(o.code) {
		o.kind = oc.CallerGone
	}
	// noConn: the connection is down, so the attempt never reached a
	// server; read the state only for the code it fails fast with.
	o.noConn = o.kind == oc.ServerFailure && o.code == codes.Unavailable &&
		c.cc != nil && c.e.cfg.ReadyWait > 0 && notReady(c.cc.GetState())
	if vals := trailer.Get(PushbackMetadataKey); len(vals) > 0 {
		o.hasPushback = true
		ms, perr := strconv.Atoi(vals[0])
		if perr != nil || ms < 0 || len(vals) > 1 {
			o.pushback = -1
		} else {
			o.pushback = time.Duration(ms) * time.Millisecond
		}
	}
	return o
}

// refusal is the outcome of an attempt a gate did not let start: refused
// (kind Refused), or cut short by the caller's context or the connection
// while a gate waited (kind CallerGone).
func refusal(err error) outcome {
	o := outcome{err: err, code: status.Code(err), kind: oc.Refused, gate: true}
	if _, ok := err.(*waitEnded); ok {
		o.kind = oc.CallerGone
	}
	return o
}

// deadlineSlack is how close to the call deadline a DeadlineExceeded must
// come to be the caller's own: the server, which learns the deadline from
// the grpc-timeout header, can time out a moment before the client does.
const deadlineSlack = 5 * time.Millisecond

// callerGone reports whether an attempt that ended with code ended because
// the caller gave up: the call's context is done, or code is the call
// deadline running out as seen by the server just before the client.
func (c *call) callerGone(code codes.Code) bool {
	if c.ctx.Err() != nil {
		return true
	}
	if code != codes.DeadlineExceeded {
		return false
	}
	dl, ok := c.ctx.Deadline()
	return ok && time.Until(dl) < deadlineSlack
}
