package endpoint

import (
	"context"
	"sync"
)

// callKey is the context key under which a *call finds itself.
type callKey struct{}

// call is the record of one logical call: the endpoints its attempts were
// sent to, in pick order. It is its own context (the caller's context plus
// the record), so NewCall allocates once.
type call struct {
	context.Context
	mu    sync.Mutex
	picks []pick
	buf   [4]pick // room for the usual number of attempts
}

type pick struct {
	ep      *epStats
	ejected bool // this attempt's outcome ejected ep
}

// NewCall returns a context for one logical call: a child of ctx carrying an
// empty record of the endpoints the call's attempts went to. Give it (or a
// context derived from it, such as one with an attempt timeout) to every
// attempt of the call, retries and hedges included; the policy's picker
// records each attempt's endpoint in it at pick time and sends the next
// attempt to a ready endpoint the call has not tried yet (see the package
// documentation). Calling NewCall again, also on a context that already has a
// record, starts a new logical call.
//
// The record is safe for concurrent use by the call's attempts; NewCall costs
// one allocation of 112 bytes (on 64-bit platforms). Without NewCall the policy picks as
// round robin over the endpoints in service.
func NewCall(ctx context.Context) context.Context {
	c := &call{Context: ctx}
	c.picks = c.buf[:0]
	return c
}

// Value returns the record for callKey and defers every other key to the
// caller's context.
func (c *call) Value(key any) any {
	if key == (callKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *call) String() string { return "endpoint.NewCall" }

func callFrom(ctx context.Context) *call {
	if ctx == nil {
		return nil
	}
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// triedLocked reports whether the call already sent an attempt to e.
func (c *call) triedLocked(e *epStats) bool {
	for _, p := range c.picks {
		if p.ep == e {
			return true
		}
	}
	return false
}

func (c *call) markEjected(i int) {
	c.mu.Lock()
	c.picks[i].ejected = true
	c.mu.Unlock()
}

// Attempt is what the policy recorded about one attempt of a call.
type Attempt struct {
	// Addr is the address of the endpoint the attempt was sent to (its
	// addresses joined by "," when it has several).
	Addr string
	// Ejected reports that the attempt's outcome ejected the endpoint: it
	// was the failure that made a rule hold. It is set when the attempt
	// ends, before its RPC returns to the caller.
	Ejected bool
}

// Attempts returns what the policy recorded in the call record of ctx (see
// [NewCall]), one Attempt per attempt picked by the policy, in pick order;
// nil when ctx has no record. The interceptors can use it to annotate the
// attempt that just ended (its endpoint, whether it ejected it).
func Attempts(ctx context.Context) []Attempt {
	c := callFrom(ctx)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Attempt, len(c.picks))
	for i, p := range c.picks {
		out[i] = Attempt{Addr: p.ep.addr, Ejected: p.ejected}
	}
	return out
}
