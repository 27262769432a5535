package endpoint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/outcome"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// echoServer is a minimal EchoService on loopback TCP. Echo answers with the
// server's own address, so a reply names the endpoint that served it. It
// fails every attempt with Unavailable while fail is set, and holds attempts
// whose message is "hold": it announces them on holds and waits for a token
// on gate.
type echoServer struct {
	testingv1.UnimplementedEchoServiceServer
	addr     string
	fail     atomic.Bool
	attempts atomic.Int64
	holds    chan<- string
	gate     <-chan struct{}
}

func (s *echoServer) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	s.attempts.Add(1)
	if s.fail.Load() {
		return nil, status.Error(codes.Unavailable, "endpoint down")
	}
	if req.GetMessage() == "hold" {
		s.holds <- s.addr
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &testingv1.EchoResponse{Message: s.addr}, nil
}

// fixture is n servers and a client dialled through a manual resolver with
// the policy.
type fixture struct {
	t       *testing.T
	servers []*echoServer
	holds   chan string
	gate    chan struct{}
	r       *manual.Resolver
	cc      *grpc.ClientConn
	client  testingv1.EchoServiceClient
	lb      *lbBalancer

	mu        sync.Mutex
	events    []event
	evChanged chan struct{} // closed and replaced at each event
}

func (f *fixture) startServer() *echoServer {
	f.t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	s := &echoServer{addr: lis.Addr().String(), holds: f.holds, gate: f.gate}
	gs := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	f.t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	f.servers = append(f.servers, s)
	return s
}

func endpointsOf(servers ...*echoServer) []resolver.Endpoint {
	eps := make([]resolver.Endpoint, len(servers))
	for i, s := range servers {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: s.addr}}}
	}
	return eps
}

func newFixture(t *testing.T, n int, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, holds: make(chan string, 16), gate: make(chan struct{}, 16), evChanged: make(chan struct{})}
	for range n {
		f.startServer()
	}
	built := make(chan *lbBalancer, 1)
	cfg.onBuild = func(b *lbBalancer) { built <- b }
	cfg.OnEject = func(target, addr string, ejected bool) {
		f.mu.Lock()
		f.events = append(f.events, event{addr: addr, ejected: ejected})
		close(f.evChanged)
		f.evChanged = make(chan struct{})
		f.mu.Unlock()
	}
	opt, err := DialOption(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.r = manual.NewBuilderWithScheme("endpoint-test")
	f.r.InitialState(resolver.State{Endpoints: endpointsOf(f.servers...)})
	f.cc, err = grpc.NewClient(f.r.Scheme()+":///test",
		grpc.WithResolvers(f.r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.cc.Close() })
	f.client = testingv1.NewEchoServiceClient(f.cc)
	f.cc.Connect()
	select {
	case f.lb = <-built:
	case <-time.After(10 * time.Second):
		t.Fatal("the policy was not built")
	}
	f.waitReady(n)
	return f
}

// waitReady waits until the picker holds n ready endpoints: real
// connections take their time.
func (f *fixture) waitReady(n int) {
	f.t.Helper()
	f.waitFor(func() bool { return int(f.lb.ready.Load()) == n },
		func() string { return fmt.Sprintf("%d endpoints ready, want %d", f.lb.ready.Load(), n) })
}

// waitFor waits, for at most 10 s, until cond holds, checking it again at
// every change of the balancer's config or state and at every ejection
// event; failure says why.
func (f *fixture) waitFor(cond func() bool, failure func() string) {
	f.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		lbChanged := f.lb.changes()
		f.mu.Lock()
		evChanged := f.evChanged
		f.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-lbChanged:
		case <-evChanged:
		case <-timeout.C:
			f.t.Fatal(failure())
		}
	}
}

func (f *fixture) echo(ctx context.Context, msg string) (string, error) {
	resp, err := f.client.Echo(ctx, &testingv1.EchoRequest{Message: msg})
	return resp.GetMessage(), err
}

func (f *fixture) gotEvents() []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]event(nil), f.events...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rulesOff keeps every endpoint in service, whatever it answers.
var rulesOff = Config{MinRequests: math.MaxInt32, ConsecutiveFailures: math.MaxInt32}

