package resiliencetest

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// AttemptMetadataKey is the incoming metadata key under which the
	// resilience client interceptors send the attempt number ("2", "3", …)
	// with every attempt after the first. It is the value of
	// interceptors.AttemptMetadataKey.
	AttemptMetadataKey = "resilience-attempt"
	// PushbackTrailer is the trailer key of server pushback (gRFC A6): the
	// number of milliseconds the client should wait before retrying; a
	// negative or malformed value asks it not to retry.
	PushbackTrailer = "grpc-retry-pushback-ms"
	// AllMethods, in place of a full method name, sets rules for every
	// method that has none of its own, and counts the attempts of every
	// method.
	AllMethods = "*"
)

// defaultFaultMessage is the status message of a Fault without WithMessage.
const defaultFaultMessage = "resiliencetest: injected fault"

type faultKind int

const (
	noFault           faultKind = iota
	failFault                   // fail before the handler runs
	hangFault                   // wait for the attempt's context to end
	failAfterSent               // fail a stream once it has sent k messages
	failAfterReceived           // fail a stream once it has received k messages
)

// Fault is what happens to an attempt that a rule of Faults picks. Build one
// with Fail, Hang, FailAfterSent or FailAfterReceived; the zero Fault is
// rejected by InjectNext and InjectFraction. Arguments are checked when the
// Fault is given to Faults, which returns an error naming the bad one.
type Fault struct {
	kind     faultKind
	code     codes.Code
	k        int
	message  string
	pushback string
	hasPush  bool
	delay    time.Duration
}

// Fail fails the attempt at once with code, before the handler runs: the
// client gets a status with no header and no message, so a stream is not
// committed. codes.OK is not a fault and is rejected.
func Fail(code codes.Code) Fault {
	return Fault{kind: failFault, code: code}
}

// Hang holds the attempt, without running the handler, until its context
// ends: the client's deadline or cancellation, or the connection closing.
// The attempt then ends with codes.DeadlineExceeded or codes.Canceled.
func Hang() Fault {
	return Fault{kind: hangFault}
}

// FailAfterSent lets a streaming attempt send k messages, then fails it
// with code: the handler's next SendMsg returns the status error and is not
// sent, and the stream ends with that status whatever the handler returns.
// With k > 0 the client has seen a header and k messages, so the stream is
// committed. Unary attempts do not take this fault. A stream that ends
// before sending k+1 messages ends as the handler says, and uses the fault
// up all the same.
func FailAfterSent(k int, code codes.Code) Fault {
	return Fault{kind: failAfterSent, code: code, k: k}
}

// FailAfterReceived fails a streaming attempt with code as soon as it has
// received k messages from the client: the k-th is read off the wire but
// never handed to the handler, whose RecvMsg returns the status error
// instead, and the stream ends with that status whatever the handler
// returns. The handler has seen k-1 messages, so a bidi stream that answers
// each message fails after the k-th arrived and before it was answered: the
// client must replay it. With k == 0 the stream fails at the handler's
// first RecvMsg, before reading anything. For a server-streaming method the
// request is the one message received. A stream whose client half-closes
// before sending k messages ends as the handler says, and uses the fault up
// all the same. Unary attempts do not take this fault.
func FailAfterReceived(k int, code codes.Code) Fault {
	return Fault{kind: failAfterReceived, code: code, k: k}
}

// WithMessage returns f with msg as its status message instead of
// "resiliencetest: injected fault".
func (f Fault) WithMessage(msg string) Fault {
	f.message = msg
	return f
}

// WithPushback returns f with value sent verbatim as the
// grpc-retry-pushback-ms trailer of the failure: "250" asks the client to
// wait 250 ms before retrying, "-1" not to retry; malformed values can be
// sent too. An empty value is rejected. It has no effect on Hang.
func (f Fault) WithPushback(value string) Fault {
	f.pushback, f.hasPush = value, true
	return f
}

