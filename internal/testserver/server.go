package testserver

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// PushbackTrailer is the trailer key a Fault's Pushback is sent under.
const PushbackTrailer = "grpc-retry-pushback-ms"

// defaultFaultMessage is the status message of a Fault without a Message.
const defaultFaultMessage = "testserver: injected fault"

// Fault describes an injected failure: where it applies and how the failed
// attempt ends. The zero Fault fails any method with codes.Unavailable.
type Fault struct {
	// Method restricts the fault to one full method name, such as
	// testingv1.EchoService_Echo_FullMethodName. Empty matches every method.
	Method string
	// Code is the status code of the failure. Zero (codes.OK) means
	// codes.Unavailable.
	Code codes.Code
	// Message is the status message. Empty means "testserver: injected fault".
	Message string
	// Pushback, if not empty, is sent verbatim as the grpc-retry-pushback-ms
	// trailer of the failure, so malformed and negative values can be sent
	// too. To send an empty value, set the trailer from a Hook with
	// grpc.SetTrailer.
	Pushback string
}

// err returns the status error of f and sets its pushback trailer on ctx.
func (f Fault) err(ctx context.Context) error {
	if f.Pushback != "" {
		// Only fails if ctx is not a server RPC context; then there is no
		// trailer to send anyway.
		_ = grpc.SetTrailer(ctx, metadata.Pairs(PushbackTrailer, f.Pushback))
	}
	code, msg := f.Code, f.Message
	if code == codes.OK {
		code = codes.Unavailable
	}
	if msg == "" {
		msg = defaultFaultMessage
	}
	return status.Error(code, msg)
}

// Hook is custom behaviour run at the start of every attempt, after it has
// been recorded and before latency and faults. ctx is the attempt's context,
// fullMethod its full method name and attempt its 1-based position among all
// attempts since the Server was created or last Reset. A non-nil error ends
// the attempt with that error (use status.Error to choose the code; other
// errors become codes.Unknown). ctx is the RPC's server context, and the
// hook runs before anything is sent, so it can set response headers and
// trailers with grpc.SetHeader and grpc.SetTrailer, on success and failure
// alike. A hook may block, for instance to let a test
// see that an attempt arrived, but must return once ctx is done. Stop,
// Restart and Close wait for running handlers, so a hook that wants to stop
// the server mid-call runs them on another goroutine and then waits for ctx:
//
//	go s.Stop()
//	<-ctx.Done()
//	return status.FromContextError(ctx.Err()).Err()
type Hook func(ctx context.Context, fullMethod string, attempt int64) error

// Call is the record of one attempt that reached the Server.
type Call struct {
	// Method is the full method name, such as
	// "/resilience.testing.v1.EchoService/Echo".
	Method string
	// Metadata is a copy of the incoming metadata.
	Metadata metadata.MD
	// Received lists the messages the server read, in order: the request's
	// message for Echo and ServerStream, every message received so far for
	// ClientStream and BidiStream.
	Received []string
	// Sent is the number of response messages sent. Echo and ClientStream
	// count their single response once the handler has produced it.
	Sent int
	// Done reports whether the handler has returned; Code is valid only then.
	Done bool
	// Code is the status code the handler returned.
	Code codes.Code

	deadline    time.Time
	hasDeadline bool
}

// Deadline returns the deadline of the attempt's context, with ok false if it
// had none, like context.Context.Deadline.
func (c Call) Deadline() (deadline time.Time, ok bool) {
	return c.deadline, c.hasDeadline
}

// clone returns a deep copy of c.
func (c *Call) clone() Call {
	out := *c
	out.Metadata = c.Metadata.Copy()
	out.Received = slices.Clone(c.Received)
	return out
}

// faultPoint says when a planned fault ends an attempt.
type faultPoint int

const (
	atStart       faultPoint = iota // before anything is sent or received
	afterSent                       // once k messages have been sent
	afterReceived                   // once k messages have been received
)

// rpcKind is the shape of an RPC.
type rpcKind int

const (
	unaryRPC rpcKind = iota
	serverStreamRPC
	clientStreamRPC
	bidiStreamRPC
)

