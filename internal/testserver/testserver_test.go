package testserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/testserver"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	echoMethod   = testingv1.EchoService_Echo_FullMethodName
	serverMethod = testingv1.EchoService_ServerStream_FullMethodName
	clientMethod = testingv1.EchoService_ClientStream_FullMethodName
	bidiMethod   = testingv1.EchoService_BidiStream_FullMethodName
)

// wireCounter is a client stats handler counting response headers and
// messages, to tell whether a failed RPC was committed. A trailers-only
// response produces no InHeader event.
type wireCounter struct {
	headers  atomic.Int64
	payloads atomic.Int64
}

func (w *wireCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (w *wireCounter) HandleConn(context.Context, stats.ConnStats) {}
func (w *wireCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.InHeader:
		w.headers.Add(1)
	case *stats.InPayload:
		w.payloads.Add(1)
	}
}

// reset returns the counts so far and sets them to zero.
func (w *wireCounter) reset() (headers, payloads int64) {
	return w.headers.Swap(0), w.payloads.Swap(0)
}

type fixture struct {
	srv    *testserver.Server
	conn   *grpc.ClientConn
	client testingv1.EchoServiceClient
	wire   *wireCounter
}

// start serves a new Server over bufconn (or TCP) and connects a client; both
// are closed at the end of the test.
func start(t *testing.T, tcp bool, opts ...testserver.Option) *fixture {
	t.Helper()
	srv := testserver.New(opts...)
	t.Cleanup(srv.Close)
	listen := srv.ListenBufconn
	if tcp {
		listen = srv.ListenTCP
	}
	if err := listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	wire := &wireCounter{}
	conn, err := srv.NewClient(grpc.WithStatsHandler(wire))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fixture{srv: srv, conn: conn, client: testingv1.NewEchoServiceClient(conn), wire: wire}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func echo(ctx context.Context, f *fixture, msg string, opts ...grpc.CallOption) (string, error) {
	resp, err := f.client.Echo(ctx, &testingv1.EchoRequest{Message: msg}, opts...)
	return resp.GetMessage(), err
}

// wantStatus fails the test unless err has the code and, if msg is not
// empty, the message.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("%s: got error %v, want code %v message %q", what, err, code, msg)
	}
}

// serverStream reads a whole server stream and returns the messages and the
// final error (nil at a clean end).
func serverStream(ctx context.Context, f *fixture, count int32, msg string) ([]*testingv1.ServerStreamResponse, metadata.MD, error) {
	stream, err := f.client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: count, Message: msg})
	if err != nil {
		return nil, nil, err
	}
	var got []*testingv1.ServerStreamResponse
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return got, stream.Trailer(), nil
		}
		if err != nil {
			return got, stream.Trailer(), err
		}
		got = append(got, m)
	}
}