// WithDelay returns f acting d after the attempt took it: the attempt waits
// d first (a timer, faked in a testing/synctest bubble), so that a failure
// comes slowly, as from a server that waited on a dependency of its own
// before giving up; FailAfterSent and FailAfterReceived wait before the
// handler runs. An attempt whose context ends during the wait ends with
// codes.DeadlineExceeded or codes.Canceled. A negative d is rejected. It
// has no effect on Hang.
func (f Fault) WithDelay(d time.Duration) Fault {
	f.delay = d
	return f
}

// validate checks f for the function fn.
func (f Fault) validate(fn string) error {
	switch f.kind {
	case noFault:
		return invalid("%s: fault: the zero Fault; use Fail, Hang, FailAfterSent or FailAfterReceived", fn)
	case hangFault:
	default:
		if f.code == codes.OK {
			return invalid("%s: fault: code OK is not a fault", fn)
		}
		if f.code > math.MaxUint16 {
			return invalid("%s: fault: code %d is not a gRPC code", fn, uint32(f.code))
		}
		if f.k < 0 {
			return invalid("%s: fault: message count %d is negative", fn, f.k)
		}
	}
	if f.delay < 0 {
		return invalid("%s: fault: delay %v is negative", fn, f.delay)
	}
	if f.hasPush {
		if f.pushback == "" {
			return invalid("%s: fault: empty pushback", fn)
		}
		for _, r := range f.pushback {
			if r < 0x20 || r > 0x7e {
				return invalid("%s: fault: pushback %q is not printable ASCII", fn, f.pushback)
			}
		}
	}
	return nil
}

// streamOnly reports whether only streaming attempts take f.
func (f Fault) streamOnly() bool {
	return f.kind == failAfterSent || f.kind == failAfterReceived
}

// status returns the status error of f.
func (f Fault) status() error {
	msg := f.message
	if msg == "" {
		msg = defaultFaultMessage
	}
	return status.Error(f.code, msg)
}

// trailer returns the pushback trailer of f, or nil.
func (f Fault) trailer() metadata.MD {
	if !f.hasPush {
		return nil
	}
	return metadata.Pairs(PushbackTrailer, f.pushback)
}

type queued struct {
	fault Fault
	n     int
}

// rules are the faults and latency of one method (or of AllMethods).
type rules struct {
	paused          chan struct{} // closed by Resume; nil while not paused
	queue           []queued
	fraction        float64
	fractionFault   Fault
	latency         time.Duration
	latencyFraction float64
	pool            *pool // the Capacity; nil: none
}

// resume lets the attempts held by r go on.
func (r *rules) resume() {
	if r.paused != nil {
		close(r.paused)
		r.paused = nil
	}
}

// remove lets every attempt held or queued by r go on, as r is removed.
func (r *rules) remove() {
	r.resume()
	if r.pool != nil {
		r.pool.release()
	}
}

// Faults injects faults and latency into a gRPC server through its unary
// and stream server interceptors, per method, and counts and records the
// attempts that arrive. Create it with NewFaults; the zero value is not
// usable. Every method is safe for concurrent use, also while the server is
// serving.
type Faults struct {
	mu      sync.Mutex // guards the fields below
	rng     *rand.Rand
	rules   map[string]*rules
	counts  map[string]map[int]int // method → attempt number → attempts
	work    map[string]*Work       // method → what its capacity limit did
	records []*Record              // the latest attempts, oldest first; see arriveLocked
	arrival chan struct{}          // closed at the next arrival; nil without waiters
}

// NewFaults returns a Faults with no rules. Option: WithSeed.
func NewFaults(opts ...Option) (*Faults, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Faults{
		rng:    cfg.rng(),
		rules:  make(map[string]*rules),
		counts: make(map[string]map[int]int),
		work:   make(map[string]*Work),
	}, nil
}