// appliesTo reports whether a fault at p can happen on an RPC of kind k.
func (p faultPoint) appliesTo(k rpcKind) bool {
	switch p {
	case afterSent:
		return k == serverStreamRPC || k == bidiStreamRPC
	case afterReceived:
		return k == clientStreamRPC || k == bidiStreamRPC
	default:
		return true
	}
}

// plan is the fault an attempt will suffer.
type plan struct {
	point faultPoint
	k     int
	fault Fault
}

// queued is a plan waiting for n more attempts.
type queued struct {
	plan
	n int
}

// Server is a fault-injecting EchoService server. Create it with New; the zero
// value is not usable. See the package documentation for the order in which
// faults apply and for concurrency.
type Server struct {
	testingv1.UnimplementedEchoServiceServer

	cfg config

	mu              sync.Mutex // guards the fields below
	rng             *rand.Rand
	hook            Hook
	queue           []queued
	fraction        float64
	fractionFault   Fault
	latency         time.Duration
	latencyFraction float64
	total           int64
	perMethod       map[string]int64
	calls           []*Call

	srv serving // guarded by srv.mu
}

var _ testingv1.EchoServiceServer = (*Server)(nil)

// New returns a Server with no faults that is not yet serving; call
// ListenBufconn or ListenTCP, or register it on a grpc.Server of your own.
func New(opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	return &Server{
		cfg:       cfg,
		rng:       rand.New(cfg.rand),
		perMethod: make(map[string]int64),
	}
}

// FailNext makes the next n attempts that match f.Method fail with f at once,
// before anything is sent. Faults queued by FailNext, FailNextAfterSent and
// FailNextAfterReceived are taken in the order they were queued; an attempt
// takes at most one. It panics if n is negative.
func (s *Server) FailNext(n int, f Fault) {
	s.enqueue("FailNext", n, plan{point: atStart, fault: f})
}

// FailNextAfterSent makes the next n ServerStream or BidiStream attempts that
// match f.Method fail with f as soon as they have sent k messages (at once if
// k is 0), so the client has already seen a header and k messages. A stream
// that ends before sending k messages ends normally but uses up its share.
// Other kinds of RPC do not take this fault. It panics if n or k is negative.
func (s *Server) FailNextAfterSent(n, k int, f Fault) {
	if k < 0 {
		panic(fmt.Sprintf("testserver: FailNextAfterSent: negative message count %d", k))
	}
	s.enqueue("FailNextAfterSent", n, plan{point: afterSent, k: k, fault: f})
}

// FailNextAfterReceived makes the next n ClientStream or BidiStream attempts
// that match f.Method fail with f as soon as they have received k messages
// (at once if k is 0), before responding to the k-th: a client stream never
// replies, a bidi stream has echoed k-1 messages. A stream whose client
// half-closes before sending k messages ends normally but uses up its share.
// Other kinds of RPC do not take this fault. It panics if n or k is negative.
func (s *Server) FailNextAfterReceived(n, k int, f Fault) {
	if k < 0 {
		panic(fmt.Sprintf("testserver: FailNextAfterReceived: negative message count %d", k))
	}
	s.enqueue("FailNextAfterReceived", n, plan{point: afterReceived, k: k, fault: f})
}

func (s *Server) enqueue(name string, n int, p plan) {
	if n < 0 {
		panic(fmt.Sprintf("testserver: %s: negative attempt count %d", name, n))
	}
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, queued{plan: p, n: n})
}

