package engine

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/grpc-resilience/resilience/internal/latency"
)

// hedger runs a hedged unary call.
//
// While nothing else is in flight, the caller's goroutine drives the call
// exactly as an unhedged one: it starts an attempt (waiting for the
// connection or a breaker as needed) and runs it itself, writing into the
// caller's reply and call options, with the hedge delay armed as a timer.
// A call answered before the delay never starts a goroutine.
//
// When the timer fires, a hedge starts on a goroutine of its own, with its
// own reply and header, trailer and peer outputs. From then on every event
// — an attempt ending, the timer firing, a hedge refused — is handled under
// mu by the goroutine it happens on, through the same decide as every other
// call: nothing waits inside that handling, so a hedge waiting for a
// connection or a breaker never delays reading the others' results. When
// the last attempt in flight ends without ending the call, control returns
// to the caller's goroutine, which waits out the decided delay and starts
// the next attempt itself.
//
// The call ends once every attempt has ended: the winner's reply and
// outputs are copied to the caller's, and no attempt outlives the call.
type hedger struct {
	u       *unaryCall
	invoker grpc.UnaryInvoker
	opts    []grpc.CallOption
	delay   time.Duration
	tracker *latency.Histogram // percentile hedging only

	replyMsg  proto.Message
	replyType protoreflect.MessageType

	// Set when the first hedge fires.
	shared []grpc.CallOption // opts without the output options
	outs   outputs

	mu       sync.Mutex
	inFlight int                // attempts running or starting
	inline   func()             // cancels the caller's goroutine's attempt
	cancels  map[int]func()     // of the hedges running
	hctx     context.Context    // parent of the hedges; ends with the call
	hcancel  context.CancelFunc // nil until the first hedge
	timer    *time.Timer
	gen      int // of timer
	finished bool
	final    decision     // the decision that ended the call
	winner   *hedgeResult // the attempt the call ended with, if a hedge
	handoff  bool         // next is for the caller's goroutine
	next     decision
	ctl      chan struct{} // wakes the caller's goroutine; made with the first hedge
}

// hedgeResult is what a hedge writes to instead of the caller's values.
type hedgeResult struct {
	reply   proto.Message
	header  metadata.MD
	trailer metadata.MD
	peer    peer.Peer
}

// outputs are the caller's pointer-writing call options.
type outputs struct {
	header  *metadata.MD
	trailer *metadata.MD
	peer    *peer.Peer
}

func (u *unaryCall) hedged(invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	hp := u.p.Hedge
	u.p.MaxAttempts = max(u.p.MaxAttempts, hp.MaxInFlight)
	// A zero delay (a service config's hedgingDelay "0s") sends the hedges
	// at once, one timer tick apart.
	h := &hedger{u: u, invoker: invoker, opts: opts, delay: max(hp.Delay, time.Nanosecond)}
	// Taken before any attempt runs: the caller's goroutine's attempt
	// writes into the reply while hedges are launched. Unary only calls
	// hedged for proto.Message replies.
	msg := u.reply.(proto.Message)
	h.replyMsg, h.replyType = msg, msg.ProtoReflect().Type()
	if hp.Percentile > 0 {
		h.tracker = u.e.latency(u.method)
		if d, ok := h.tracker.Percentile(hp.Percentile); ok {
			h.delay = d
		}
	}
	for {
		// Nothing is in flight: this goroutine runs the next attempt.
		a := &u.cur
		if stop := u.nextAttempt(a, true); stop != nil {
			return u.finish(*stop)
		}
		actx, acancel := context.WithCancel(a.ctx)
		h.mu.Lock()
		h.inFlight = 1
		h.inline = acancel
		h.armLocked(h.delay)
		h.mu.Unlock()
		started := h.now()
		// Hedged calls always read pushback: it stops or delays hedges.
		err := invoker(actx, u.method, u.req, u.reply, u.cc, u.attemptOpts(true, opts)...)
		acancel()

		h.mu.Lock()
		h.inFlight--
		h.inline = nil
		o := u.endAttempt(a, err, u.trailer)
		var d decision
		if !h.finished {
			d = u.decide(event{outcome: o}, h.inFlight, true)
			switch {
			case d.op == opStop:
				h.observeLocked(err, started)
				h.finishLocked(d, nil)
			case h.inFlight > 0:
				h.actLocked(d)
			default:
				h.stopTimerLocked()
			}
		}
		if h.finished && h.inFlight == 0 {
			h.mu.Unlock()
			return h.end()
		}
		wait := h.finished || h.inFlight > 0
		h.mu.Unlock()
		if wait {
			done, next, err := h.await()
			if done {
				return err
			}
			d = next
		}
		if err := u.sleep(u.ctx, d.delay); err != nil {
			return u.finish(waitStop(err))
		}
	}
}