// ServerOptions returns the server options that install both interceptors,
// for grpc.NewServer. They chain after interceptors installed earlier.
func (f *Faults) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(f.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(f.StreamServerInterceptor()),
	}
}

// InjectNext makes the next n attempts on method fail with fault. Faults
// queued for a method are taken in the order they were queued, one per
// attempt; a fault that only streams take (FailAfterSent,
// FailAfterReceived) is skipped by unary attempts. n == 0 does nothing.
// method is a full method name ("/pkg.Service/Method") or AllMethods.
func (f *Faults) InjectNext(method string, n int, fault Fault) error {
	const fn = "InjectNext"
	if err := validMethod(fn, method); err != nil {
		return err
	}
	if n < 0 {
		return invalid("%s: n: %d is negative", fn, n)
	}
	if err := fault.validate(fn); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rulesLocked(method)
	r.queue = append(r.queue, queued{fault: fault, n: n})
	return nil
}

// InjectFraction makes a fraction p of the attempts on method that take no
// queued fault suffer fault, drawn from the seeded source. p is in [0, 1]:
// 0 removes the fraction (fault is then not checked), 1 applies it to every
// attempt. A later call for the same method replaces an earlier one.
func (f *Faults) InjectFraction(method string, p float64, fault Fault) error {
	const fn = "InjectFraction"
	if err := validMethod(fn, method); err != nil {
		return err
	}
	if err := validFraction(fn, "p", p); err != nil {
		return err
	}
	if p > 0 {
		if err := fault.validate(fn); err != nil {
			return err
		}
	} else {
		fault = Fault{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rulesLocked(method)
	r.fraction, r.fractionFault = p, fault
	return nil
}

// SetLatency delays a fraction p of the attempts on method by d before
// anything else happens to them: p == 1 is a fixed latency, p == 0.05 a slow
// tail. d == 0 or p == 0 removes the latency. The wait is a timer
// (faked inside a testing/synctest bubble, where tests move time without
// waiting); an attempt whose context ends first ends with
// codes.DeadlineExceeded or codes.Canceled. A later call for the same method
// replaces an earlier one.
func (f *Faults) SetLatency(method string, p float64, d time.Duration) error {
	const fn = "SetLatency"
	if err := validMethod(fn, method); err != nil {
		return err
	}
	if err := validFraction(fn, "p", p); err != nil {
		return err
	}
	if d < 0 {
		return invalid("%s: d: %v is negative", fn, d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rulesLocked(method)
	r.latency, r.latencyFraction = d, p
	return nil
}

// Pause holds every attempt on method, once counted, until Resume(method) or
// until its context ends (it then ends with codes.DeadlineExceeded or
// codes.Canceled): a server that stalls, then recovers. Held attempts,
// released, go on through latency, faults and capacity to the handler.
// Pausing a paused method does nothing. method is a full method name or
// AllMethods; like every rule, a pause for AllMethods applies to the methods
// without rules of their own.
func (f *Faults) Pause(method string) error {
	if err := validMethod("Pause", method); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rulesLocked(method)
	if r.paused == nil {
		r.paused = make(chan struct{})
	}
	return nil
}

// Resume lets the attempts held by Pause(method) go on, and later ones
// pass. It does nothing if method is not paused.
func (f *Faults) Resume(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rules[method]; r != nil {
		r.resume()
	}
}

// Clear removes every rule set for method; with AllMethods, the rules set
// for AllMethods. Attempts held by its Pause go on, and so do those queued
// by its Capacity (at once, to the handler); attempts already past a rule
// are not affected. Counts, records and Work are kept.
func (f *Faults) Clear(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rules[method]; r != nil {
		r.remove()
	}
	delete(f.rules, method)
}

// Reset removes every rule, as Clear does for each, and every count,
// record and Work.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		r.remove()
	}
	clear(f.rules)
	clear(f.counts)
	clear(f.work)
	f.records = nil
}

// Attempts returns the number of attempts on method that arrived since
// NewFaults or Reset, whatever became of them; with AllMethods, on every
// method.
func (f *Faults) Attempts(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attemptsLocked(method)
}

// attemptsLocked is Attempts. f.mu must be held.
func (f *Faults) attemptsLocked(method string) int {
	n := 0
	for m, byNum := range f.counts {
		if matches(method, m) {
			for _, c := range byNum {
				n += c
			}
		}
	}
	return n
}

// AttemptNumbers returns how many attempts on method (with AllMethods, on
// every method) arrived with each attempt number, read from the
// AttemptMetadataKey incoming metadata: 1 when it is absent, as on a first
// attempt, 0 when it is not a positive integer. The map is a copy.
func (f *Faults) AttemptNumbers(method string) map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[int]int)
	for m, byNum := range f.counts {
		if matches(method, m) {
			for k, c := range byNum {
				out[k] += c
			}
		}
	}
	return out
}