// TestRetryGoesElsewhere: with 3 endpoints, one failing everything, every
// retry of a call whose first attempt failed lands on another endpoint, even
// when the unrelated calls in between bring the round robin back to the
// failed one. The control run without a record shows that they do.
func TestRetryGoesElsewhere(t *testing.T) {
	f := newFixture(t, 3, rulesOff)
	bad := f.servers[0]
	bad.fail.Store(true)
	ctx := testCtx(t)

	run := func(record bool) (failedFirst, retriedOK int) {
		for range 90 {
			call := ctx
			if record {
				call = NewCall(ctx)
			}
			if _, err := f.echo(call, "x"); err == nil {
				continue
			} else if status.Code(err) != codes.Unavailable {
				t.Fatalf("first attempt: %v", err)
			}
			failedFirst++
			// Two unrelated calls: plain round robin over 3 would now be
			// back at the failed endpoint.
			_, _ = f.echo(ctx, "y")
			_, _ = f.echo(ctx, "y")
			got, err := f.echo(call, "x")
			if err == nil {
				retriedOK++
				if got == bad.addr {
					t.Fatalf("retry served by the failing endpoint")
				}
			}
			if record {
				a := Attempts(call)
				if len(a) != 2 || a[0].Addr != bad.addr || a[1].Addr != got || a[0].Ejected {
					t.Fatalf("Attempts = %+v, want [%s %s]", a, bad.addr, got)
				}
			}
		}
		return failedFirst, retriedOK
	}
	failed, ok := run(true)
	if failed < 10 {
		t.Fatalf("only %d first attempts failed; the test says little", failed)
	}
	if ok != failed {
		t.Fatalf("%d of %d retries landed on another endpoint, want all", ok, failed)
	}
	failed, ok = run(false)
	if failed == 0 || ok == failed {
		t.Fatalf("control without NewCall: %d of %d retries succeeded; the test cannot tell", ok, failed)
	}
}

// TestHedgesNeverShare: two attempts of one call in flight at once never go
// to the same endpoint, whether the second is picked while the first is
// held on its server (a hedge) or both are picked at the same moment.
func TestHedgesNeverShare(t *testing.T) {
	f := newFixture(t, 3, Config{})
	ctx := testCtx(t)

	attempt := func(call context.Context, wg *sync.WaitGroup, errs chan<- error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.echo(call, "hold"); err != nil {
				errs <- err
			}
		}()
	}
	hedged := func(record bool) (shared int) {
		for range 20 {
			call := ctx
			if record {
				call = NewCall(ctx)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			attempt(call, &wg, errs)
			first := <-f.holds
			_, _ = f.echo(ctx, "y") // unrelated calls bring plain round
			_, _ = f.echo(ctx, "y") // robin back to the first endpoint
			attempt(call, &wg, errs)
			if second := <-f.holds; second == first {
				shared++
			}
			f.gate <- struct{}{}
			f.gate <- struct{}{}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		}
		return shared
	}
	if n := hedged(true); n != 0 {
		t.Fatalf("%d of 20 hedges shared the first attempt's endpoint", n)
	}
	if n := hedged(false); n == 0 {
		t.Fatal("control without NewCall: no hedge shared an endpoint; the test cannot tell")
	}

	// Both attempts picked at once, with unrelated traffic around them.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = f.echo(ctx, "y")
			}
		}
	}()
	defer func() {
		close(stop)
		bg.Wait()
	}()
	for range 50 {
		call := NewCall(ctx)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := f.echo(call, "hold"); err != nil {
					errs <- err
				}
			}()
		}
		close(start)
		a, b := <-f.holds, <-f.holds
		f.gate <- struct{}{}
		f.gate <- struct{}{}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if a == b {
			t.Fatalf("two concurrent attempts of one call both went to %s", a)
		}
	}
}