// clientStream sends msgs and returns the reply.
func clientStream(ctx context.Context, f *fixture, msgs ...string) ([]string, error) {
	stream, err := f.client.ClientStream(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := stream.Send(&testingv1.ClientStreamRequest{Message: m}); err != nil {
			break // io.EOF: the server ended the stream; CloseAndRecv has the status
		}
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetMessages(), err
}

func TestHandlersEcho(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	if got, err := echo(ctx, f, "hello"); err != nil || got != "hello" {
		t.Fatalf("Echo: got %q, %v, want %q, nil", got, err, "hello")
	}

	got, _, err := serverStream(ctx, f, 3, "m")
	if err != nil {
		t.Fatalf("ServerStream: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("ServerStream: got %d messages, want 3", len(got))
	}
	for i, m := range got {
		if m.GetSequence() != int32(i) || m.GetMessage() != "m" {
			t.Errorf("ServerStream message %d: got (%d, %q), want (%d, %q)", i, m.GetSequence(), m.GetMessage(), i, "m")
		}
	}

	msgs, err := clientStream(ctx, f, "a", "b", "c")
	if err != nil || !slices.Equal(msgs, []string{"a", "b", "c"}) {
		t.Fatalf("ClientStream: got %q, %v, want [a b c], nil", msgs, err)
	}

	bidi, err := f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	for i, m := range []string{"x", "y", "z"} {
		if err := bidi.Send(&testingv1.BidiStreamRequest{Message: m}); err != nil {
			t.Fatalf("BidiStream Send %d: %v", i, err)
		}
		r, err := bidi.Recv()
		if err != nil || r.GetMessage() != m || r.GetSequence() != int32(i) {
			t.Fatalf("BidiStream Recv %d: got (%q, %d), %v, want (%q, %d), nil", i, r.GetMessage(), r.GetSequence(), err, m, i)
		}
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatalf("BidiStream CloseSend: %v", err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("BidiStream final Recv: got %v, want io.EOF", err)
	}

	f.srv.Stop() // waits for handlers, so every record is complete
	want := []testserver.Call{
		{Method: echoMethod, Received: []string{"hello"}, Sent: 1, Done: true},
		{Method: serverMethod, Received: []string{"m"}, Sent: 3, Done: true},
		{Method: clientMethod, Received: []string{"a", "b", "c"}, Sent: 1, Done: true},
		{Method: bidiMethod, Received: []string{"x", "y", "z"}, Sent: 3, Done: true},
	}
	checkCalls(t, f.srv.Calls(), want)
	if got := f.srv.Attempts(); got != 4 {
		t.Errorf("Attempts: got %d, want 4", got)
	}
	for _, m := range []string{echoMethod, serverMethod, clientMethod, bidiMethod} {
		if got := f.srv.MethodAttempts(m); got != 1 {
			t.Errorf("MethodAttempts(%s): got %d, want 1", m, got)
		}
	}
}

// checkCalls compares the records' Method, Received, Sent, Done and Code.
func checkCalls(t *testing.T, got, want []testserver.Call) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("Calls: got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Method != w.Method || !slices.Equal(g.Received, w.Received) || g.Sent != w.Sent || g.Done != w.Done || g.Code != w.Code {
			t.Errorf("Calls[%d]: got {%s %q sent=%d done=%v %v}, want {%s %q sent=%d done=%v %v}",
				i, g.Method, g.Received, g.Sent, g.Done, g.Code, w.Method, w.Received, w.Sent, w.Done, w.Code)
		}
	}
}

func TestFailNext(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	f.srv.FailNext(2, testserver.Fault{Code: codes.ResourceExhausted, Message: "busy"})
	for i := range 2 {
		_, err := echo(ctx, f, "a")
		wantStatus(t, fmt.Sprintf("Echo %d", i), err, codes.ResourceExhausted, "busy")
	}
	if headers, payloads := f.wire.reset(); headers != 0 || payloads != 0 {
		t.Errorf("failed attempts: got %d headers and %d messages, want none (trailers-only)", headers, payloads)
	}
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo 3: got %v, want success", err)
	}
	if got := f.srv.Attempts(); got != 3 {
		t.Errorf("Attempts: got %d, want 3", got)
	}

	// The zero Fault is Unavailable with a default message, and applies to
	// streams before anything is sent.
	f.wire.reset()
	f.srv.FailNext(1, testserver.Fault{})
	got, _, err := serverStream(ctx, f, 3, "m")
	wantStatus(t, "ServerStream", err, codes.Unavailable, "testserver: injected fault")
	if len(got) != 0 {
		t.Errorf("ServerStream: got %d messages, want 0", len(got))
	}
	if headers, payloads := f.wire.reset(); headers != 0 || payloads != 0 {
		t.Errorf("failed stream: got %d headers and %d messages, want none (trailers-only)", headers, payloads)
	}

	f.srv.Stop()
	calls := f.srv.Calls()
	var codesGot []codes.Code
	for _, c := range calls {
		codesGot = append(codesGot, c.Code)
	}
	wantCodes := []codes.Code{codes.ResourceExhausted, codes.ResourceExhausted, codes.OK, codes.Unavailable}
	if !slices.Equal(codesGot, wantCodes) {
		t.Errorf("Calls codes: got %v, want %v", codesGot, wantCodes)
	}
}

func TestFailNextMethodAndOrder(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	// Queued faults are taken in order, each by the first attempt it matches.
	f.srv.FailNext(1, testserver.Fault{Method: serverMethod, Code: codes.Internal})
	f.srv.FailNext(1, testserver.Fault{Code: codes.Aborted})

	// Echo skips the ServerStream-only fault and takes the second one.
	_, err := echo(ctx, f, "a")
	wantStatus(t, "Echo", err, codes.Aborted, "")
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("second Echo: got %v, want success", err)
	}
	_, _, err = serverStream(ctx, f, 1, "m")
	wantStatus(t, "ServerStream", err, codes.Internal, "")
	if _, _, err := serverStream(ctx, f, 1, "m"); err != nil {
		t.Fatalf("second ServerStream: got %v, want success", err)
	}
	if got, want := f.srv.MethodAttempts(echoMethod), int64(2); got != want {
		t.Errorf("MethodAttempts(Echo): got %d, want %d", got, want)
	}
	if got, want := f.srv.MethodAttempts(serverMethod), int64(2); got != want {
		t.Errorf("MethodAttempts(ServerStream): got %d, want %d", got, want)
	}

	// ClearFaults drops queued faults.
	f.srv.FailNext(5, testserver.Fault{})
	f.srv.ClearFaults()
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo after ClearFaults: got %v, want success", err)
	}
}

