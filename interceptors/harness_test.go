package interceptors

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	injectedMessage = "injected fault"
	noDeadline      = time.Duration(-1)
	// memTarget is the target of the clients of in-memory servers: their
	// dialer ignores it; breaker keys and telemetry name it.
	memTarget  = "passthrough:///bufnet"
	allMethods = resiliencetest.AllMethods
)

// serveEcho serves resiliencetest's EchoServer on lis with opts until the
// end of the test; Stop waits for Serve and the handlers to return.
func serveEcho(t testing.TB, lis *resiliencetest.Listener, opts ...grpc.ServerOption) {
	gs := grpc.NewServer(append(opts, grpc.WaitForHandlers(true))...)
	testingv1.RegisterEchoServiceServer(gs, resiliencetest.EchoServer{})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
}

// dialListener returns a client of lis through opts, closed at the end of
// the test.
func dialListener(t testing.TB, lis *resiliencetest.Listener, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	target := lis.Target()
	if lis.Addr().Network() == "memory" {
		target = memTarget
	}
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(lis.DialContext),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newFaults(t testing.TB, opts ...resiliencetest.Option) *resiliencetest.Faults {
	t.Helper()
	f, err := resiliencetest.NewFaults(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// harness is resiliencetest's EchoServer behind its Faults, with a client
// connected to it through the interceptors under test, and what these
// tests need on top, done by two server interceptors of their own: the
// stream one, outside Faults, records the messages of client and bidi
// streams and applies streamFault; the unary one, inside, tells Echo's
// caller which attempt answered (header and trailer "served-attempt") and
// applies blockAttemptOne.
//
// Faults are queued for every method with the message injectedMessage;
// blocked attempts are a Pause of every method.
type harness struct {
	client testingv1.EchoServiceClient
	conn   *grpc.ClientConn
	addr   string // set for TCP harnesses
	faults *resiliencetest.Faults

	mu sync.Mutex
	// streamFault, when set, decides per server-stream attempt whether it
	// fails before sending anything, or after how many messages (0: never).
	streamFault func() (before bool, after int)
	// pushback, when set, is sent as the pushback trailer of the failures
	// that failNext and failStreamAfter queue after it was set.
	pushback string
	// blockAttemptOne makes every first unary attempt hang until cancelled.
	blockAttemptOne bool
	received        [][]string // per client or bidi stream attempt, in arrival order
}

// newServer returns a harness serving on lis, with opts added to the
// server's, without a client.
func newServer(t testing.TB, lis *resiliencetest.Listener, opts ...grpc.ServerOption) *harness {
	t.Helper()
	h := &harness{faults: newFaults(t)}
	opts = append(opts, grpc.ChainStreamInterceptor(h.streamHook))
	opts = append(opts, h.faults.ServerOptions()...)
	serveEcho(t, lis, append(opts, grpc.ChainUnaryInterceptor(h.unaryHook))...)
	return h
}

func newHarness(t testing.TB, opts ...Option) *harness {
	t.Helper()
	m, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessDial(t, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()), grpc.WithStreamInterceptor(m.StreamClientInterceptor()))
}

// newHarnessDial serves in memory and dials memTarget with opts.
func newHarnessDial(t testing.TB, opts ...grpc.DialOption) *harness {
	t.Helper()
	lis := resiliencetest.ListenMemory()
	h := newServer(t, lis)
	h.dial(t, lis, opts...)
	return h
}

// newTCPHarness serves on a loopback TCP port, addr, without a client.
func newTCPHarness(t testing.TB) *harness {
	t.Helper()
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	h := newServer(t, lis)
	h.addr = lis.Addr().String()
	return h
}

// dial sets h.conn and h.client to a new connection to lis, closed at the
// end of the test.
func (h *harness) dial(t testing.TB, lis *resiliencetest.Listener, opts ...grpc.DialOption) {
	t.Helper()
	h.conn = dialListener(t, lis, opts...)
	h.client = testingv1.NewEchoServiceClient(h.conn)
}

func (h *harness) unaryHook(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if info.FullMethod == testingv1.EchoService_Echo_FullMethodName {
		n := "1"
		if v := md.Get(AttemptMetadataKey); len(v) == 1 {
			n = v[0]
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("served-attempt", n))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("served-attempt", n))
	}
	h.mu.Lock()
	hang := h.blockAttemptOne && len(md.Get(AttemptMetadataKey)) == 0
	h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

func (h *harness) streamHook(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	switch info.FullMethod {
	case testingv1.EchoService_ServerStream_FullMethodName:
		h.mu.Lock()
		fault := h.streamFault
		h.mu.Unlock()
		if fault == nil {
			break
		}
		// Taken by this attempt, or by another server stream arriving at
		// the same moment: the mix of faults stays the same.
		switch before, after := fault(); {
		case before:
			_ = h.faults.InjectNext(allMethods, 1, resiliencetest.Fail(codes.Unavailable).WithMessage(injectedMessage))
		case after > 0:
			_ = h.faults.InjectNext(allMethods, 1, resiliencetest.FailAfterSent(after, codes.Unavailable).WithMessage(injectedMessage))
		}
	case testingv1.EchoService_ClientStream_FullMethodName, testingv1.EchoService_BidiStream_FullMethodName:
		h.mu.Lock()
		ss = &recordingStream{ServerStream: ss, h: h, i: len(h.received)}
		h.received = append(h.received, nil)
		h.mu.Unlock()
	}
	return handler(srv, ss)
}

// recordingStream records the messages its attempt receives, also the one
// a FailAfterReceived fault reads and fails on.
type recordingStream struct {
	grpc.ServerStream
	h *harness
	i int
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if msg, ok := m.(interface{ GetMessage() string }); ok && err == nil {
		s.h.mu.Lock()
		s.h.received[s.i] = append(s.h.received[s.i], msg.GetMessage())
		s.h.mu.Unlock()
	}
	return err
}

// fault is f with injectedMessage and the current pushback.
func (h *harness) fault(f resiliencetest.Fault) resiliencetest.Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	f = f.WithMessage(injectedMessage)
	if h.pushback != "" {
		f = f.WithPushback(h.pushback)
	}
	return f
}

func (h *harness) inject(n int, f resiliencetest.Fault) {
	if err := h.faults.InjectNext(allMethods, n, h.fault(f)); err != nil {
		panic(err) // a bad fault in a test
	}
}

// failAll makes every attempt, of any method, that takes no queued fault
// suffer f.
func (h *harness) failAll(f resiliencetest.Fault) {
	if err := h.faults.InjectFraction(allMethods, 1, h.fault(f)); err != nil {
		panic(err) // a bad fault in a test
	}
}

// failNext makes the next n attempts, of any method, fail with code at
// once, before anything is sent or received.
func (h *harness) failNext(n int, code codes.Code) {
	h.inject(n, resiliencetest.Fail(code))
}

// failStreamAfter makes the next stream fail with code after it sent n
// messages (n > 0: after commit).
func (h *harness) failStreamAfter(n int, code codes.Code) {
	h.inject(1, resiliencetest.FailAfterSent(n, code))
}

// failNextAfterReceived makes the next n streams fail with code once they
// have received k messages, before answering the k-th: a failure before
// commit after the client sent something to replay.
func (h *harness) failNextAfterReceived(n, k int, code codes.Code) {
	h.inject(n, resiliencetest.FailAfterReceived(k, code))
}

// receivedMessages returns the client messages each client or bidi stream
// attempt received.
func (h *harness) receivedMessages() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([][]string, len(h.received))
	for i, r := range h.received {
		out[i] = append([]string(nil), r...)
	}
	return out
}

