// Command beyond measures, beside a plain client in the same run, what the
// interceptors do that a plain retry loop does not:
//
//   - hedging: 5 % of calls take 100 ms longer; p50/p99/p99.9 and attempts
//     per call, plain vs hedged;
//
//   - fast recovery: the server stops for 1.5 s and restarts on the same
//     port while callers with a 3 s deadline keep calling; failed calls and
//     time from the server listening again to the first success;
//
//   - retry budget: the server fails every call with Unavailable; attempts
//     reaching the server per call with 3 attempts, without the budget,
//     with it (breaker off, to isolate it), and with the defaults, where
//     the breaker opens too.
//
//     go -C examples run ./beyond            # full run, about 20 s
//     go -C examples run ./beyond -quick     # a few seconds
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func main() {
	quick := flag.Bool("quick", false, "short runs (for CI)")
	flag.Parse()
	if err := run(os.Stdout, *quick); err != nil {
		log.Fatal(err)
	}
}

// server is an EchoService whose behaviour the scenarios script.
type server struct {
	testingv1.UnimplementedEchoServiceServer
	attempts atomic.Int64
	mu       sync.Mutex
	rng      *rand.Rand
	slowFrac float64
	slow     time.Duration
	failAll  bool
}

func (s *server) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	s.attempts.Add(1)
	s.mu.Lock()
	slow := s.slowFrac > 0 && s.rng.Float64() < s.slowFrac
	fail := s.failAll
	s.mu.Unlock()
	if fail {
		return nil, status.Error(codes.Unavailable, "outage")
	}
	if slow {
		t := time.NewTimer(s.slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

// listener serves srv on a loopback port that survives restarts.
type listener struct {
	srv  *server
	addr string
	gs   *grpc.Server
	done chan struct{}
}

func (l *listener) start() error {
	var lis net.Listener
	var err error
	for range 200 { // the port can linger for a moment after a stop
		if lis, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	l.addr = lis.Addr().String()
	l.gs = grpc.NewServer()
	testingv1.RegisterEchoServiceServer(l.gs, l.srv)
	l.done = make(chan struct{})
	go func() { defer close(l.done); _ = l.gs.Serve(lis) }()
	return nil
}

func (l *listener) stop() {
	l.gs.Stop()
	<-l.done
}

func dial(addr string, opts ...grpc.DialOption) (testingv1.EchoServiceClient, func(), error) {
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return nil, nil, err
	}
	return testingv1.NewEchoServiceClient(conn), func() { conn.Close() }, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// Result holds one scenario's figures for one client.
type Result struct {
	Scenario, Client  string
	Calls, Failed     int
	AttemptsPerCall   float64
	P50, P99, P999    time.Duration
	FirstSuccessAfter time.Duration // restart: from listening again
}

func run(w io.Writer, quick bool) error {
	results, err := measure(quick)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tclient\tcalls\tfailed\tattempts/call\tp50\tp99\tp99.9\tfirst success after restart\t")
	for _, r := range results {
		first := "-"
		switch {
		case r.Scenario == "restart" && r.FirstSuccessAfter < 0:
			first = "none before the end"
		case r.Scenario == "restart":
			first = r.FirstSuccessAfter.Round(time.Millisecond / 10).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%v\t%v\t%v\t%s\t\n", r.Scenario, r.Client, r.Calls, r.Failed, r.AttemptsPerCall,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.P999.Round(time.Microsecond), first)
	}
	return tw.Flush()
}

func measure(quick bool) ([]Result, error) {
	var results []Result
	for _, sc := range []func(bool) ([]Result, error){hedging, restart, outage} {
		r, err := sc(quick)
		if err != nil {
			return nil, err
		}
		results = append(results, r...)
	}
	return results, nil
}

// hedging: 5 % of attempts take 100 ms more.
func hedging(quick bool) ([]Result, error) {
	calls := 4000
	if quick {
		calls = 600
	}
	var out []Result
	for _, client := range []string{"plain", "hedged"} {
		srv := &server{rng: rand.New(rand.NewPCG(7, 7)), slowFrac: 0.05, slow: 100 * time.Millisecond}
		l := &listener{srv: srv, addr: "127.0.0.1:0"}
		if err := l.start(); err != nil {
			return nil, err
		}
		var opts []grpc.DialOption
		if client == "hedged" {
			opts = interceptors.MustNew(interceptors.WithMethodPolicy(
				interceptors.MatchMethods(testingv1.EchoService_Echo_FullMethodName),
				interceptors.Hedging(interceptors.HedgePolicy{Delay: 5 * time.Millisecond, Percentile: 0.9, MaxAttempts: 3}),
			)).DialOptions()
		}
		c, closeConn, err := dial(l.addr, opts...)
		if err != nil {
			return nil, err
		}
		lat, failed := drive(c, calls, 4, time.Second)
		closeConn()
		l.stop()
		out = append(out, Result{Scenario: "hedging", Client: client, Calls: calls, Failed: failed,
			AttemptsPerCall: float64(srv.attempts.Load()) / float64(calls),
			P50:             quantile(lat, 0.5), P99: quantile(lat, 0.99), P999: quantile(lat, 0.999)})
	}
	return out, nil
}

// drive makes calls with the given concurrency and returns the latencies
// of successful calls and the number of failed ones.
func drive(c testingv1.EchoServiceClient, calls, concurrency int, deadline time.Duration) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	var next atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(calls) {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				_, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "x"})
				d := time.Since(start)
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lat, failed
}

// restart: the server is down for 1.5 s while 4 callers keep calling
// with a 3 s deadline.
func restart(quick bool) ([]Result, error) {
	down := 1500 * time.Millisecond
	var out []Result
	for _, client := range []string{"plain", "resilience"} {
		srv := &server{}
		l := &listener{srv: srv, addr: "127.0.0.1:0"}
		if err := l.start(); err != nil {
			return nil, err
		}
		var opts []grpc.DialOption
		if client == "resilience" {
			opts = interceptors.MustNew().DialOptions()
		}
		c, closeConn, err := dial(l.addr, opts...)
		if err != nil {
			return nil, err
		}
		if _, err := c.Echo(context.Background(), &testingv1.EchoRequest{}); err != nil {
			return nil, err
		}
		var calls, failed atomic.Int64
		var firstOK atomic.Int64 // unix nanos of the first success after restart
		var restartedAt atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var latMu sync.Mutex
		var lat []time.Duration
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					start := time.Now()
					_, err := c.Echo(ctx, &testingv1.EchoRequest{})
					now := time.Now()
					cancel()
					calls.Add(1)
					if err != nil {
						failed.Add(1)
						continue
					}
					latMu.Lock()
					lat = append(lat, now.Sub(start))
					latMu.Unlock()
					if r := restartedAt.Load(); r != 0 && now.UnixNano() > r {
						firstOK.CompareAndSwap(0, now.UnixNano())
					}
				}
			})
		}
		warm := time.NewTimer(200 * time.Millisecond)
		<-warm.C
		l.stop()
		pause := time.NewTimer(down)
		<-pause.C
		if err := l.start(); err != nil {
			return nil, err
		}
		restartedAt.Store(time.Now().UnixNano())
		tail := time.NewTimer(map[bool]time.Duration{true: 500 * time.Millisecond, false: 2 * time.Second}[quick])
		<-tail.C
		close(stop)
		wg.Wait()
		closeConn()
		l.stop()
		first := time.Duration(-1)
		if f := firstOK.Load(); f != 0 {
			first = time.Duration(f - restartedAt.Load())
		}
		n := int(calls.Load())
		out = append(out, Result{Scenario: "restart", Client: client, Calls: n, Failed: int(failed.Load()),
			AttemptsPerCall: float64(srv.attempts.Load()) / float64(max(n, 1)),
			P50:             quantile(lat, 0.5), P99: quantile(lat, 0.99), P999: quantile(lat, 0.999),
			FirstSuccessAfter: first})
	}
	return out, nil
}

