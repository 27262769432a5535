package interceptors

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpc-resilience/resilience/breaker"
	oc "github.com/grpc-resilience/resilience/internal/outcome"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/throttle"
)

// hop is one service of a chain: it answers Echo itself (the leaf), or by
// calling the next service through its own Middleware with the incoming
// context, passing the next one's error on as it is.
type hop struct {
	testingv1.UnimplementedEchoServiceServer
	next     testingv1.EchoServiceClient // nil: the leaf
	failing  atomic.Bool                 // the leaf answers Unavailable
	attempts atomic.Int64                // attempts that reached this hop
}

func (h *hop) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	h.attempts.Add(1)
	if h.next != nil {
		return h.next.Echo(ctx, req)
	}
	if h.failing.Load() {
		return nil, status.Error(codes.Unavailable, "leaf: failing")
	}
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

// serveHop serves h over bufconn until the end of the test and returns a
// client of it through a new Middleware with the defaults and opts.
func serveHop(t *testing.T, h *hop, opts ...Option) (testingv1.EchoServiceClient, *Middleware, *grpc.ClientConn) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	m := MustNew(opts...)
	conn, err := grpc.NewClient("passthrough:///hop", append(m.DialOptions(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testingv1.NewEchoServiceClient(conn), m, conn
}

// In a chain caller → F → M → L, each hop through the library, a failing
// leaf opens M's breaker only: M's refusals reach F and the caller as
// refusals, which their breakers do not count, so only the hop next to
// the trouble sheds load and probes, and the leaf gets a fraction of an
// attempt per call.
func TestChainRefusalsAreNotTheFailuresOfTheHopsAbove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		leaf := &hop{}
		leaf.failing.Store(true)
		toL, mM, connL := serveHop(t, leaf)
		middle := &hop{next: toL}
		toM, mF, connM := serveHop(t, middle)
		front := &hop{next: toM}
		toF, mCaller, connF := serveHop(t, front)

		const calls = 200
		var refusals int
		for range calls {
			_, err := toF.Echo(context.Background(), &testingv1.EchoRequest{Message: "x"})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call through a failing chain: %v, want Unavailable", err)
			}
			if oc.IsDownstream(status.Convert(err)) {
				refusals++
			}
		}
		if st := mM.Breakers().State(connL.Target()); st != breaker.StateOpen {
			t.Errorf("M's breaker for the leaf is %v, want open", st)
		}
		for name, b := range map[string]breaker.State{
			"F's for M": mF.Breakers().State(connM.Target()), "the caller's for F": mCaller.Breakers().State(connF.Target()),
		} {
			if b != breaker.StateClosed {
				t.Errorf("%s breaker is %v, want closed: a refusal passed on is nobody's failure", name, b)
			}
		}
		if perCall := float64(leaf.attempts.Load()) / calls; perCall > 0.5 {
			t.Errorf("%.2f attempts at the leaf per call, want a fraction of one", perCall)
		}
		if refusals < calls/2 {
			t.Errorf("%d of %d calls ended with a refusal, want most once M's breaker opened", refusals, calls)
		}
		t.Logf("leaf attempts %d, middle %d, front %d for %d calls; %d refusals", leaf.attempts.Load(), middle.attempts.Load(), front.attempts.Load(), calls, refusals)
	})
}

// With client-side throttling on every hop, only M, next to the failing
// leaf, throttles: the refusals it passes on are answers from F's and the
// caller's point of view, not failures that would make them refuse their
// own callers' requests. Once the leaf heals, M's breaker probe resets
// its throttle, and the chain answers every call within a few probe
// periods.
func TestChainThrottlesOnlyNextToTheTrouble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		withThrottle := WithThrottle(throttle.Config{})
		leaf := &hop{}
		leaf.failing.Store(true)
		toL, _, _ := serveHop(t, leaf, withThrottle)
		toM, _, _ := serveHop(t, &hop{next: toL}, withThrottle)
		toF, _, _ := serveHop(t, &hop{next: toM}, withThrottle)

		// Two seconds of failure at 100 calls/s.
		for range 200 {
			if _, err := toF.Echo(context.Background(), &testingv1.EchoRequest{Message: "x"}); status.Code(err) != codes.Unavailable {
				t.Fatalf("call through a failing chain: %v, want Unavailable", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		leaf.failing.Store(false)
		healed := time.Now()
		var failed []time.Duration
		for range 100 {
			if _, err := toF.Echo(context.Background(), &testingv1.EchoRequest{Message: "x"}); err != nil {
				failed = append(failed, time.Since(healed))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(failed) > 0 && failed[len(failed)-1] > 200*time.Millisecond {
			t.Errorf("%d of 100 calls failed in the second after the leaf healed, the last %v after: want none after a probe period or two", len(failed), failed[len(failed)-1])
		}
	})
}