// FailFraction makes a fraction p of the attempts that match f.Method, and
// take no queued fault, fail with f at once. p is in [0, 1]; 0 turns it off,
// 1 fails every such attempt. A later call replaces an earlier one. It panics
// if p is out of range.
func (s *Server) FailFraction(p float64, f Fault) {
	checkFraction("FailFraction", p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fraction, s.fractionFault = p, f
}

// SetLatency delays every attempt by d before it is handled; d <= 0 removes
// the delay. It is SetTailLatency(d, 1).
func (s *Server) SetLatency(d time.Duration) {
	s.SetTailLatency(d, 1)
}

// SetTailLatency delays a fraction p of attempts, in [0, 1], by d before they
// are handled, for "slow tail" scenarios. A delayed attempt whose context ends
// first ends with the context's status. A later call replaces an earlier one.
// It panics if p is out of range.
func (s *Server) SetTailLatency(d time.Duration, p float64) {
	checkFraction("SetTailLatency", p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency, s.latencyFraction = max(d, 0), p
}

func checkFraction(name string, p float64) {
	if !(p >= 0 && p <= 1) { // also rejects NaN
		panic(fmt.Sprintf("testserver: %s: fraction %v not in [0, 1]", name, p))
	}
}

// SetHook sets the Hook run at the start of every attempt; nil removes it.
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// ClearFaults removes every fault, the latency and the hook. Attempts already
// past those steps are not affected. Records and counts are kept.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = nil
	s.fraction, s.fractionFault = 0, Fault{}
	s.latency, s.latencyFraction = 0, 0
	s.hook = nil
}

// Attempts returns the number of attempts that reached the Server since it was
// created or last Reset.
func (s *Server) Attempts() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// MethodAttempts returns the number of attempts on fullMethod, such as
// testingv1.EchoService_Echo_FullMethodName, since the Server was created or
// last Reset.
func (s *Server) MethodAttempts(fullMethod string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perMethod[fullMethod]
}

// Calls returns a copy of the records of the attempts since the Server was
// created or last Reset, in arrival order. Records of running attempts show
// their progress so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.clone()
	}
	return out
}

// Reset clears counts and records; faults stay. Attempts still running keep
// updating their old records, which are no longer reported.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total = 0
	clear(s.perMethod)
	s.calls = nil
}

// attempt is the handler-side state of one attempt. Only its handler's
// goroutine uses it; rec is shared with Calls under s.mu.
type attempt struct {
	s     *Server
	ctx   context.Context
	rec   *Call
	plan  plan
	armed bool // plan is a stream fault still to happen
	sent  int
	recvd int
}

// begin records an attempt and applies hook, latency and faults. A non-nil
// error means the attempt must end with it at once. req is the request's
// message for RPCs with a single request.
func (s *Server) begin(ctx context.Context, method string, kind rpcKind, req *string) (*attempt, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rec := &Call{Method: method, Metadata: md.Copy()}
	rec.deadline, rec.hasDeadline = ctx.Deadline()
	if req != nil {
		rec.Received = []string{*req}
	}
	a := &attempt{s: s, ctx: ctx, rec: rec}

	s.mu.Lock()
	s.total++
	n := s.total
	s.perMethod[method]++
	s.calls = append(s.calls, rec)
	hook := s.hook
	s.mu.Unlock()

	if hook != nil {
		if err := hook(ctx, method, n); err != nil {
			return a, err
		}
	}

	s.mu.Lock()
	delay := time.Duration(0)
	if s.latency > 0 && s.draw(s.latencyFraction) {
		delay = s.latency
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return a, status.FromContextError(ctx.Err()).Err()
		}
	}

	s.mu.Lock()
	p, ok := s.pick(method, kind)
	s.mu.Unlock()
	if !ok {
		return a, nil
	}
	if p.point == atStart || p.k == 0 {
		return a, p.fault.err(ctx)
	}
	a.plan, a.armed = p, true
	return a, nil
}

// draw reports whether an event of probability p happens. s.mu must be held.
func (s *Server) draw(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	default:
		return s.rng.Float64() < p
	}
}

// pick takes the fault for an attempt, if any. s.mu must be held.
func (s *Server) pick(method string, kind rpcKind) (plan, bool) {
	for i := range s.queue {
		q := &s.queue[i]
		if (q.fault.Method != "" && q.fault.Method != method) || !q.point.appliesTo(kind) {
			continue
		}
		p := q.plan
		if q.n--; q.n == 0 {
			s.queue = slices.Delete(s.queue, i, i+1)
		}
		return p, true
	}
	f := s.fractionFault
	if s.fraction > 0 && (f.Method == "" || f.Method == method) && s.draw(s.fraction) {
		return plan{point: atStart, fault: f}, true
	}
	return plan{}, false
}