func TestPushback(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)
	for _, v := range []string{"250", "-1", "not-a-number"} {
		f.srv.FailNext(1, testserver.Fault{Pushback: v})
		var trailer metadata.MD
		_, err := echo(ctx, f, "a", grpc.Trailer(&trailer))
		wantStatus(t, "Echo", err, codes.Unavailable, "")
		if got := trailer.Get(testserver.PushbackTrailer); !slices.Equal(got, []string{v}) {
			t.Errorf("pushback trailer: got %q, want [%q]", got, v)
		}
	}

	// No Pushback, no trailer.
	f.srv.FailNext(1, testserver.Fault{})
	var trailer metadata.MD
	_, err := echo(ctx, f, "a", grpc.Trailer(&trailer))
	wantStatus(t, "Echo", err, codes.Unavailable, "")
	if got := trailer.Get(testserver.PushbackTrailer); got != nil {
		t.Errorf("pushback trailer without Pushback: got %q, want none", got)
	}

	// Stream faults after commit carry it too.
	f.srv.FailNextAfterSent(1, 1, testserver.Fault{Pushback: "10"})
	_, tr, err := serverStream(ctx, f, 3, "m")
	wantStatus(t, "ServerStream", err, codes.Unavailable, "")
	if got := tr.Get(testserver.PushbackTrailer); !slices.Equal(got, []string{"10"}) {
		t.Errorf("stream pushback trailer: got %q, want [10]", got)
	}
}

func TestFailFractionReproducible(t *testing.T) {
	const (
		seed = 42
		p    = 0.3
		n    = 60
	)
	// The documented draw: one Float64 from PCG(seed, seed) per attempt.
	rng := rand.New(rand.NewPCG(seed, seed))
	var want []bool
	for range n {
		want = append(want, rng.Float64() < p)
	}

	pattern := func() []bool {
		f := start(t, false, testserver.WithSeed(seed))
		f.srv.FailFraction(p, testserver.Fault{Code: codes.Unavailable})
		ctx := ctxT(t)
		var got []bool
		for i := range n {
			_, err := echo(ctx, f, "a")
			if err != nil {
				wantStatus(t, fmt.Sprintf("Echo %d", i), err, codes.Unavailable, "")
			}
			got = append(got, err != nil)
		}
		return got
	}
	got1, got2 := pattern(), pattern()
	if !slices.Equal(got1, want) {
		t.Errorf("failure pattern: got %v, want %v", got1, want)
	}
	if !slices.Equal(got1, got2) {
		t.Errorf("same seed, different patterns: %v and %v", got1, got2)
	}
	if fails := countTrue(got1); fails == 0 || fails == n {
		t.Errorf("fraction %v: got %d failures in %d", p, fails, n)
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func TestFailFractionBoundsAndMethod(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	f.srv.FailFraction(1, testserver.Fault{Method: echoMethod, Code: codes.DataLoss})
	for i := range 3 {
		_, err := echo(ctx, f, "a")
		wantStatus(t, fmt.Sprintf("Echo %d", i), err, codes.DataLoss, "")
	}
	if _, _, err := serverStream(ctx, f, 1, "m"); err != nil {
		t.Fatalf("ServerStream with an Echo-only fraction: got %v, want success", err)
	}

	// A queued fault is taken before the fraction is considered.
	f.srv.FailNext(1, testserver.Fault{Code: codes.Aborted})
	_, err := echo(ctx, f, "a")
	wantStatus(t, "Echo with queued fault", err, codes.Aborted, "")

	f.srv.FailFraction(0, testserver.Fault{})
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo with fraction 0: got %v, want success", err)
	}
}

// scriptSource is a rand.Source returning its values in turn.
type scriptSource struct {
	vals []uint64
	i    int
}

func (s *scriptSource) Uint64() uint64 {
	v := s.vals[s.i%len(s.vals)]
	s.i++
	return v
}

const (
	drawLow  = 0              // Float64() == 0: the event happens
	drawHigh = math.MaxUint64 // Float64() close to 1: it does not
)

func TestWithRandSource(t *testing.T) {
	src := &scriptSource{vals: []uint64{drawHigh, drawLow, drawLow, drawHigh}}
	f := start(t, false, testserver.WithRandSource(src))
	ctx := ctxT(t)
	f.srv.FailFraction(0.5, testserver.Fault{})
	var got []bool
	for range 4 {
		_, err := echo(ctx, f, "a")
		got = append(got, err != nil)
	}
	if want := []bool{false, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("failures: got %v, want %v", got, want)
	}
}

func TestLatency(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	const d = 30 * time.Millisecond
	f.srv.SetLatency(d)
	begin := time.Now()
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if elapsed := time.Since(begin); elapsed < d {
		t.Errorf("Echo with latency %v took %v", d, elapsed)
	}

	// The caller's deadline ends the wait.
	f.srv.SetLatency(time.Hour)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := echo(short, f, "a")
	wantStatus(t, "Echo past deadline", err, codes.DeadlineExceeded, "")

	f.srv.SetLatency(0)
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo after removing latency: %v", err)
	}

	// Cancellation ends the wait too, for streams as well. The latency stays
	// set until the handler has returned, so it is sure to wait.
	f.srv.SetLatency(time.Hour)
	canceled, cancel2 := context.WithCancel(ctx)
	arrived := make(chan struct{})
	f.srv.SetHook(func(context.Context, string, int64) error {
		close(arrived)
		return nil
	})
	errc := make(chan error, 1)
	go func() {
		_, _, err := serverStream(canceled, f, 1, "m")
		errc <- err
	}()
	<-arrived
	cancel2()
	wantStatus(t, "ServerStream canceled during latency", <-errc, codes.Canceled, "")

	f.srv.Stop() // handlers have returned
	calls := f.srv.Calls()
	if len(calls) != 4 {
		t.Fatalf("Calls: got %d, want 4", len(calls))
	}
	// The client's RST_STREAM may beat the server's own deadline timer.
	if got := calls[1].Code; got != codes.DeadlineExceeded && got != codes.Canceled {
		t.Errorf("server outcome past deadline: got %v, want DeadlineExceeded or Canceled", got)
	}
	// Canceled by the client, or by Stop if the cancellation is still on
	// its way: the same code.
	if got := calls[3].Code; got != codes.Canceled {
		t.Errorf("server outcome after cancel: got %v, want Canceled", got)
	}
}

