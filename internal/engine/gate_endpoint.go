package engine

import (
	"github.com/grpc-resilience/resilience/endpoint"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
)

// endpointGate gives the call a record of the endpoints its attempts went
// to (endpoint.NewCall), which the endpoint policy reads to place retries
// and hedges on other endpoints, and marks a failed attempt's span with
// the endpoints the policy ejected meanwhile.
type endpointGate struct {
	// seen marks the attempts (by pick order, the first 64) whose
	// ejection of their endpoint was recorded.
	seen uint64
}

func (g *endpointGate) start(c *call) {
	if c.e.cfg.CallRecords {
		c.ctx = endpoint.NewCall(c.ctx)
	}
}

func (g *endpointGate) before(*call, *attempt) error { return nil }

// after records on the attempt's span every ejection in the call record
// not recorded yet: the policy marks an attempt's pick as it ends, before
// the RPC returns, so the ending attempt finds its own (a hedge ending at
// the same moment may find another's).
func (g *endpointGate) after(c *call, a *attempt, o *outcome) {
	if o.err == nil || o.kind == oc.Refused || !c.e.cfg.CallRecords || !c.g.telemetry.call.Enabled() {
		return
	}
	for i, p := range endpoint.Attempts(c.ctx) {
		if i < 64 && p.Ejected && g.seen&(1<<i) == 0 {
			g.seen |= 1 << i
			a.tel.EndpointEjected(p.Addr)
		}
	}
}
