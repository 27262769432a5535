package interceptors

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// HedgePolicy makes a unary method hedged: if an attempt has not answered
// after a delay, another one is sent while the first keeps running, up to
// MaxAttempts in flight; the first usable answer (a success or a
// non-retryable error) wins and the others are cancelled. A hedge that
// fails with a retryable code starts the next one at once.
//
// Hedge only methods that are safe to run more than once. Each attempt
// gets its own reply message and its own grpc.Header, grpc.Trailer and
// grpc.Peer outputs: only the winner's reach the caller. Hedges draw on the
// retry budget: no hedge is sent while it is exhausted. Streams are never
// hedged.
type HedgePolicy struct {
	// Delay is the wait before each hedge; it must be > 0. With
	// Percentile set, it is the wait until enough latencies of the method
	// have been observed.
	Delay time.Duration
	// Percentile, if in (0, 1), hedges after that percentile of the
	// method's observed successful latencies (for example 0.95), once 100
	// of them have been seen. 0 means a fixed Delay.
	Percentile float64
	// MaxAttempts is the number of attempts that may be in flight at once,
	// counting the first; at least 2. The call's MaxAttempts still bounds
	// the total.
	MaxAttempts int
}

func (h HedgePolicy) validate() error {
	switch {
	case h.Delay <= 0:
		return fmt.Errorf("Delay must be > 0, got %v", h.Delay)
	case !(h.Percentile >= 0 && h.Percentile < 1):
		return fmt.Errorf("Percentile must be in [0, 1), got %v", h.Percentile)
	case h.MaxAttempts < 2:
		return fmt.Errorf("MaxAttempts must be >= 2, got %d", h.MaxAttempts)
	}
	return nil
}

// CallHedging hedges the call (or, with WithMethodPolicy, the matching
// methods) according to p. The call's MaxAttempts is raised to
// p.MaxAttempts if it is lower.
func CallHedging(p HedgePolicy) CallOption {
	return callOption(func(pol *policy) {
		if err := p.validate(); err != nil {
			callInvalid(pol, "CallHedging", "%v", err)
			return
		}
		pol.hedge = &p
	})
}

// hedgeResult is what one hedged attempt hands back.
type hedgeResult struct {
	a       *attempt
	started time.Time
	err     error
	reply   any
	header  metadata.MD
	trailer metadata.MD
	peer    peer.Peer
}

// hedgeOutputs are the caller's pointer-writing call options, which each
// attempt gets a private copy of.
type hedgeOutputs struct {
	header  *metadata.MD
	trailer *metadata.MD
	peer    *peer.Peer
}

// splitOutputs removes grpc.Header, grpc.Trailer and grpc.Peer from opts.
func splitOutputs(opts []grpc.CallOption) ([]grpc.CallOption, hedgeOutputs) {
	var out hedgeOutputs
	rest := make([]grpc.CallOption, 0, len(opts))
	for _, o := range opts {
		switch v := o.(type) {
		case grpc.HeaderCallOption:
			out.header = v.HeaderAddr
		case grpc.TrailerCallOption:
			out.trailer = v.TrailerAddr
		case grpc.PeerCallOption:
			out.peer = v.PeerAddr
		default:
			rest = append(rest, o)
			continue
		}
	}
	return rest, out
}

