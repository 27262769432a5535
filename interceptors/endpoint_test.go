package interceptors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/endpoint"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// endpointsOff keeps every endpoint in service whatever it answers, so
// that a test sees where attempts go, not ejections.
var endpointsOff = endpoint.Config{MinRequests: math.MaxInt32, ConsecutiveFailures: math.MaxInt32}

// fleet is n loopback servers behind a manual resolver and a client dialled
// through a Middleware's DialOptions. An interceptor of every server
// records, per "call-id" metadata value, which servers the call's attempts
// reached.
type fleet struct {
	t       testing.TB
	servers []*fleetServer
	cc      *grpc.ClientConn
	client  testingv1.EchoServiceClient

	mu   sync.Mutex
	seen map[string][]int // call id -> server index per attempt, in arrival order
}

func newFleet(t testing.TB, n int, m *Middleware, opts ...grpc.DialOption) *fleet {
	t.Helper()
	f := &fleet{t: t, seen: make(map[string][]int)}
	eps := make([]grpcresolver.Endpoint, n)
	for i := range n {
		lis, err := resiliencetest.Listen()
		if err != nil {
			t.Fatal(err)
		}
		s := &fleetServer{Faults: newFaults(t), addr: lis.Addr().String()}
		seen := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			if id := md.Get("call-id"); len(id) == 1 {
				f.mu.Lock()
				f.seen[id[0]] = append(f.seen[id[0]], i)
				f.mu.Unlock()
			}
			return handler(ctx, req)
		}
		serveEcho(t, lis, append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(seen)}, s.ServerOptions()...)...)
		f.servers = append(f.servers, s)
		eps[i] = grpcresolver.Endpoint{Addresses: []grpcresolver.Address{{Addr: s.addr}}}
	}
	r := manual.NewBuilderWithScheme("fleet")
	r.InitialState(grpcresolver.State{Endpoints: eps})
	dial := append([]grpc.DialOption{grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials())}, m.DialOptions()...)
	cc, err := grpc.NewClient(r.Scheme()+":///fleet", append(dial, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	f.cc, f.client = cc, testingv1.NewEchoServiceClient(cc)
	f.waitAllServing()
	return f
}

// waitAllServing makes calls, bounded, until every server has answered
// one: the round robin includes only ready endpoints, so then all are.
func (f *fleet) waitAllServing() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		all := true
		for _, s := range f.servers {
			all = all && s.Attempts(allMethods) > 0
		}
		if all {
			for _, s := range f.servers {
				s.Reset()
			}
			return
		}
		f.client.Echo(ctx, &testingv1.EchoRequest{Message: "warm-up"})
	}
	f.t.Fatal("not every endpoint became ready")
}

// fleetServer is one server of a fleet: its Faults and its address.
type fleetServer struct {
	*resiliencetest.Faults
	addr string
}

// failAll makes the server fail every attempt with Unavailable.
func (s *fleetServer) failAll() {
	if err := s.InjectFraction(allMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
		panic(err)
	}
}

func (f *fleet) call(ctx context.Context, id string, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "call-id", id)
	_, err := f.client.Echo(ctx, &testingv1.EchoRequest{Message: id}, opts...)
	return err
}

func (f *fleet) servedBy(id string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.seen[id]...)
}