// sentOne notes that a response message was sent and returns the planned
// fault if it is due now.
func (a *attempt) sentOne() error {
	a.sent++
	a.s.mu.Lock()
	a.rec.Sent = a.sent
	a.s.mu.Unlock()
	if a.armed && a.plan.point == afterSent && a.sent == a.plan.k {
		return a.plan.fault.err(a.ctx)
	}
	return nil
}

// receivedOne records a received message and returns the planned fault if it
// is due now.
func (a *attempt) receivedOne(msg string) error {
	a.recvd++
	a.s.mu.Lock()
	a.rec.Received = append(a.rec.Received, msg)
	a.s.mu.Unlock()
	if a.armed && a.plan.point == afterReceived && a.recvd == a.plan.k {
		return a.plan.fault.err(a.ctx)
	}
	return nil
}

// end records the outcome of the attempt and returns err.
func (a *attempt) end(err error) error {
	a.s.mu.Lock()
	a.rec.Done = true
	a.rec.Code = status.Code(err)
	a.s.mu.Unlock()
	return err
}

// Echo returns the request's message.
func (s *Server) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	msg := req.GetMessage()
	a, err := s.begin(ctx, testingv1.EchoService_Echo_FullMethodName, unaryRPC, &msg)
	if err != nil {
		return nil, a.end(err)
	}
	if err := a.sentOne(); err != nil {
		return nil, a.end(err)
	}
	return &testingv1.EchoResponse{Message: msg}, a.end(nil)
}

// ServerStream sends req.Count responses numbered from 0, each with the
// request's message.
func (s *Server) ServerStream(req *testingv1.ServerStreamRequest, stream grpc.ServerStreamingServer[testingv1.ServerStreamResponse]) error {
	msg := req.GetMessage()
	a, err := s.begin(stream.Context(), testingv1.EchoService_ServerStream_FullMethodName, serverStreamRPC, &msg)
	if err != nil {
		return a.end(err)
	}
	for i := range req.GetCount() {
		if err := stream.Send(&testingv1.ServerStreamResponse{Sequence: i, Message: msg}); err != nil {
			return a.end(err)
		}
		if err := a.sentOne(); err != nil {
			return a.end(err)
		}
	}
	return a.end(nil)
}

// ClientStream receives messages until the client half-closes and replies
// with all of them in order.
func (s *Server) ClientStream(stream grpc.ClientStreamingServer[testingv1.ClientStreamRequest, testingv1.ClientStreamResponse]) error {
	a, err := s.begin(stream.Context(), testingv1.EchoService_ClientStream_FullMethodName, clientStreamRPC, nil)
	if err != nil {
		return a.end(err)
	}
	var msgs []string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.end(err)
		}
		msgs = append(msgs, m.GetMessage())
		if err := a.receivedOne(m.GetMessage()); err != nil {
			return a.end(err)
		}
	}
	if err := stream.SendAndClose(&testingv1.ClientStreamResponse{Messages: msgs}); err != nil {
		return a.end(err)
	}
	return a.end(a.sentOne())
}

// BidiStream echoes every message it receives, with its sequence number from
// 0, until the client half-closes.
func (s *Server) BidiStream(stream grpc.BidiStreamingServer[testingv1.BidiStreamRequest, testingv1.BidiStreamResponse]) error {
	a, err := s.begin(stream.Context(), testingv1.EchoService_BidiStream_FullMethodName, bidiStreamRPC, nil)
	if err != nil {
		return a.end(err)
	}
	for seq := int32(0); ; seq++ {
		m, err := stream.Recv()
		if err == io.EOF {
			return a.end(nil)
		}
		if err != nil {
			return a.end(err)
		}
		if err := a.receivedOne(m.GetMessage()); err != nil {
			return a.end(err)
		}
		if err := stream.Send(&testingv1.BidiStreamResponse{Message: m.GetMessage(), Sequence: seq}); err != nil {
			return a.end(err)
		}
		if err := a.sentOne(); err != nil {
			return a.end(err)
		}
	}
}