// await blocks the caller's goroutine until the call has ended and every
// attempt with it, or until nothing is in flight and the call goes on.
func (h *hedger) await() (done bool, next decision, err error) {
	for range h.ctl {
		h.mu.Lock()
		switch {
		case h.finished && h.inFlight == 0:
			h.mu.Unlock()
			return true, decision{}, h.end()
		case !h.finished && h.handoff:
			h.handoff = false
			next := h.next
			h.mu.Unlock()
			return false, next, nil
		}
		h.mu.Unlock()
	}
	panic("unreachable")
}

// end finishes the call once every attempt has ended: the winning hedge's
// reply and outputs become the caller's.
func (h *hedger) end() error {
	if h.hcancel != nil {
		h.hcancel()
	}
	if w := h.winner; w != nil {
		if h.final.err == nil {
			proto.Reset(h.replyMsg)
			proto.Merge(h.replyMsg, w.reply)
		}
		if h.outs.header != nil {
			*h.outs.header = w.header
		}
		if h.outs.trailer != nil {
			*h.outs.trailer = w.trailer
		}
		if h.outs.peer != nil {
			*h.outs.peer = w.peer
		}
	}
	return h.u.finish(h.final)
}

// signalLocked wakes the caller's goroutine, if it may be waiting.
func (h *hedger) signalLocked() {
	if h.ctl == nil {
		return
	}
	select {
	case h.ctl <- struct{}{}:
	default:
	}
}

// armLocked (re)starts the hedge timer: the next hedge goes after d.
func (h *hedger) armLocked(d time.Duration) {
	h.stopTimerLocked()
	gen := h.gen
	h.timer = time.AfterFunc(d, func() { h.onTimer(gen) })
}

