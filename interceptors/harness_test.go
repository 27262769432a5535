package interceptors

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/testserver"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	injectedMessage = "injected fault"
	noDeadline      = time.Duration(-1)
)

// harness is the shared test server, internal/testserver, with a client
// connected to it through the interceptors under test, and the blocking
// and bookkeeping these tests need on top, done by a testserver hook.
//
// Faults (failNext, failStreamAfter, failNextAfterReceived) are testserver
// faults with the message injectedMessage. A testserver attempt runs its
// hook (blocking) before it takes a fault, so an attempt that blocks and
// then ends through its context leaves its fault to the next one.
type harness struct {
	client testingv1.EchoServiceClient
	addr   string // set for TCP harnesses
	srv    *testserver.Server

	mu       sync.Mutex
	block    int  // number of next attempts that hang until their context ends
	blockAll bool // every attempt hangs until released or its context ends
	released chan struct{}
	dl       []time.Duration // time left at arrival, per attempt
	// streamFault, when set, decides per server-stream attempt whether it
	// fails before sending anything, or after how many messages (0: never).
	streamFault func() (before bool, after int)
	// pushback, when set, is sent as the pushback trailer of the failures
	// that failNext and failStreamAfter queue after it was set.
	pushback string
	// blockAttemptOne makes every first attempt hang until cancelled.
	blockAttemptOne bool
	// arrivals receives a value for every attempt that reached the server.
	arrivals chan struct{}
}

// newServer returns a harness whose server is created with opts and not
// yet listening; its hook is installed and the end of the test releases
// blocked attempts and closes the server.
func newServer(t testing.TB, opts ...testserver.Option) *harness {
	t.Helper()
	h := &harness{srv: testserver.New(opts...), released: make(chan struct{}), arrivals: make(chan struct{}, 1000)}
	h.srv.SetHook(h.hook)
	t.Cleanup(func() {
		h.releaseBlocked()
		h.srv.Close()
	})
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

// newHarnessDial serves over bufconn and dials "passthrough:///bufnet"
// with opts.
func newHarnessDial(t testing.TB, opts ...grpc.DialOption) *harness {
	t.Helper()
	h := newServer(t)
	if err := h.srv.ListenBufconn(); err != nil {
		t.Fatal(err)
	}
	h.dial(t, opts...)
	return h
}

// newTCPHarness serves on a loopback TCP port, addr, without a client.
func newTCPHarness(t testing.TB) *harness {
	t.Helper()
	h := newServer(t)
	if err := h.srv.ListenTCP(); err != nil {
		t.Fatal(err)
	}
	h.addr = h.srv.Addr()
	return h
}

// dial sets h.client to a new connection to the server, closed at the end
// of the test, and returns the connection.
func (h *harness) dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := h.srv.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.client = testingv1.NewEchoServiceClient(conn)
	return conn
}

// hook runs at the start of every attempt: it tells Echo's caller which
// attempt answered (header and trailer "served-attempt"), records the time
// left, signals arrivals, hangs as blockFirst, blockCalls and
// blockAttemptOne say, and applies streamFault.
func (h *harness) hook(ctx context.Context, method string, _ int64) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if method == testingv1.EchoService_Echo_FullMethodName {
		n := "1"
		if v := md.Get(AttemptMetadataKey); len(v) == 1 {
			n = v[0]
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("served-attempt", n))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("served-attempt", n))
	}
	left := noDeadline
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	h.mu.Lock()
	h.dl = append(h.dl, left)
	hang := h.blockAll || h.block > 0 || (h.blockAttemptOne && len(md.Get(AttemptMetadataKey)) == 0)
	if h.block > 0 {
		h.block--
	}
	released := h.released
	fault := h.streamFault
	h.mu.Unlock()
	select {
	case h.arrivals <- struct{}{}:
	default:
	}
	if hang {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-released:
		}
	}
	if fault != nil && method == testingv1.EchoService_ServerStream_FullMethodName {
		before, after := fault()
		if before {
			return status.Error(codes.Unavailable, injectedMessage)
		}
		if after > 0 {
			// Taken right after this hook by this attempt, or by another
			// server stream arriving at the same moment: the mix of faults
			// stays the same.
			h.srv.FailNextAfterSent(1, after, testserver.Fault{
				Method:  testingv1.EchoService_ServerStream_FullMethodName,
				Message: injectedMessage,
			})
		}
	}
	return nil
}

// fault is a failure with code, injectedMessage and the current pushback.
func (h *harness) fault(code codes.Code) testserver.Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	return testserver.Fault{Code: code, Message: injectedMessage, Pushback: h.pushback}
}

// failNext makes the next n attempts, of any method, fail with code at
// once, before anything is sent or received.
func (h *harness) failNext(n int, code codes.Code) {
	h.srv.FailNext(n, h.fault(code))
}

// failStreamAfter makes the next server or bidi stream fail with code after
// it sent n messages (n > 0: after commit).
func (h *harness) failStreamAfter(n int, code codes.Code) {
	h.srv.FailNextAfterSent(1, n, h.fault(code))
}

// failNextAfterReceived makes the next n client or bidi streams fail with
// code once they have received k messages, before answering the k-th: a
// failure before commit after the client sent something to replay.
func (h *harness) failNextAfterReceived(n, k int, code codes.Code) {
	h.srv.FailNextAfterReceived(n, k, h.fault(code))
}

// receivedMessages returns the client messages each client or bidi stream
// attempt received.
func (h *harness) receivedMessages() [][]string {
	var out [][]string
	for _, c := range h.srv.Calls() {
		switch c.Method {
		case testingv1.EchoService_ClientStream_FullMethodName, testingv1.EchoService_BidiStream_FullMethodName:
			out = append(out, c.Received)
		}
	}
	return out
}

// blockFirst makes the next n attempts hang until their context ends.
func (h *harness) blockFirst(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.block = n
}

// blockCalls makes every attempt hang until its context ends or the
// returned release is called.
func (h *harness) blockCalls() (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.blockAll = true
	return h.releaseBlocked
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

// releaseBlocked lets every attempt hanging in blockFirst or blockCalls
// return, and later ones pass.
func (h *harness) releaseBlocked() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.released:
	default:
		close(h.released)
	}
}

// reset forgets the attempts seen so far and drops every queued fault and
// pending block. pushback, streamFault, blockAttemptOne and a release
// stay.
func (h *harness) reset() {
	h.srv.ClearFaults() // also removes the hook
	h.srv.SetHook(h.hook)
	h.srv.Reset()
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.arrivals) > 0 {
		<-h.arrivals
	}
	h.block, h.blockAll, h.dl = 0, false, nil
}

func (h *harness) attempts() int {
	return int(h.srv.Attempts())
}

// calls returns the incoming metadata of every attempt, in arrival order.
func (h *harness) calls() []metadata.MD {
	var out []metadata.MD
	for _, c := range h.srv.Calls() {
		out = append(out, c.Metadata)
	}
	return out
}

// deadlines returns the time each attempt had left when it arrived, or
// noDeadline.
func (h *harness) deadlines() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.dl...)
}