// blockFirst makes the next n attempts hang until their context ends.
func (h *harness) blockFirst(n int) {
	h.inject(n, resiliencetest.Hang())
}

// blockCalls makes every attempt hang until its context ends or the
// returned release is called.
func (h *harness) blockCalls() (release func()) {
	if err := h.faults.Pause(allMethods); err != nil {
		panic(err)
	}
	return h.releaseBlocked
}

// releaseBlocked lets every attempt held by blockCalls go on, and later
// ones pass.
func (h *harness) releaseBlocked() {
	h.faults.Resume(allMethods)
}

// waitAttempts waits until n attempts reached the server.
func (h *harness) waitAttempts(t testing.TB, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := h.faults.WaitAttempts(ctx, allMethods, n); err != nil {
		t.Fatal(err)
	}
}

// markTroubled makes one call fail (NotFound, not retried), so that the
// target counts as troubled and first attempts read server pushback.
func (h *harness) markTroubled(t testing.TB) {
	t.Helper()
	h.failNext(1, codes.NotFound)
	if _, err := h.client.Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("markTroubled: %v, want NotFound", err)
	}
	h.reset()
}

// reset forgets the attempts seen so far and drops every queued fault and
// block. pushback, streamFault and blockAttemptOne stay.
func (h *harness) reset() {
	h.faults.Reset()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.received = nil
}

func (h *harness) attempts() int {
	return h.faults.Attempts(allMethods)
}

// calls returns the incoming metadata of every attempt, in arrival order.
func (h *harness) calls() []metadata.MD {
	var out []metadata.MD
	for _, r := range h.faults.Records(allMethods) {
		out = append(out, r.Metadata)
	}
	return out
}

// deadlines returns the time each attempt had left when it arrived, or
// noDeadline.
func (h *harness) deadlines() []time.Duration {
	var out []time.Duration
	for _, r := range h.faults.Records(allMethods) {
		left := noDeadline
		if !r.Deadline.IsZero() {
			left = r.Deadline.Sub(r.Arrived)
		}
		out = append(out, left)
	}
	return out
}