func TestTailLatency(t *testing.T) {
	src := &scriptSource{vals: []uint64{drawHigh, drawLow}}
	f := start(t, false, testserver.WithRandSource(src))
	f.srv.SetTailLatency(time.Hour, 0.1)
	for i, want := range []codes.Code{codes.OK, codes.DeadlineExceeded, codes.OK, codes.DeadlineExceeded} {
		timeout := 10 * time.Second
		if want == codes.DeadlineExceeded {
			timeout = 50 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := echo(ctx, f, "a")
		cancel()
		wantStatus(t, fmt.Sprintf("Echo %d", i), err, want, "")
	}
}

func TestHook(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	type seen struct {
		method  string
		attempt int64
	}
	var mu sync.Mutex
	var got []seen
	f.srv.SetHook(func(_ context.Context, method string, attempt int64) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{method, attempt})
		if attempt == 2 {
			return status.Error(codes.PermissionDenied, "hook says no")
		}
		return nil
	})
	// The hook runs before queued faults.
	f.srv.FailNext(1, testserver.Fault{Method: serverMethod})

	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo 1: %v", err)
	}
	_, _, err := serverStream(ctx, f, 1, "m")
	wantStatus(t, "ServerStream 2", err, codes.PermissionDenied, "hook says no")
	_, _, err = serverStream(ctx, f, 1, "m")
	wantStatus(t, "ServerStream 3", err, codes.Unavailable, "")

	mu.Lock()
	want := []seen{{echoMethod, 1}, {serverMethod, 2}, {serverMethod, 3}}
	if !slices.Equal(got, want) {
		t.Errorf("hook saw %v, want %v", got, want)
	}
	mu.Unlock()

	// After Reset the attempt numbers start again.
	f.srv.Reset()
	mu.Lock()
	got = nil
	mu.Unlock()
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo after Reset: %v", err)
	}
	mu.Lock()
	if want := []seen{{echoMethod, 1}}; !slices.Equal(got, want) {
		t.Errorf("hook after Reset saw %v, want %v", got, want)
	}
	mu.Unlock()
}

func TestHookSetsHeaderAndTrailer(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)
	f.srv.SetHook(func(ctx context.Context, _ string, attempt int64) error {
		n := fmt.Sprint(attempt)
		if err := grpc.SetHeader(ctx, metadata.Pairs("x-hook", n)); err != nil {
			return err
		}
		return grpc.SetTrailer(ctx, metadata.Pairs("x-hook", n))
	})
	check := func(what string, header, trailer metadata.MD, want string) {
		t.Helper()
		if got := header.Get("x-hook"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: header x-hook %q, want [%q]", what, got, want)
		}
		if got := trailer.Get("x-hook"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: trailer x-hook %q, want [%q]", what, got, want)
		}
	}

	var header, trailer metadata.MD
	if _, err := echo(ctx, f, "a", grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	check("Echo", header, trailer, "1")

	// A fault after the hook keeps what the hook set, next to its pushback.
	f.srv.FailNext(1, testserver.Fault{Pushback: "5"})
	header, trailer = nil, nil
	_, err := echo(ctx, f, "a", grpc.Header(&header), grpc.Trailer(&trailer))
	wantStatus(t, "Echo with a fault", err, codes.Unavailable, "")
	check("Echo with a fault", header, trailer, "2")
	if got := trailer.Get(testserver.PushbackTrailer); !slices.Equal(got, []string{"5"}) {
		t.Errorf("pushback trailer next to the hook's: %q, want [5]", got)
	}

	stream, err := f.client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("ServerStream: %v", err)
		}
	}
	header, err = stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	check("ServerStream", header, stream.Trailer(), "3")
}

