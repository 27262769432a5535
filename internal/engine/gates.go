package engine

// A gate is one concern of every attempt of a call: the target's retry
// budget and health, the ready wait, the breaker, client-side throttling,
// the concurrency limit, the fallback, telemetry, the endpoint record. The engine runs them in one fixed order (order,
// below); adding a concern means one file for its gate, one field in
// gates and one line in order.
//
// Steps, each a no-op where a gate has nothing to do:
//
//   - start, once per call, top to bottom: the gate reads what it needs
//     (its breaker's key, the target's budget) and may wrap the call's
//     context (the fallback's margin, the call span, the endpoint record);
//   - before, per attempt, top to bottom: nil admits the attempt; an error
//     refuses it (it never reaches a server), or ends the call if the
//     gate waited and the caller's context or the connection ended the
//     wait (a *waitEnded). A gate may wait first, for a time or an event
//     (the connection, a probe slot), through call.wait. Before steps may
//     run concurrently for the attempts of a hedged call: they read the
//     call and write only the attempt;
//   - after, per attempt, bottom to top: the gate takes the attempt's
//     classified outcome. A gate whose before step admitted an attempt that
//     a later gate refused takes an outcome of kind Refused (or CallerGone)
//     and must count nothing against the server. After steps run with the
//     call to themselves (the caller's goroutine, the stream's or hedger's
//     lock).
//
// Two gates also act when the call ends (call.finish): the fallback, which
// may answer for the call, then telemetry, which records how it ended.
type gate interface {
	start(c *call)
	before(c *call, a *attempt) error
	after(c *call, a *attempt, o *outcome)
}

// gates is the per-call state of every gate.
type gates struct {
	target    targetGate
	ready     readyGate
	breaker   breakerGate
	throttle  throttleGate
	limiter   limiterGate
	fallback  fallbackGate
	telemetry telemetryGate
	endpoint  endpointGate
}

// nGates is the number of gates in order.
const nGates = 8

// order is the fixed order of the gates, and why:
//
//  1. target: what the engine keeps per target (the retry budget, its
//     health, its throttle and limiter) is found first, for the gates
//     below; the budget is consulted when a retry is decided, so a retry
//     it refuses is never waited for;
//  2. ready: a connection that is down is waited for before anything is
//     asked of the breaker, so that a restart is ridden out rather than
//     counted;
//  3. breaker: a downstream that is gone refuses attempts before they take
//     a place anywhere else; its half-open probes pass the throttle;
//  4. throttle: a request the downstream would likely fail is refused
//     before it waits in the limiter's queue. First of the gates that
//     measure the downstream, it resets them (target.renew) when the
//     connection found down is ready again, after the waits above;
//  5. limiter: the concurrency limit, last of the gates that refuse, so
//     that the calls released from every wait above (the connection, a
//     probe slot) reach a recovering downstream at no more than its limit;
//  6. fallback: the margin before the call deadline (start) and the answer
//     (call end);
//  7. telemetry: the attempt span starts only for an attempt every gate
//     above admitted, and ends after every gate below took its outcome;
//  8. endpoint: marks the attempt span with the endpoints the policy
//     ejected, before telemetry ends it.
func (g *gates) order() [nGates]gate {
	return [nGates]gate{
		&g.target,
		&g.ready,
		&g.breaker,
		&g.throttle,
		&g.limiter,
		&g.fallback,
		&g.telemetry,
		&g.endpoint,
	}
}

// start runs every gate's start step.
func (c *call) startGates() {
	for _, g := range c.g.order() {
		g.start(c)
	}
}

// admit runs the before steps for a. On a refusal (or a wait the caller's
// context or the connection ended) the gates that had admitted a take the
// refusal as its outcome, and admit returns it.
func (c *call) admit(a *attempt) (refused *outcome) {
	order := c.g.order()
	for i, g := range order {
		if err := g.before(c, a); err != nil {
			o := refusal(err)
			c.g.telemetry.refused(c, &o)
			for j := i - 1; j >= 0; j-- {
				order[j].after(c, a, &o)
			}
			return &o
		}
	}
	return nil
}

// settle hands the outcome of an admitted attempt to every gate.
func (c *call) settle(a *attempt, o *outcome) {
	order := c.g.order()
	for i := len(order) - 1; i >= 0; i-- {
		order[i].after(c, a, o)
	}
}