// rulesLocked returns the rules of method, creating them. f.mu must be held.
func (f *Faults) rulesLocked(method string) *rules { return entry(f.rules, method) }

// entry returns m[key], creating it (a zero V) if absent.
func entry[V any](m map[string]*V, key string) *V {
	v := m[key]
	if v == nil {
		v = new(V)
		m[key] = v
	}
	return v
}

func validMethod(fn, method string) error {
	if method == AllMethods {
		return nil
	}
	svc, m, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !strings.HasPrefix(method, "/") || !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		return invalid("%s: method: %q is neither a full method name (\"/pkg.Service/Method\") nor AllMethods", fn, method)
	}
	return nil
}

func validFraction(fn, field string, p float64) error {
	if !(p >= 0 && p <= 1) { // also rejects NaN
		return invalid("%s: %s: %v is not in [0, 1]", fn, field, p)
	}
	return nil
}

// attemptNumber reads the attempt number from incoming metadata.
func attemptNumber(md metadata.MD) int {
	v := md.Get(AttemptMetadataKey)
	if len(v) == 0 {
		return 1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// draw reports whether an event of probability p happens, drawing only when
// p is strictly between 0 and 1. f.mu must be held.
func draw(rng *rand.Rand, p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	default:
		return rng.Float64() < p
	}
}

// rulesFor returns the rules that apply to method, or nil. f.mu must be
// held.
func (f *Faults) rulesFor(method string) *rules {
	if r := f.rules[method]; r != nil {
		return r
	}
	return f.rules[AllMethods]
}

// begin counts and records an attempt, holds it while its method is
// paused, waits out its latency, picks its fault and, unless the fault
// ended it, does its work within the method's Capacity. A non-nil error
// ends the attempt at once with it. The rules are looked up again after each
// wait: they may have changed meanwhile.
func (f *Faults) begin(ctx context.Context, method string, stream bool) (*Record, Fault, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rec := &Record{Method: method, Number: attemptNumber(md), Metadata: md.Copy(), Arrived: time.Now()}
	rec.Deadline, _ = ctx.Deadline()

	f.mu.Lock()
	f.arriveLocked(rec)
	var paused chan struct{}
	if r := f.rulesFor(method); r != nil {
		paused = r.paused
	}
	f.mu.Unlock()
	if paused != nil {
		if err := wait(ctx, paused, 0); err != nil {
			return rec, Fault{}, err
		}
	}

	f.mu.Lock()
	var delay time.Duration
	if r := f.rulesFor(method); r != nil && r.latency > 0 && draw(f.rng, r.latencyFraction) {
		delay = r.latency
	}
	f.mu.Unlock()
	if err := wait(ctx, nil, delay); err != nil {
		return rec, Fault{}, err
	}

	f.mu.Lock()
	fault := f.pickLocked(method, stream)
	f.mu.Unlock()
	switch fault.kind {
	case noFault:
		return rec, fault, f.serve(ctx, method)
	case hangFault:
		<-ctx.Done()
		return rec, Fault{}, status.FromContextError(ctx.Err()).Err()
	}
	if err := wait(ctx, nil, fault.delay); err != nil {
		return rec, Fault{}, err
	}
	if fault.kind == failFault {
		if md := fault.trailer(); md != nil {
			// Fails only outside a server RPC; then there is no trailer.
			_ = grpc.SetTrailer(ctx, md)
		}
		return rec, Fault{}, fault.status()
	}
	return rec, fault, f.serve(ctx, method)
}

// wait waits until ch is closed (if not nil) and d has passed, or until
// ctx ends: then it returns ctx's status.
func wait(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	for ch != nil || timer != nil {
		select {
		case <-ch:
			ch = nil
		case <-timer:
			timer = nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return nil
}

// matches reports whether a query for method (AllMethods: every method)
// covers an attempt at m.
func matches(method, m string) bool { return method == AllMethods || m == method }

// pickLocked takes the fault of an attempt, if any. f.mu must be held.
func (f *Faults) pickLocked(method string, stream bool) Fault {
	r := f.rulesFor(method)
	if r == nil {
		return Fault{}
	}
	for i := range r.queue {
		q := &r.queue[i]
		if q.fault.streamOnly() && !stream {
			continue
		}
		fault := q.fault
		if q.n--; q.n == 0 {
			r.queue = slices.Delete(r.queue, i, i+1)
		}
		return fault
	}
	if r.fraction > 0 && (stream || !r.fractionFault.streamOnly()) && draw(f.rng, r.fraction) {
		return r.fractionFault
	}
	return Fault{}
}

// UnaryServerInterceptor returns the interceptor for unary methods. Each
// attempt goes through the steps of the package documentation: counted and
// recorded, held while paused, delayed by the method's latency, then given
// the first queued fault it can take or, failing that, the method's
// fraction.
func (f *Faults) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		rec, _, err := f.begin(ctx, info.FullMethod, false)
		var resp any
		if err == nil {
			resp, err = handler(ctx, req)
		}
		f.end(rec, err)
		return resp, err
	}
}

// StreamServerInterceptor returns the interceptor for streaming methods; it
// works as UnaryServerInterceptor does, and also applies FailAfterSent and
// FailAfterReceived.
func (f *Faults) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		rec, fault, err := f.begin(ss.Context(), info.FullMethod, true)
		switch {
		case err != nil:
		case fault.kind == noFault:
			err = handler(srv, ss)
		default:
			fs := &faultStream{ServerStream: ss, fault: fault}
			err = handler(srv, fs)
			if fs.fired.Load() {
				if md := fault.trailer(); md != nil {
					ss.SetTrailer(md)
				}
				err = fault.status()
			}
		}
		f.end(rec, err)
		return err
	}
}

// faultStream fails a stream after k messages in one direction. Only the
// handler's goroutine sends, and only one goroutine receives, as grpc-go
// requires; the counters are per direction.
type faultStream struct {
	grpc.ServerStream
	fault      Fault
	sent, recv int
	fired      atomic.Bool // set by SendMsg or RecvMsg, read after the handler
}

func (s *faultStream) SendMsg(m any) error {
	if s.fault.kind == failAfterSent {
		if s.sent >= s.fault.k {
			s.fired.Store(true)
			return s.fault.status()
		}
		if err := s.ServerStream.SendMsg(m); err != nil {
			return err
		}
		s.sent++
		return nil
	}
	return s.ServerStream.SendMsg(m)
}

func (s *faultStream) RecvMsg(m any) error {
	if s.fault.kind != failAfterReceived {
		return s.ServerStream.RecvMsg(m)
	}
	if s.fault.k > 0 && !s.fired.Load() {
		if err := s.ServerStream.RecvMsg(m); err != nil {
			return err
		}
		if s.recv++; s.recv < s.fault.k {
			return nil
		}
	}
	s.fired.Store(true)
	return s.fault.status()
}