func TestHookStopsServerMidCall(t *testing.T) {
	f := start(t, true)
	ctx := ctxT(t)
	f.srv.SetHook(func(ctx context.Context, _ string, _ int64) error {
		go f.srv.Stop()
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	})
	_, err := echo(ctx, f, "a")
	wantStatus(t, "Echo while the server stops", err, codes.Unavailable, "")
	f.srv.SetHook(nil)
	if err := f.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if _, err := echoAfterRestart(ctx, f, "a"); err != nil {
		t.Fatalf("Echo after Restart: %v", err)
	}
}

func TestFailNextAfterSent(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	f.srv.FailNextAfterSent(1, 2, testserver.Fault{Code: codes.Internal, Message: "mid-stream"})
	// Unary RPCs do not take a stream fault.
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo: got %v, want success", err)
	}
	f.wire.reset()
	got, _, err := serverStream(ctx, f, 5, "m")
	wantStatus(t, "ServerStream", err, codes.Internal, "mid-stream")
	if len(got) != 2 {
		t.Fatalf("ServerStream: got %d messages before the fault, want 2", len(got))
	}
	if headers, _ := f.wire.reset(); headers != 1 {
		t.Errorf("ServerStream: got %d headers, want 1 (committed)", headers)
	}
	// Used up.
	if got, _, err := serverStream(ctx, f, 5, "m"); err != nil || len(got) != 5 {
		t.Fatalf("second ServerStream: got %d messages, %v, want 5, nil", len(got), err)
	}

	// A stream that sends exactly k messages still fails after them; one
	// that sends fewer ends normally and uses up its share.
	f.srv.FailNextAfterSent(1, 3, testserver.Fault{})
	if got, _, err := serverStream(ctx, f, 3, "m"); status.Code(err) != codes.Unavailable || len(got) != 3 {
		t.Fatalf("ServerStream of exactly k: got %d messages, %v, want 3, Unavailable", len(got), err)
	}
	f.srv.FailNextAfterSent(1, 3, testserver.Fault{})
	if got, _, err := serverStream(ctx, f, 2, "m"); err != nil || len(got) != 2 {
		t.Fatalf("ServerStream shorter than k: got %d messages, %v, want 2, nil", len(got), err)
	}
	if got, _, err := serverStream(ctx, f, 4, "m"); err != nil || len(got) != 4 {
		t.Fatalf("ServerStream after the share was used: got %d messages, %v, want 4, nil", len(got), err)
	}

	// k = 0 fails before anything is sent.
	f.wire.reset()
	f.srv.FailNextAfterSent(1, 0, testserver.Fault{})
	_, _, err = serverStream(ctx, f, 3, "m")
	wantStatus(t, "ServerStream k=0", err, codes.Unavailable, "")
	if headers, payloads := f.wire.reset(); headers != 0 || payloads != 0 {
		t.Errorf("k=0: got %d headers and %d messages, want none", headers, payloads)
	}

	// Bidi: the echo of the first message goes out, then the stream fails.
	f.srv.FailNextAfterSent(1, 1, testserver.Fault{Code: codes.Aborted})
	bidi, err := f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	if err := bidi.Send(&testingv1.BidiStreamRequest{Message: "x"}); err != nil {
		t.Fatalf("BidiStream Send: %v", err)
	}
	if r, err := bidi.Recv(); err != nil || r.GetMessage() != "x" {
		t.Fatalf("BidiStream Recv: got %q, %v, want %q, nil", r.GetMessage(), err, "x")
	}
	_, err = bidi.Recv()
	wantStatus(t, "BidiStream after 1 sent", err, codes.Aborted, "")

	f.srv.Stop()
	calls := f.srv.Calls()
	if c := calls[1]; c.Sent != 2 || c.Code != codes.Internal {
		t.Errorf("record of the failed stream: got sent=%d code=%v, want sent=2 code=Internal", c.Sent, c.Code)
	}
}