// hedged runs a hedged unary call.
func (m *Middleware) hedged(u *unaryCall, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	hp := u.p.hedge
	replyMsg, ok := reply.(proto.Message)
	if !ok {
		return u.fail(status.Error(codes.Internal, "interceptors: hedging needs a proto.Message reply"))
	}
	// Taken before any attempt runs: the first attempt writes into the
	// caller's reply concurrently with the launch of later ones.
	replyType := replyMsg.ProtoReflect().Type()
	shared, outs := splitOutputs(opts)
	maxAttempts := max(u.p.maxAttempts, hp.MaxAttempts)
	// Latencies are tracked only for percentile-driven hedging.
	var tracker *latencies
	delay := hp.Delay
	if hp.Percentile > 0 {
		tracker = m.latencyTracker(method)
		if d, ok := tracker.percentile(hp.Percentile); ok {
			delay = d
		}
	}

	results := make(chan hedgeResult, maxAttempts)
	cancels := make([]context.CancelFunc, 0, maxAttempts)
	inflight := 0
	launch := func() error {
		a, err := u.startAttempt()
		if err != nil {
			return err
		}
		actx, cancel := context.WithCancel(a.ctx)
		cancels = append(cancels, cancel)
		r := hedgeResult{a: &a, reply: reply, started: time.Now()}
		if a.n > 1 {
			// Only the first attempt writes to the caller's reply; the
			// others get their own, copied over if they win.
			r.reply = replyType.New().Interface()
		}
		inflight++
		go func() {
			aopts := append(shared[:len(shared):len(shared)],
				grpc.Header(&r.header), grpc.Trailer(&r.trailer), grpc.Peer(&r.peer))
			r.err = invoker(actx, method, req, r.reply, cc, aopts...)
			results <- r
		}()
		return nil
	}
	// finish cancels the attempts still in flight and waits for them, so
	// that none outlives the call or writes after it returned.
	finish := func() {
		for _, c := range cancels {
			c()
		}
		for ; inflight > 0; inflight-- {
			r := <-results
			u.endAttempt(r.a, r.err, r.trailer)
		}
	}

	if err := launch(); err != nil {
		return u.fail(err)
	}
	t := m.cfg.clock.NewTimer(delay)
	defer func() { t.Stop() }()
	var lastErr error
	for {
		select {
		case r := <-results:
			inflight--
			err := u.endAttempt(r.a, r.err, r.trailer)
			if err == nil || !u.p.retryCodes.has(status.Code(err)) || u.ctx.Err() != nil {
				finish()
				if err == nil && tracker != nil {
					tracker.observe(time.Since(r.started))
				}
				if r.reply != reply && err == nil {
					proto.Reset(replyMsg)
					proto.Merge(replyMsg, r.reply.(proto.Message))
				}
				if outs.header != nil {
					*outs.header = r.header
				}
				if outs.trailer != nil {
					*outs.trailer = r.trailer
				}
				if outs.peer != nil {
					*outs.peer = r.peer
				}
				if err == nil {
					u.succeed()
					return nil
				}
				return u.fail(err)
			}
			lastErr = err
			if inflight > 0 {
				continue
			}
			// Nothing in flight: the next attempt goes now, if allowed.
			if u.attempts >= maxAttempts || !u.budgetAllows() {
				return u.fail(lastErr)
			}
			if err := launch(); err != nil {
				return u.fail(err)
			}
			t.Stop()
			t = m.cfg.clock.NewTimer(delay)
		case <-t.C():
			if u.attempts < maxAttempts && inflight < hp.MaxAttempts && u.budgetAllows() {
				if err := launch(); err != nil {
					finish()
					return u.fail(err)
				}
			}
			t = m.cfg.clock.NewTimer(delay)
		case <-u.ctx.Done():
			finish()
			if lastErr == nil {
				lastErr = status.FromContextError(u.ctx.Err()).Err()
			}
			return u.fail(lastErr)
		}
	}
}

// latencyTracker returns the latency histogram of method.
func (m *Middleware) latencyTracker(method string) *latencies {
	return loadOrCreate(&m.mu, &m.latencies, method, func() *latencies { return &latencies{} })
}

// latencies is a histogram of recent successful call latencies with
// logarithmic buckets (4 per doubling, from 1 µs), over two rotating
// windows of latencyWindow samples each, so that it follows change.
type latencies struct {
	mu    sync.Mutex
	cur   [latencyBuckets]uint32
	prev  [latencyBuckets]uint32
	curN  int
	prevN int
}

const (
	latencyBuckets = 4 * 40 // up to 2^40 µs
	latencyWindow  = 1000
	latencyMinimum = 100 // samples before a percentile is trusted
)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log2(us)*4)+1, latencyBuckets-1)
}

// upper returns the upper bound of bucket b.
func upper(b int) time.Duration {
	return time.Duration(math.Exp2(float64(b)/4) * float64(time.Microsecond))
}

func (l *latencies) observe(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur[bucketOf(d)]++
	l.curN++
	if l.curN == latencyWindow {
		l.prev, l.prevN = l.cur, l.curN
		l.cur, l.curN = [latencyBuckets]uint32{}, 0
	}
}

// percentile returns the p-th percentile of the recorded latencies, or
// false when too few were recorded.
func (l *latencies) percentile(p float64) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.curN + l.prevN
	if n < latencyMinimum {
		return 0, false
	}
	rank := uint32(math.Ceil(p * float64(n)))
	var seen uint32
	for b := range latencyBuckets {
		seen += l.cur[b] + l.prev[b]
		if seen >= rank {
			return upper(b), true
		}
	}
	return upper(latencyBuckets - 1), true
}