func (h *hedger) stopTimerLocked() {
	h.gen++
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

// onTimer runs when the hedge delay elapsed.
func (h *hedger) onTimer(gen int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished || gen != h.gen || h.inFlight == 0 {
		return
	}
	h.timer = nil
	if d := h.u.decide(event{hedgeTimer: true}, h.inFlight, true); d.op == opAttempt {
		h.launchLocked()
		h.armLocked(h.delay)
	}
}

// actLocked carries out a decision taken while attempts are in flight.
func (h *hedger) actLocked(d decision) {
	if d.op != opAttempt {
		return
	}
	if d.delay > 0 {
		// Server pushback: the next hedge waits for it.
		h.armLocked(d.delay)
		return
	}
	h.launchLocked()
	h.armLocked(h.delay)
}

// handleLocked reacts to an event of a hedge: its end or its refusal.
func (h *hedger) handleLocked(o outcome, r *hedgeResult, started time.Time) {
	d := h.u.decide(event{outcome: o}, h.inFlight, true)
	switch {
	case d.op == opStop:
		h.observeLocked(o.err, started)
		h.finishLocked(d, r)
	case h.inFlight > 0:
		h.actLocked(d)
	default:
		// Nothing in flight: the caller's goroutine takes over.
		h.stopTimerLocked()
		h.next, h.handoff = d, true
		h.signalLocked()
	}
}

// finishLocked ends the call as d says; r is the hedge it ends with (nil:
// the caller's goroutine's own attempt). The attempts still in flight are
// cancelled; the caller's goroutine returns once they have ended.
func (h *hedger) finishLocked(d decision, r *hedgeResult) {
	h.finished, h.final, h.winner = true, d, r
	h.stopTimerLocked()
	if h.inline != nil {
		h.inline()
	}
	for _, cancel := range h.cancels {
		cancel()
	}
	if h.hcancel != nil {
		h.hcancel()
	}
	h.signalLocked()
}

// now is an attempt's start for observeLocked: the time if the hedge
// delay follows observed latencies, else the zero Time (not observed).
func (h *hedger) now() time.Time {
	if h.tracker == nil {
		return time.Time{}
	}
	return time.Now()
}

func (h *hedger) observeLocked(err error, started time.Time) {
	if err == nil && h.tracker != nil && !started.IsZero() {
		h.tracker.Observe(time.Now().Sub(started))
	}
}

// launchLocked starts a hedge on a goroutine of its own.
func (h *hedger) launchLocked() {
	u := h.u
	h.inFlight++
	if h.hcancel == nil {
		h.hctx, h.hcancel = context.WithCancel(u.ctx)
		h.shared, h.outs = splitOutputs(h.opts)
		h.cancels = make(map[int]func())
		h.ctl = make(chan struct{}, 1)
	}
	a := new(attempt)
	u.newAttempt(a, h.hctx)
	a.hedge = true
	go h.run(a)
}

// run is the life of one hedge.
func (h *hedger) run(a *attempt) {
	u := h.u
	refused := u.startAttempt(a)
	h.mu.Lock()
	if refused != nil {
		u.count.attempts--
		h.inFlight--
		if h.finished {
			h.signalLocked()
		} else {
			// Refused, or its wait cut short: the others go on.
			h.handleLocked(*refused, nil, time.Time{})
		}
		h.mu.Unlock()
		return
	}
	if h.finished {
		// Ready to go when another attempt answered: it never reaches
		// the transport, so it is not counted.
		u.endAttempt(a, errHedgeLost, nil)
		u.count.attempts--
		h.inFlight--
		h.signalLocked()
		h.mu.Unlock()
		return
	}
	n := a.n
	actx, cancel := context.WithCancel(a.ctx)
	h.cancels[n] = cancel
	h.mu.Unlock()

	r := &hedgeResult{reply: h.replyType.New().Interface()}
	opts := append(h.shared[:len(h.shared):len(h.shared)], grpc.Header(&r.header), grpc.Trailer(&r.trailer), grpc.Peer(&r.peer))
	started := h.now()
	err := h.invoker(actx, u.method, u.req, r.reply, u.cc, opts...)
	cancel()

	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.cancels, n)
	h.inFlight--
	o := u.endAttempt(a, err, r.trailer)
	if h.finished {
		if h.inFlight == 0 {
			h.signalLocked()
		}
		return
	}
	h.handleLocked(o, r, started)
}

// splitOutputs removes grpc.Header, grpc.Trailer and grpc.Peer from opts.
func splitOutputs(opts []grpc.CallOption) ([]grpc.CallOption, outputs) {
	var out outputs
	rest := make([]grpc.CallOption, 0, len(opts))
	for _, o := range opts {
		switch v := o.(type) {
		case grpc.HeaderCallOption:
			out.header = v.HeaderAddr
		case *grpc.HeaderCallOption:
			out.header = v.HeaderAddr
		case grpc.TrailerCallOption:
			out.trailer = v.TrailerAddr
		case *grpc.TrailerCallOption:
			out.trailer = v.TrailerAddr
		case grpc.PeerCallOption:
			out.peer = v.PeerAddr
		case *grpc.PeerCallOption:
			out.peer = v.PeerAddr
		default:
			rest = append(rest, o)
		}
	}
	return rest, out
}