func TestFailNextAfterReceived(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	// Client stream: fails after the 2nd message without replying.
	f.srv.FailNextAfterReceived(1, 2, testserver.Fault{Code: codes.Aborted, Pushback: "5"})
	// Neither unary nor server streams take it.
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if _, _, err := serverStream(ctx, f, 1, "m"); err != nil {
		t.Fatalf("ServerStream: %v", err)
	}
	f.wire.reset()
	_, err := clientStream(ctx, f, "a", "b", "c")
	wantStatus(t, "ClientStream", err, codes.Aborted, "")
	if headers, payloads := f.wire.reset(); headers != 0 || payloads != 0 {
		t.Errorf("ClientStream: got %d headers and %d messages, want none (not committed)", headers, payloads)
	}
	if msgs, err := clientStream(ctx, f, "a", "b", "c"); err != nil || len(msgs) != 3 {
		t.Fatalf("second ClientStream: got %q, %v, want 3 messages", msgs, err)
	}

	// Bidi with k = 1: fails before echoing anything.
	f.wire.reset()
	f.srv.FailNextAfterReceived(1, 1, testserver.Fault{Code: codes.Unavailable})
	bidi, err := f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	if err := bidi.Send(&testingv1.BidiStreamRequest{Message: "x"}); err != nil {
		t.Fatalf("BidiStream Send: %v", err)
	}
	_, err = bidi.Recv()
	wantStatus(t, "BidiStream k=1", err, codes.Unavailable, "")
	if headers, payloads := f.wire.reset(); headers != 0 || payloads != 0 {
		t.Errorf("BidiStream k=1: got %d headers and %d messages, want none", headers, payloads)
	}

	// Bidi with k = 2: the first message is echoed, the second is not.
	f.srv.FailNextAfterReceived(1, 2, testserver.Fault{Code: codes.Internal})
	bidi, err = f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	for _, m := range []string{"x", "y"} {
		if err := bidi.Send(&testingv1.BidiStreamRequest{Message: m}); err != nil {
			t.Fatalf("BidiStream Send %q: %v", m, err)
		}
	}
	if r, err := bidi.Recv(); err != nil || r.GetMessage() != "x" {
		t.Fatalf("BidiStream Recv: got %q, %v, want %q, nil", r.GetMessage(), err, "x")
	}
	_, err = bidi.Recv()
	wantStatus(t, "BidiStream k=2", err, codes.Internal, "")

	f.srv.Stop()
	want := []testserver.Call{
		{Method: echoMethod, Received: []string{"a"}, Sent: 1, Done: true},
		{Method: serverMethod, Received: []string{"m"}, Sent: 1, Done: true},
		{Method: clientMethod, Received: []string{"a", "b"}, Done: true, Code: codes.Aborted},
		{Method: clientMethod, Received: []string{"a", "b", "c"}, Sent: 1, Done: true},
		{Method: bidiMethod, Received: []string{"x"}, Done: true, Code: codes.Unavailable},
		{Method: bidiMethod, Received: []string{"x", "y"}, Sent: 1, Done: true, Code: codes.Internal},
	}
	checkCalls(t, f.srv.Calls(), want)
}

func TestMetadataAndDeadline(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)

	md := metadata.Pairs("x-test", "1", "x-attempt", "a")
	withDeadline, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), time.Minute)
	defer cancel()
	if _, err := echo(withDeadline, f, "a"); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if _, err := echo(context.Background(), f, "b"); err != nil {
		t.Fatalf("Echo without deadline: %v", err)
	}
	stream, err := f.client.ClientStream(metadata.AppendToOutgoingContext(ctx, "x-stream", "yes"))
	if err != nil {
		t.Fatalf("ClientStream: %v", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("ClientStream: %v", err)
	}

	calls := f.srv.Calls()
	if len(calls) != 3 {
		t.Fatalf("Calls: got %d, want 3", len(calls))
	}
	if got := calls[0].Metadata.Get("x-test"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("metadata x-test: got %q, want [1]", got)
	}
	if got := calls[0].Metadata.Get("x-attempt"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("metadata x-attempt: got %q, want [a]", got)
	}
	want, _ := withDeadline.Deadline()
	// The server computes its deadline from the grpc-timeout header on arrival.
	if dl, ok := calls[0].Deadline(); !ok || dl.Sub(want).Abs() > 5*time.Second {
		t.Errorf("deadline: got %v, %v, want close to %v, true", dl, ok, want)
	}
	if dl, ok := calls[1].Deadline(); ok {
		t.Errorf("deadline without one: got %v, true, want none", dl)
	}
	if got := calls[2].Metadata.Get("x-stream"); !slices.Equal(got, []string{"yes"}) {
		t.Errorf("stream metadata: got %q, want [yes]", got)
	}

	// Calls returns copies.
	calls[0].Metadata.Set("x-test", "changed")
	calls[0].Received[0] = "changed"
	again := f.srv.Calls()
	if got := again[0].Metadata.Get("x-test"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("metadata after changing a copy: got %q, want [1]", got)
	}
	if got := again[0].Received[0]; got != "a" {
		t.Errorf("Received after changing a copy: got %q, want a", got)
	}

	f.srv.Reset()
	if got := f.srv.Attempts(); got != 0 {
		t.Errorf("Attempts after Reset: got %d, want 0", got)
	}
	if got := f.srv.MethodAttempts(echoMethod); got != 0 {
		t.Errorf("MethodAttempts after Reset: got %d, want 0", got)
	}
	if got := f.srv.Calls(); len(got) != 0 {
		t.Errorf("Calls after Reset: got %d, want 0", len(got))
	}
}