// outage: every call fails with Unavailable; 3 attempts per call allowed.
func outage(quick bool) ([]Result, error) {
	calls := 2000
	if quick {
		calls = 500
	}
	var out []Result
	fast := interceptors.Backoff(backoff.MustExponential(backoff.Config{BaseDelay: time.Millisecond, Multiplier: 2, MaxDelay: 4 * time.Millisecond, Jitter: 0.2}))
	for _, client := range []string{"3 attempts, no budget", "3 attempts + budget", "defaults: budget + breaker"} {
		srv := &server{failAll: true}
		l := &listener{srv: srv, addr: "127.0.0.1:0"}
		if err := l.start(); err != nil {
			return nil, err
		}
		opts := []interceptors.Option{fast, interceptors.MaxAttempts(3)}
		switch client {
		case "3 attempts, no budget":
			opts = append(opts, interceptors.WithoutRetryBudget(), interceptors.WithoutBreaker())
		case "3 attempts + budget":
			opts = append(opts, interceptors.WithoutBreaker())
		}
		c, closeConn, err := dial(l.addr, interceptors.MustNew(opts...).DialOptions()...)
		if err != nil {
			return nil, err
		}
		_, failed := drive(c, calls, 4, time.Second)
		closeConn()
		l.stop()
		out = append(out, Result{Scenario: "outage", Client: client, Calls: calls, Failed: failed,
			AttemptsPerCall: float64(srv.attempts.Load()) / float64(calls)})
	}
	return out, nil
}