// TestEndpointsAddedAndRemoved: an ejected endpoint the resolver removes
// reports its return and leaves no state; an added one gets traffic.
func TestEndpointsAddedAndRemoved(t *testing.T) {
	f := newFixture(t, 3, Config{ConsecutiveFailures: 3})
	ctx := testCtx(t)
	bad := f.servers[0]
	bad.fail.Store(true)
	for i := 0; len(f.gotEvents()) == 0; i++ {
		if i == 50 {
			t.Fatal("failing endpoint not ejected")
		}
		_, _ = f.echo(NewCall(ctx), "x")
	}
	if got := f.gotEvents(); got[0] != (event{addr: bad.addr, ejected: true}) {
		t.Fatalf("events = %v", got)
	}
	before := bad.attempts.Load()
	for range 30 {
		if _, err := f.echo(ctx, "x"); err != nil {
			t.Fatalf("with the failing endpoint ejected: %v", err)
		}
	}
	if bad.attempts.Load() != before {
		t.Fatal("the ejected endpoint still got attempts")
	}

	added := f.startServer()
	f.r.UpdateState(resolver.State{Endpoints: endpointsOf(f.servers[1], f.servers[2], added)})
	f.waitFor(func() bool { return len(f.gotEvents()) >= 2 && f.lb.detector().size() == 3 },
		func() string {
			return fmt.Sprintf("events %v, %d endpoints tracked after the update", f.gotEvents(), f.lb.detector().size())
		})
	if got := f.gotEvents()[1]; got != (event{addr: bad.addr, ejected: false}) {
		t.Fatalf("removed endpoint: event %v, want its return", got)
	}
	if ej := f.lb.detector().ejectedAddrs(); len(ej) != 0 {
		t.Fatalf("ejected after removal: %v", ej)
	}
	f.waitReady(3)
	for i := 0; added.attempts.Load() == 0; i++ {
		if i == 30 {
			t.Fatal("the added endpoint got no attempt")
		}
		if _, err := f.echo(ctx, "x"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDNS: the policy works with the dns resolver, the default scheme.
func TestDNS(t *testing.T) {
	f := &fixture{t: t, holds: make(chan string, 1), gate: make(chan struct{}, 1)}
	s := f.startServer()
	opt, err := DialOption(Config{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("dns:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	call := NewCall(testCtx(t))
	if _, err := testingv1.NewEchoServiceClient(cc).Echo(call, &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if a := Attempts(call); len(a) != 1 || a[0].Addr != s.addr {
		t.Fatalf("Attempts = %+v: the policy did not pick", a)
	}
}

// TestResolverServiceConfigWins: a service config from the resolver with a
// loadBalancingConfig of its own replaces the default one: the user keeps
// control, and the policy's picker is not involved.
func TestResolverServiceConfigWins(t *testing.T) {
	f := &fixture{t: t, holds: make(chan string, 1), gate: make(chan struct{}, 1)}
	s := f.startServer()
	opt, err := DialOption(Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := manual.NewBuilderWithScheme("endpoint-sc")
	r.BuildCallback = func(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) {
		sc := cc.ParseServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)
		r.InitialState(resolver.State{Endpoints: endpointsOf(s), ServiceConfig: sc})
	}
	cc, err := grpc.NewClient(r.Scheme()+":///x", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	call := NewCall(testCtx(t))
	if _, err := testingv1.NewEchoServiceClient(cc).Echo(call, &testingv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if a := Attempts(call); len(a) != 0 {
		t.Fatalf("Attempts = %+v: the policy picked despite the resolver's round_robin", a)
	}
}

// TestBadServiceConfigFailsAtDial: invalid JSON config is an error when the
// channel is created, not a panic later.
func TestBadServiceConfigFailsAtDial(t *testing.T) {
	_, err := grpc.NewClient("dns:///localhost:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"resilience_endpoint":{"failureRatio":3}}]}`))
	if err == nil {
		t.Fatal("NewClient accepted failureRatio 3")
	}
}

func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		err  error
		ctx  context.Context
		call *call
		want string // how the detector takes it: succeeded, failed or excluded
	}{
		{"nil", nil, live, nil, "succeeded"},
		{"unavailable", status.Error(codes.Unavailable, ""), live, nil, "failed"},
		{"internal", status.Error(codes.Internal, ""), live, nil, "failed"},
		{"unknown", status.Error(codes.Unknown, ""), live, nil, "failed"},
		{"exhausted", status.Error(codes.ResourceExhausted, ""), live, nil, "failed"},
		{"dataloss", status.Error(codes.DataLoss, ""), live, nil, "failed"},
		{"no status", errors.New("boom"), live, nil, "failed"},
		{"deadline from server", status.Error(codes.DeadlineExceeded, ""), live, nil, "failed"},
		{"caller's deadline", status.Error(codes.DeadlineExceeded, ""), gone, nil, "excluded"},
		{"attempt timeout, call alive", status.Error(codes.DeadlineExceeded, ""), gone, NewCall(live).(*call), "failed"},
		{"call's deadline", status.Error(codes.DeadlineExceeded, ""), gone, NewCall(gone).(*call), "excluded"},
		{"canceled", status.Error(codes.Canceled, ""), live, nil, "excluded"},
		{"context error", context.Canceled, live, nil, "excluded"},
		{"context deadline", context.DeadlineExceeded, live, nil, "excluded"},
		{"invalid argument", status.Error(codes.InvalidArgument, ""), live, nil, "succeeded"},
		{"not found", status.Error(codes.NotFound, ""), live, nil, "succeeded"},
		{"permission", status.Error(codes.PermissionDenied, ""), live, nil, "succeeded"},
	} {
		if got := detectorTakes(classify(tc.err, tc.ctx, tc.call)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// detectorTakes says how the picker's Done hands an outcome to the
// detector: a failure, an answer (a success or the request's fault), or
// not at all.
func detectorTakes(k outcome.Kind) string {
	switch k {
	case outcome.ServerFailure:
		return "failed"
	case outcome.CallerGone:
		return "excluded"
	}
	return "succeeded"
}