func TestRunningCallIsVisible(t *testing.T) {
	f := start(t, false)
	ctx := ctxT(t)
	bidi, err := f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	if err := bidi.Send(&testingv1.BidiStreamRequest{Message: "x"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	calls := f.srv.Calls()
	if len(calls) != 1 || calls[0].Done || !slices.Equal(calls[0].Received, []string{"x"}) || calls[0].Sent != 1 {
		t.Fatalf("running call: got %+v, want one running record with Received [x], Sent 1", calls)
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("final Recv: got %v, want io.EOF", err)
	}
}

// echoAfterRestart calls Echo until the client has reconnected, bounded by
// ctx. The client may not yet have noticed that its old connection closed, and
// an RPC started on it fails with Unavailable without reaching any handler;
// wait-for-ready then holds the next one until the new connection is up.
func echoAfterRestart(ctx context.Context, f *fixture, msg string) (string, error) {
	f.conn.ResetConnectBackoff()
	for {
		got, err := echo(ctx, f, msg, grpc.WaitForReady(true))
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return got, err
		}
	}
}

// testRestart stops and restarts the server of f and checks that a running
// stream and new calls see Unavailable while stopped and the same client
// reconnects afterwards.
func testRestart(t *testing.T, f *fixture) {
	ctx := ctxT(t)
	if _, err := echo(ctx, f, "before"); err != nil {
		t.Fatalf("Echo before Stop: %v", err)
	}
	bidi, err := f.client.BidiStream(ctx)
	if err != nil {
		t.Fatalf("BidiStream: %v", err)
	}
	if err := bidi.Send(&testingv1.BidiStreamRequest{Message: "x"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}

	f.srv.Stop()
	_, err = bidi.Recv()
	wantStatus(t, "running stream at Stop", err, codes.Unavailable, "")
	_, err = echo(ctx, f, "stopped")
	wantStatus(t, "Echo while stopped", err, codes.Unavailable, "")
	f.srv.Stop() // no-op

	if err := f.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got, err := echoAfterRestart(ctx, f, "after"); err != nil || got != "after" {
		t.Fatalf("Echo after Restart: got %q, %v, want %q, nil", got, err, "after")
	}
	// Restart while serving stops first.
	if err := f.srv.Restart(); err != nil {
		t.Fatalf("second Restart: %v", err)
	}
	if _, err := echoAfterRestart(ctx, f, "again"); err != nil {
		t.Fatalf("Echo after second Restart: %v", err)
	}
	// Only attempts that reached a handler are counted.
	if got := f.srv.MethodAttempts(echoMethod); got != 3 {
		t.Errorf("MethodAttempts(Echo): got %d, want 3", got)
	}
}

func TestTCPStopRestart(t *testing.T) {
	f := start(t, true)
	addr := f.srv.Addr()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr: got %q (%v), want 127.0.0.1:port", addr, err)
	}

	f.srv.Stop()
	if got := f.srv.Addr(); got != addr {
		t.Errorf("Addr while stopped: got %q, want %q", got, addr)
	}
	var d net.Dialer
	if c, err := d.DialContext(ctxT(t), "tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial while stopped: got %v, want connection refused", err)
	}
	if err := f.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := f.srv.Addr(); got != addr {
		t.Errorf("Addr after Restart: got %q, want %q (same port)", got, addr)
	}
	testRestart(t, f)
	if got := f.srv.Addr(); got != addr {
		t.Errorf("Addr after restarts: got %q, want %q (same port)", got, addr)
	}
}

func TestBufconnStopRestart(t *testing.T) {
	f := start(t, false)
	if got := f.srv.Addr(); got != "" {
		t.Errorf("Addr over bufconn: got %q, want empty", got)
	}
	f.srv.Stop()
	if c, err := f.srv.Dialer()(ctxT(t), ""); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dialer while stopped: got %v, want connection refused", err)
	}
	if err := f.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	testRestart(t, f)
}

func TestDialerWithOwnClient(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			f := start(t, tcp)
			conn, err := grpc.NewClient("passthrough:///ignored",
				grpc.WithContextDialer(f.srv.Dialer()),
				grpc.WithTransportCredentials(insecureCreds()))
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer conn.Close()
			resp, err := testingv1.NewEchoServiceClient(conn).Echo(ctxT(t), &testingv1.EchoRequest{Message: "own"})
			if err != nil || resp.GetMessage() != "own" {
				t.Fatalf("Echo: got %q, %v, want own, nil", resp.GetMessage(), err)
			}
		})
	}
}