// retryFleet runs callers x calls against 3 endpoints of which the first
// fails every attempt, and returns the number of calls whose first attempt
// failed, how many of those sent their retry to the failing endpoint
// again, and how many calls failed.
func retryFleet(t *testing.T, dial []grpc.DialOption, opts ...Option) (failedFirst, retriedOnBad, failedCalls int) {
	opts = append([]Option{WithoutBreaker(), WithoutRetryBudget(),
		Backoff(backoff.MustExponential(backoff.Config{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))}, opts...)
	m := MustNew(opts...)
	f := newFleet(t, 3, m, dial...)
	f.servers[0].failAll()
	const callers, calls = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				if err := f.call(t.Context(), fmt.Sprintf("%d-%d", g, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		failedCalls++
		t.Logf("call failed: %v", err)
	}
	for g := range callers {
		for i := range calls {
			got := f.servedBy(fmt.Sprintf("%d-%d", g, i))
			if len(got) == 0 || got[0] != 0 {
				continue
			}
			failedFirst++
			if len(got) < 2 || got[1] == 0 {
				retriedOnBad++
			}
		}
	}
	return failedFirst, retriedOnBad, failedCalls
}

// TestEndpointRetryGoesElsewhere: through the interceptors, with the
// policy installed by WithEndpointEjection, every call whose first attempt
// failed on the bad endpoint retries on another one, while concurrent
// callers move the round robin about. Without the option, some retries go
// back to the bad endpoint.
func TestEndpointRetryGoesElsewhere(t *testing.T) {
	failed, again, calls := retryFleet(t, nil, WithEndpointEjection(endpointsOff))
	if calls != 0 {
		t.Errorf("%d calls failed", calls)
	}
	t.Logf("with ejection: %d first attempts failed, %d retries on the same endpoint", failed, again)
	if failed < 20 {
		t.Fatalf("only %d of 200 first attempts went to the failing endpoint; want about a third", failed)
	}
	if again != 0 {
		t.Fatalf("%d of %d retries went back to the endpoint that failed", again, failed)
	}
}

const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

func TestEndpointRetryControl(t *testing.T) {
	failed, again, _ := retryFleet(t, []grpc.DialOption{grpc.WithDefaultServiceConfig(roundRobin)})
	t.Logf("round_robin: %d first attempts failed, %d retries on the same endpoint", failed, again)
	if again == 0 {
		t.Fatalf("no retry of %d went back to the failing endpoint under round_robin: the test cannot tell", failed)
	}
}

// TestEndpointHedgesNeverShare: two hedges of one call, both in flight,
// never reach the same endpoint while 3 are ready.
func TestEndpointHedgesNeverShare(t *testing.T) {
	m := MustNew(WithoutBreaker(), WithEndpointEjection(endpointsOff),
		Hedging(HedgePolicy{Delay: time.Millisecond, MaxAttempts: 2}))
	f := newFleet(t, 3, m)
	for _, s := range f.servers {
		must(t, s.SetLatency(allMethods, 1, 20*time.Millisecond)) // the hedge starts while the first attempt runs
	}
	const callers, calls = 3, 20
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				if err := f.call(t.Context(), fmt.Sprintf("%d-%d", g, i)); err != nil {
					t.Errorf("call: %v", err)
				}
			}
		})
	}
	wg.Wait()
	hedged := 0
	for g := range callers {
		for i := range calls {
			got := f.servedBy(fmt.Sprintf("%d-%d", g, i))
			if len(got) == 2 {
				hedged++
				if got[0] == got[1] {
					t.Errorf("call %d-%d: both hedges on endpoint %d", g, i, got[0])
				}
			}
		}
	}
	if hedged < callers*calls/2 {
		t.Fatalf("only %d of %d calls hedged", hedged, callers*calls)
	}
}

func TestWithEndpointEjectionInvalid(t *testing.T) {
	_, err := New(WithEndpointEjection(endpoint.Config{FailureRatio: 2}))
	if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithEndpointEjection") || !strings.Contains(err.Error(), "FailureRatio") {
		t.Fatalf("New: %v; want an ErrInvalidConfig naming WithEndpointEjection and FailureRatio", err)
	}
}

