package interceptors

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	injectedMessage = "injected fault"
	noDeadline      = time.Duration(-1)
)

// harness is an EchoService server with fault injection and a client
// connected to it through the interceptors under test.
type harness struct {
	client testingv1.EchoServiceClient
	addr   string // set for TCP harnesses

	mu        sync.Mutex
	failQueue []codes.Code
	block     int  // number of next attempts that hang until their context ends
	blockAll  bool // every attempt hangs until released or its context ends
	released  chan struct{}
	md        []metadata.MD
	dl        []time.Duration
	// failAfter, when > 0, makes the next stream fail with failAfterCode
	// after sending that many messages (after commit).
	failAfter     int
	failAfterCode codes.Code
	received      [][]string // client messages received, per stream attempt
	// streamFault, when set, decides per server-stream attempt whether it
	// fails before sending anything, or after how many messages (0: never).
	streamFault func() (before bool, after int)
	// pushback, when set, is sent as the pushback trailer of failures.
	pushback string
	// blockAttemptOne makes every first attempt hang until cancelled.
	blockAttemptOne bool
	// arrivals receives a value for every attempt that reached the server.
	arrivals chan struct{}
}

type echoServer struct {
	testingv1.UnimplementedEchoServiceServer
	h *harness
}

func (s echoServer) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	// Tell the client which attempt answered, in the header and trailer.
	md, _ := metadata.FromIncomingContext(ctx)
	n := "1"
	if v := md.Get(AttemptMetadataKey); len(v) == 1 {
		n = v[0]
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("served-attempt", n))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("served-attempt", n))
	if err := s.h.arrive(ctx); err != nil {
		return nil, err
	}
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

func (s echoServer) ServerStream(req *testingv1.ServerStreamRequest, stream testingv1.EchoService_ServerStreamServer) error {
	if err := s.h.arrive(stream.Context()); err != nil {
		return err
	}
	failAfter, code := s.h.takeFailAfter()
	s.h.mu.Lock()
	fault := s.h.streamFault
	s.h.mu.Unlock()
	if fault != nil {
		before, after := fault()
		if before {
			return status.Error(codes.Unavailable, injectedMessage)
		}
		failAfter, code = after, codes.Unavailable
	}
	for i := range req.GetCount() {
		if failAfter > 0 && int(i) == failAfter {
			return status.Error(code, injectedMessage)
		}
		if err := stream.Send(&testingv1.ServerStreamResponse{Sequence: i, Message: req.GetMessage()}); err != nil {
			return err
		}
	}
	return nil
}

func (s echoServer) ClientStream(stream testingv1.EchoService_ClientStreamServer) error {
	idx := s.h.startReceiving()
	var got []string
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got = append(got, msg.GetMessage())
		s.h.recordReceived(idx, msg.GetMessage())
	}
	// Fail only once everything was received, so the test can check that
	// the retry replays every message in order.
	if err := s.h.arrive(stream.Context()); err != nil {
		return err
	}
	return stream.SendAndClose(&testingv1.ClientStreamResponse{Messages: got})
}

func (s echoServer) BidiStream(stream testingv1.EchoService_BidiStreamServer) error {
	idx := s.h.startReceiving()
	if err := s.h.arrive(stream.Context()); err != nil {
		// Fail before answering, but after the first message arrived, so
		// that the message had to be replayed.
		if msg, rerr := stream.Recv(); rerr == nil {
			s.h.recordReceived(idx, msg.GetMessage())
		}
		return err
	}
	failAfter, code := s.h.takeFailAfter()
	for seq := int32(0); ; seq++ {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s.h.recordReceived(idx, msg.GetMessage())
		if failAfter > 0 && int(seq) == failAfter {
			return status.Error(code, injectedMessage)
		}
		if err := stream.Send(&testingv1.BidiStreamResponse{Message: msg.GetMessage(), Sequence: seq}); err != nil {
			return err
		}
	}
}

func (h *harness) startReceiving() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.received = append(h.received, nil)
	return len(h.received) - 1
}

func (h *harness) recordReceived(idx int, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.received[idx] = append(h.received[idx], msg)
}

func (h *harness) takeFailAfter() (int, codes.Code) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, c := h.failAfter, h.failAfterCode
	h.failAfter = 0
	return n, c
}

// failStreamAfter makes the next stream fail with code after it sent n
// messages (n > 0: after commit).
func (h *harness) failStreamAfter(n int, code codes.Code) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failAfter, h.failAfterCode = n, code
}

// receivedMessages returns the client messages each stream attempt
// received.
func (h *harness) receivedMessages() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([][]string, len(h.received))
	for i, r := range h.received {
		out[i] = append([]string(nil), r...)
	}
	return out
}

func (h *harness) arrive(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	left := noDeadline
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	h.mu.Lock()
	h.md = append(h.md, md)
	h.dl = append(h.dl, left)
	var code codes.Code
	if len(h.failQueue) > 0 {
		code, h.failQueue = h.failQueue[0], h.failQueue[1:]
	}
	hang := h.blockAll || h.block > 0 || (h.blockAttemptOne && len(md.Get(AttemptMetadataKey)) == 0)
	if h.block > 0 {
		h.block--
	}
	released := h.released
	pushback := h.pushback
	h.mu.Unlock()
	select {
	case h.arrivals <- struct{}{}:
	default:
	}
	if code != codes.OK && pushback != "" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(PushbackMetadataKey, pushback))
	}
	if hang {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-released:
		}
	}
	if code != codes.OK {
		return status.Error(code, injectedMessage)
	}
	return nil
}

func newHarness(t testing.TB, opts ...Option) *harness {
	t.Helper()
	m, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessDial(t, grpc.WithUnaryInterceptor(m.UnaryClientInterceptor()), grpc.WithStreamInterceptor(m.StreamClientInterceptor()))
}

func newHarnessDial(t testing.TB, opts ...grpc.DialOption) *harness {
	t.Helper()
	h := &harness{released: make(chan struct{}), arrivals: make(chan struct{}, 1000)}
	lis := bufconn.Listen(1 << 20)
	h.serve(t, lis)
	all := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///bufnet", all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.client = testingv1.NewEchoServiceClient(conn)
	return h
}

func newTCPHarness(t testing.TB) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{released: make(chan struct{}), addr: lis.Addr().String()}
	h.serve(t, lis)
	return h
}

func (h *harness) serve(t testing.TB, lis net.Listener) {
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, echoServer{h: h})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		h.mu.Lock()
		select {
		case <-h.released:
		default:
			close(h.released)
		}
		h.mu.Unlock()
		srv.Stop()
		<-done
	})
}

// failNext makes the next n attempts fail with code.
func (h *harness) failNext(n int, code codes.Code) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range n {
		h.failQueue = append(h.failQueue, code)
	}
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
	ch := h.released
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
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

func (h *harness) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.arrivals) > 0 {
		<-h.arrivals
	}
	h.failQueue, h.block, h.blockAll, h.md, h.dl, h.received, h.failAfter = nil, 0, false, nil, nil, nil, 0
}

func (h *harness) attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.md)
}

func (h *harness) calls() []metadata.MD {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]metadata.MD(nil), h.md...)
}

func (h *harness) deadlines() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.dl...)
}