func TestServerOptions(t *testing.T) {
	var intercepted atomic.Int64
	count := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted.Add(1)
		return h(ctx, req)
	}
	f := start(t, true, testserver.WithServerOptions(grpc.ChainUnaryInterceptor(count)))
	ctx := ctxT(t)
	if _, err := echo(ctx, f, "a"); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if err := f.srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if _, err := echoAfterRestart(ctx, f, "a"); err != nil {
		t.Fatalf("Echo after Restart: %v", err)
	}
	if got := intercepted.Load(); got != 2 {
		t.Errorf("interceptor calls: got %d, want 2 (options survive Restart)", got)
	}
}

func TestLifecycleErrors(t *testing.T) {
	s := testserver.New()
	if _, err := s.NewClient(); err == nil {
		t.Error("NewClient before listening: got nil error")
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart before listening: got nil error")
	}
	s.Stop() // no-op
	if err := s.ListenTCP(); err != nil {
		t.Fatalf("ListenTCP: %v", err)
	}
	if err := s.ListenTCP(); err == nil {
		t.Error("second ListenTCP: got nil error")
	}
	if err := s.ListenBufconn(); err == nil {
		t.Error("ListenBufconn while on TCP: got nil error")
	}
	s.Close()
	s.Close()
	for name, fn := range map[string]func() error{
		"ListenTCP": s.ListenTCP, "ListenBufconn": s.ListenBufconn, "Restart": s.Restart,
	} {
		if err := fn(); !errors.Is(err, testserver.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestInvalidArgumentsPanic(t *testing.T) {
	s := testserver.New()
	defer s.Close()
	for name, fn := range map[string]func(){
		"FailNext(-1)":                 func() { s.FailNext(-1, testserver.Fault{}) },
		"FailNextAfterSent(1, -1)":     func() { s.FailNextAfterSent(1, -1, testserver.Fault{}) },
		"FailNextAfterReceived(-1, 1)": func() { s.FailNextAfterReceived(-1, 1, testserver.Fault{}) },
		"FailFraction(1.5)":            func() { s.FailFraction(1.5, testserver.Fault{}) },
		"SetTailLatency(NaN)":          func() { s.SetTailLatency(time.Second, math.NaN()) },
		"WithRandSource(nil)":          func() { testserver.New(testserver.WithRandSource(nil)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: did not panic", name)
				}
			}()
			fn()
		}()
	}
}

// TestConcurrentUse changes faults while calls of every kind run; it is meant
// for -race.
func TestConcurrentUse(t *testing.T) {
	f := start(t, false, testserver.WithSeed(7))
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				switch (i + j) % 4 {
				case 0:
					_, _ = echo(ctx, f, "a")
				case 1:
					_, _, _ = serverStream(ctx, f, 3, "m")
				case 2:
					_, _ = clientStream(ctx, f, "a", "b")
				case 3:
					if bidi, err := f.client.BidiStream(ctx); err == nil {
						_ = bidi.Send(&testingv1.BidiStreamRequest{Message: "x"})
						_ = bidi.CloseSend()
						for {
							if _, err := bidi.Recv(); err != nil {
								break
							}
						}
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			f.srv.FailNext(1, testserver.Fault{})
			f.srv.FailNextAfterSent(1, 1, testserver.Fault{})
			f.srv.FailNextAfterReceived(1, 1, testserver.Fault{})
			f.srv.FailFraction(0.2, testserver.Fault{})
			f.srv.SetTailLatency(time.Millisecond, 0.2)
			f.srv.SetHook(func(context.Context, string, int64) error { return nil })
			_ = f.srv.Calls()
			_ = f.srv.Attempts()
			f.srv.ClearFaults()
		}
	})
	wg.Wait()
	if got, want := f.srv.Attempts(), int64(8*20); got != want {
		t.Errorf("Attempts: got %d, want %d", got, want)
	}
}

func ExampleServer() {
	srv := testserver.New()
	defer srv.Close()
	if err := srv.ListenBufconn(); err != nil {
		panic(err)
	}
	conn, err := srv.NewClient()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)

	srv.FailNext(1, testserver.Fault{Code: codes.Unavailable, Pushback: "100"})
	var trailer metadata.MD
	_, err = client.Echo(context.Background(), &testingv1.EchoRequest{Message: "hi"}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), trailer.Get(testserver.PushbackTrailer))
	resp, err := client.Echo(context.Background(), &testingv1.EchoRequest{Message: "hi"})
	fmt.Println(resp.GetMessage(), err, srv.Attempts())
	// Output:
	// Unavailable [100]
	// hi <nil> 2
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