// TestEndpointEjectionTelemetry: the attempt whose failure ejected the bad
// endpoint carries a resilience.endpoint.ejected event with its address (on
// the call span when attempt spans are off), the ejected endpoints counter
// of the target goes to 1, and the user's OnEject is still called.
func TestEndpointEjectionTelemetry(t *testing.T) {
	for _, attemptSpans := range []bool{true, false} {
		t.Run(fmt.Sprintf("attemptSpans=%v", attemptSpans), func(t *testing.T) {
			e := newTelemetryEnv(t)
			var mu sync.Mutex
			var user []string
			cfg := endpoint.Config{MinRequests: math.MaxInt32, ConsecutiveFailures: 3, BaseEjectionTime: 5 * time.Minute,
				OnEject: func(target, addr string, ejected bool) {
					mu.Lock()
					user = append(user, fmt.Sprintf("%s %s %v", target, addr, ejected))
					mu.Unlock()
				}}
			m := MustNew(e.options(WithoutBreaker(), WithAttemptSpans(attemptSpans), WithEndpointEjection(cfg))...)
			f := newFleet(t, 3, m)
			bad := f.servers[0].addr
			f.servers[0].failAll()
			for i := range 30 {
				if err := f.call(t.Context(), fmt.Sprint(i)); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			var events []string
			for _, s := range e.rec.Ended() {
				for _, ev := range s.Events() {
					if ev.Name == "resilience.endpoint.ejected" {
						events = append(events, s.SpanKind().String()+" "+renderAttrs(ev.Attributes))
					}
				}
			}
			kind := "client"
			want := fmt.Sprintf("%s {resilience.endpoint.address=%s}", kind, bad)
			if !attemptSpans {
				want = fmt.Sprintf("internal {resilience.attempt=1 resilience.endpoint.address=%s}", bad)
			}
			if len(events) != 1 || sortAttrs(events[0]) != sortAttrs(want) {
				t.Errorf("ejection events %q, want [%q]", events, want)
			}
			checkMetrics(t, filterPrefix(e.collectMetrics(t), "resilience.client.endpoint"),
				"resilience.client.endpoint.ejected {resilience.target=fleet:///fleet} 1", noBreakerPoint)
			mu.Lock()
			defer mu.Unlock()
			if wantUser := "fleet:///fleet " + bad + " true"; len(user) != 1 || user[0] != wantUser {
				t.Errorf("user OnEject saw %q, want [%q]", user, wantUser)
			}
		})
	}
}

func filterPrefix(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestEndpointUserServiceConfig: a default service config of the user's,
// given after DialOptions, replaces the policy (grpc-go keeps the last
// one); listing resilience_endpoint first in it keeps the policy.
func TestEndpointUserServiceConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		ejects       bool
	}{
		{"round_robin", roundRobin, false},
		{"resilience_endpoint first", `{"loadBalancingConfig":[{"resilience_endpoint":{"consecutiveFailures":3,"minRequests":2147483647}},{"round_robin":{}}]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ec := &ejectClock{}
			m := MustNew(WithoutBreaker(), WithEndpointEjection(endpoint.Config{ConsecutiveFailures: 3, OnEject: ec.onEject}))
			f := newFleet(t, 3, m, grpc.WithDefaultServiceConfig(tc.config))
			f.servers[0].failAll()
			for i := range 30 {
				if err := f.call(t.Context(), fmt.Sprint(i)); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			// The JSON cannot carry OnEject, so the policy under the
			// user's config reports no ejection; the bad endpoint's
			// share of first attempts tells instead.
			bad := f.servers[0].Attempts(allMethods)
			t.Logf("%d attempts of 30 calls reached the failing endpoint; OnEject called: %v", bad, !ec.first().IsZero())
			if !ec.first().IsZero() {
				t.Error("the Middleware's policy (with its OnEject) ran under the user's service config")
			}
			if tc.ejects && bad > 5 {
				t.Errorf("%d attempts reached the failing endpoint: it was not ejected after 3", bad)
			}
			if !tc.ejects && bad < 8 {
				t.Errorf("only %d attempts reached the failing endpoint under round_robin", bad)
			}
		})
	}
}

// TestEndpointRecordCost: a successful call allocates once through the
// interceptors without WithEndpointEjection, and once more (the call
// record) with it.
func TestEndpointRecordCost(t *testing.T) {
	conn, err := grpc.NewClient("passthrough:///overhead", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	allocs := func(opts ...Option) float64 {
		ui := MustNew(opts...).UnaryClientInterceptor()
		return testing.AllocsPerRun(200, func() {
			if err := ui(ctx, echoMethod, nil, nil, conn, invoker); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := allocs(); got != 1 {
		t.Errorf("without the option: %v allocations per call, want 1", got)
	}
	if got := allocs(WithEndpointEjection(endpoint.Config{})); got != 2 {
		t.Errorf("with the option: %v allocations per call, want 2", got)
	}
}
