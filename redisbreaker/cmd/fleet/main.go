// Command fleet measures what sharing breakers through Redis changes for a
// fleet of clients, in one process and one run: the figures of issue 15.
//
//	go -C redisbreaker run ./cmd/fleet
//
// It starts its own redis-server (persistence off, in a temporary
// directory, on a free loopback port) and a gRPC EchoService on loopback,
// then runs the same scenario twice, with local breakers and with breakers
// shared through redisbreaker:
//
//  1. warm-up: Clients Middlewares (interceptors.New, one grpc.NewClient
//     connection each, retries off so one call is one attempt) call the
//     healthy server at Rate calls/s each, for WarmUp;
//  2. outage: the server fails every call with Unavailable; the program
//     counts the attempts that reach it until every breaker has opened, and
//     the time from the first opening to the last;
//  3. recovery: the server answers again; the program counts the attempts
//     made by breakers that were not closed (half-open probes) until every
//     breaker is closed, and the time that took.
//
// Then it measures the happy path, Allow plus done(nil) on a closed breaker,
// with testing.Benchmark: a local Set against a Set attached to a Shared
// that runs its rounds against Redis, BenchPairs pairs in alternating order.
// It prints a table of the figures on standard output, progress on
// standard error. Without redis-server on PATH it exits with status 1 and
// says so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/redisbreaker"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// Params sets the scenario; DefaultParams are the figures' settings.
type Params struct {
	Clients     int           // Middlewares in the fleet
	Rate        float64       // calls per second per client
	WarmUp      time.Duration // healthy calls before the outage
	OpenTimeout time.Duration // breaker.Config.OpenTimeout
	Interval    time.Duration // redisbreaker.Options.Interval
	Limit       time.Duration // longest a phase may take before the run fails
	BenchPairs  int           // local/shared benchmark pairs; 0 skips the benchmark
}

// DefaultParams: 20 clients at 5 calls/s each (100 calls/s for the fleet),
// breakers with the default trip rules (25 failures in a row, 3 half-open
// probes) but open for 1s, Redis rounds every 100ms (the default).
func DefaultParams() Params {
	return Params{
		Clients:     20,
		Rate:        5,
		WarmUp:      time.Second,
		OpenTimeout: time.Second,
		Interval:    100 * time.Millisecond,
		Limit:       30 * time.Second,
		BenchPairs:  5,
	}
}

// Phase is what one fleet (local or shared) measured.
type Phase struct {
	Clients int
	// AttemptsBeforeOpen counts the attempts that reached the server from
	// the start of the outage until the last breaker opened.
	AttemptsBeforeOpen int
	// OutageToAllOpen is the time from the start of the outage to the last
	// breaker's opening; FirstToLastOpen from the first opening to the last.
	OutageToAllOpen, FirstToLastOpen time.Duration
	// Probes counts the attempts that breakers not closed let through,
	// from the server's recovery until every breaker was closed.
	Probes int
	// RecoveryToAllClosed is the time from the server's recovery to the
	// last breaker's closing; HalfOpenToAllClosed from the first breaker
	// turning half-open to the last closing.
	RecoveryToAllClosed, HalfOpenToAllClosed time.Duration
	// Calls is every call made, Degraded whether any Shared ran degraded.
	Calls    int
	Degraded bool
}

// Figures are the run's results.
type Figures struct {
	Params        Params
	Local, Shared Phase
	// LocalNs and SharedNs are the fastest of the benchmark runs in ns per
	// Allow+done (the least disturbed by other load on the machine); Ratio
	// is SharedNs/LocalNs, PairRatio the median of the pairs' ratios.
	LocalNs, SharedNs, Ratio, PairRatio float64
	Allocs                              int64 // most allocations per op seen, either side
}

func main() {
	p := DefaultParams()
	flag.IntVar(&p.Clients, "clients", p.Clients, "Middlewares in the fleet")
	flag.Float64Var(&p.Rate, "rate", p.Rate, "calls per second per client")
	flag.DurationVar(&p.WarmUp, "warmup", p.WarmUp, "healthy calls before the outage")
	flag.DurationVar(&p.OpenTimeout, "open-timeout", p.OpenTimeout, "breaker OpenTimeout")
	flag.DurationVar(&p.Interval, "interval", p.Interval, "redisbreaker Interval")
	flag.IntVar(&p.BenchPairs, "bench-pairs", p.BenchPairs, "local/shared happy-path benchmark pairs (0: none)")
	flag.Parse()
	if err := checkParams(p); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	rs, err := startRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	f, err := Run(context.Background(), rs.addr, p, os.Stderr)
	rs.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	Print(os.Stdout, f)
}

func checkParams(p Params) error {
	switch {
	case p.Clients < 1:
		return fmt.Errorf("-clients must be >= 1, got %d", p.Clients)
	case !(p.Rate > 0):
		return fmt.Errorf("-rate must be > 0, got %v", p.Rate)
	case p.WarmUp < 0 || p.OpenTimeout <= 0 || p.Interval <= 0 || p.Limit <= 0:
		return errors.New("-warmup must be >= 0, -open-timeout and -interval > 0")
	case p.BenchPairs < 0:
		return fmt.Errorf("-bench-pairs must be >= 0, got %d", p.BenchPairs)
	}
	return nil
}

// Run runs both fleets and the benchmark against the Redis at redisAddr,
// logging progress to log.
func Run(ctx context.Context, redisAddr string, p Params, log io.Writer) (Figures, error) {
	f := Figures{Params: p}
	var err error
	fmt.Fprintf(log, "local fleet: %d clients at %v calls/s each\n", p.Clients, p.Rate)
	if f.Local, err = runFleet(ctx, "", p); err != nil {
		return f, fmt.Errorf("local fleet: %w", err)
	}
	fmt.Fprintf(log, "shared fleet: %d clients at %v calls/s each, Redis on %s\n", p.Clients, p.Rate, redisAddr)
	if f.Shared, err = runFleet(ctx, redisAddr, p); err != nil {
		return f, fmt.Errorf("shared fleet: %w", err)
	}
	if p.BenchPairs > 0 {
		fmt.Fprintf(log, "happy path: %d benchmark pairs\n", p.BenchPairs)
		if err := bench(redisAddr, p, &f); err != nil {
			return f, fmt.Errorf("benchmark: %w", err)
		}
	}
	return f, nil
}

// client is one member of the fleet: a Middleware, its connection, and its
// Shared and Redis client when shared.
type client struct {
	mw     *interceptors.Middleware
	conn   *grpc.ClientConn
	echo   testingv1.EchoServiceClient
	sh     *redisbreaker.Shared
	rdb    *redis.Client
	target string
}

// fleetState collects the breakers' transitions and the probes.
type fleetState struct {
	mu          sync.Mutex
	n           int
	opened      []time.Time // first opening of each client in the outage
	openedCount int
	allOpen     chan struct{}
	firstHalf   time.Time
	lastClosed  time.Time
	recovering  bool
	serverAtAll int // server attempts when the last breaker opened
	attempts    func() int

	probes atomic.Int64
	calls  atomic.Int64
}

func (s *fleetState) onChange(i int) func(string, breaker.State, breaker.State) {
	return func(_ string, _, to breaker.State) {
		now := time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		switch to {
		case breaker.StateOpen:
			if s.recovering || !s.opened[i].IsZero() {
				return
			}
			s.opened[i] = now
			s.openedCount++
			if s.openedCount == s.n {
				s.serverAtAll = s.attempts()
				close(s.allOpen)
			}
		case breaker.StateHalfOpen:
			if s.recovering && s.firstHalf.IsZero() {
				s.firstHalf = now
			}
		case breaker.StateClosed:
			if s.recovering {
				s.lastClosed = now
			}
		}
	}
}

// runFleet runs one fleet: shared through the Redis at redisAddr, or local
// when redisAddr is empty.
func runFleet(ctx context.Context, redisAddr string, p Params) (ph Phase, err error) {
	ph.Clients = p.Clients
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return ph, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ph, err
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-served }()

	st := &fleetState{
		n:        p.Clients,
		opened:   make([]time.Time, p.Clients),
		allOpen:  make(chan struct{}),
		attempts: func() int { return faults.Attempts(resiliencetest.AllMethods) },
	}
	prefix := fmt.Sprintf("fleet-%d-%d", os.Getpid(), time.Now().UnixNano())
	clients := make([]*client, 0, p.Clients)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for i := range p.Clients {
		c, err := newClient(i, lis.Addr().String(), redisAddr, prefix, p, st)
		if err != nil {
			return ph, err
		}
		clients = append(clients, c)
	}

	// The load: each client calls at its rate, the clients spread evenly
	// over one period so that the fleet does not call in lockstep.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	period := time.Duration(float64(time.Second) / p.Rate)
	for i, c := range clients {
		wg.Go(func() { c.load(loadCtx, period, period*time.Duration(i)/time.Duration(len(clients)), st) })
	}
	defer func() { stopLoad(); wg.Wait() }()

	wait := func(what string, done func() bool) error {
		deadline := time.Now().Add(p.Limit)
		for !done() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not within %v", what, p.Limit)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}

	// 1. Warm-up: healthy calls, so every breaker (and every Shared) knows
	// the target before the outage.
	select {
	case <-time.After(p.WarmUp):
	case <-ctx.Done():
		return ph, ctx.Err()
	}
	if redisAddr != "" {
		if err := wait("every Shared in touch with Redis", func() bool {
			return !slices.ContainsFunc(clients, func(c *client) bool { return c.sh.Degraded() })
		}); err != nil {
			return ph, err
		}
	}

	// 2. Outage: every call fails with Unavailable.
	before := faults.Attempts(resiliencetest.AllMethods)
	outage := time.Now()
	if err := faults.InjectFraction(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
		return ph, err
	}
	select {
	case <-st.allOpen:
	case <-time.After(p.Limit):
		st.mu.Lock()
		n := st.openedCount
		st.mu.Unlock()
		return ph, fmt.Errorf("%d of %d breakers open after %v of outage", n, p.Clients, p.Limit)
	case <-ctx.Done():
		return ph, ctx.Err()
	}

	// 3. Recovery: the server answers again, at once.
	st.mu.Lock()
	st.recovering = true
	ph.AttemptsBeforeOpen = st.serverAtAll - before
	first, last := st.opened[0], st.opened[0]
	for _, o := range st.opened {
		first = minTime(first, o)
		last = maxTime(last, o)
	}
	ph.OutageToAllOpen, ph.FirstToLastOpen = last.Sub(outage), last.Sub(first)
	st.probes.Store(0)
	recovery := time.Now()
	faults.Clear(resiliencetest.AllMethods)
	st.mu.Unlock()
	if err := wait("every breaker closed", func() bool {
		return !slices.ContainsFunc(clients, func(c *client) bool {
			return c.mw.Breakers().State(c.target) != breaker.StateClosed
		})
	}); err != nil {
		return ph, err
	}
	st.mu.Lock()
	ph.Probes = int(st.probes.Load())
	ph.RecoveryToAllClosed = st.lastClosed.Sub(recovery)
	ph.HalfOpenToAllClosed = st.lastClosed.Sub(st.firstHalf)
	st.mu.Unlock()
	stopLoad()
	wg.Wait()
	ph.Calls = int(st.calls.Load())
	for _, c := range clients {
		ph.Degraded = ph.Degraded || (c.sh != nil && c.sh.Degraded())
	}
	return ph, nil
}

func newClient(i int, addr, redisAddr, prefix string, p Params, st *fleetState) (*client, error) {
	c := &client{}
	cfg := breaker.Config{OpenTimeout: p.OpenTimeout, OnStateChange: st.onChange(i)}
	if redisAddr != "" {
		c.rdb = redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
		sh, err := redisbreaker.New(c.rdb, redisbreaker.Options{
			Prefix:   prefix,
			Interval: p.Interval,
			Instance: fmt.Sprintf("client-%d", i),
		})
		if err != nil {
			c.rdb.Close()
			return nil, err
		}
		c.sh = sh
		cfg.Shared = sh
	}
	mw, err := interceptors.New(interceptors.WithBreaker(cfg), interceptors.MaxAttempts(1))
	if err != nil {
		c.close()
		return nil, err
	}
	c.mw = mw
	// The counting interceptor runs inside the Middleware's, once per
	// attempt that its breaker let through.
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if mw.Breakers().State(cc.Target()) != breaker.StateClosed {
			st.probes.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	opts := append(mw.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(count))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		c.close()
		return nil, err
	}
	c.conn, c.echo, c.target = conn, testingv1.NewEchoServiceClient(conn), conn.Target()
	return c, nil
}

// load calls every period, starting after offset, until ctx ends. A call
// that is still running when the next is due makes the tick pass.
func (c *client) load(ctx context.Context, period, offset time.Duration, st *fleetState) {
	select {
	case <-time.After(offset):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = c.echo.Echo(cctx, &testingv1.EchoRequest{Message: "ping"})
		cancel()
		st.calls.Add(1)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	if c.sh != nil {
		c.sh.Close()
	}
	if c.rdb != nil {
		c.rdb.Close()
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// bench alternates local and shared benchmarks of Allow + done(nil).
func bench(redisAddr string, p Params, f *Figures) error {
	const key = "dns:///orders.example:443"
	local, err := breaker.NewSet(breaker.Config{})
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	sh, err := redisbreaker.New(rdb, redisbreaker.Options{Prefix: fmt.Sprintf("bench-%d", os.Getpid()), Interval: p.Interval})
	if err != nil {
		return err
	}
	defer sh.Close()
	shared, err := breaker.NewSet(breaker.Config{Shared: sh})
	if err != nil {
		return err
	}
	run := func(s *breaker.Set) testing.BenchmarkResult {
		return testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				done, err := s.Allow(key)
				if err != nil {
					b.Fatal(err)
				}
				done(nil)
			}
		})
	}
	// One discarded run of each first; then the pairs, in alternating
	// order and each after a collection, so that neither side always runs
	// on the garbage or the cold caches the other left.
	run(local)
	run(shared)
	var ls, ss, ratios []float64
	for i := range p.BenchPairs {
		var l, s testing.BenchmarkResult
		if i%2 == 0 {
			runtime.GC()
			l = run(local)
			runtime.GC()
			s = run(shared)
		} else {
			runtime.GC()
			s = run(shared)
			runtime.GC()
			l = run(local)
		}
		if l.N == 0 || s.N == 0 {
			return errors.New("a benchmark failed")
		}
		ln, sn := float64(l.T.Nanoseconds())/float64(l.N), float64(s.T.Nanoseconds())/float64(s.N)
		ls, ss, ratios = append(ls, ln), append(ss, sn), append(ratios, sn/ln)
		f.Allocs = max(f.Allocs, l.AllocsPerOp(), s.AllocsPerOp())
	}
	if sh.Degraded() {
		return errors.New("the Shared ran degraded during the benchmark")
	}
	f.LocalNs, f.SharedNs, f.PairRatio = slices.Min(ls), slices.Min(ss), median(ratios)
	f.Ratio = f.SharedNs / f.LocalNs
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Print writes the table of the figures.
func Print(w io.Writer, f Figures) {
	p := f.Params
	fmt.Fprintf(w, "%d clients at %v calls/s each (retries off), separate connections, one process; breakers: default trip rules\n", p.Clients, p.Rate)
	fmt.Fprintf(w, "(25 failures in a row), 3 half-open probes, OpenTimeout %v; shared: one Redis, Interval %v\n\n", p.OpenTimeout, p.Interval)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	row := func(name, l, s string) { fmt.Fprintf(tw, "%s\t%s\t%s\t\n", name, l, s) }
	row("", "local", "shared")
	row("attempts at the server before every breaker opened", fmt.Sprint(f.Local.AttemptsBeforeOpen), fmt.Sprint(f.Shared.AttemptsBeforeOpen))
	row("outage start to last opening", ms(f.Local.OutageToAllOpen), ms(f.Shared.OutageToAllOpen))
	row("first opening to last", ms(f.Local.FirstToLastOpen), ms(f.Shared.FirstToLastOpen))
	row("half-open probes, fleet-wide", fmt.Sprint(f.Local.Probes), fmt.Sprint(f.Shared.Probes))
	row("server recovery to all closed", ms(f.Local.RecoveryToAllClosed), ms(f.Shared.RecoveryToAllClosed))
	row("first half-open to all closed", ms(f.Local.HalfOpenToAllClosed), ms(f.Shared.HalfOpenToAllClosed))
	row("calls made", fmt.Sprint(f.Local.Calls), fmt.Sprint(f.Shared.Calls))
	if f.LocalNs > 0 {
		row("happy path, Allow+done (fastest run, ns/op)", fmt.Sprintf("%.1f", f.LocalNs), fmt.Sprintf("%.1f", f.SharedNs))
	}
	tw.Flush()
	if f.LocalNs > 0 {
		fmt.Fprintf(w, "happy-path ratio shared/local: %.3f (fastest runs), %.3f (median of %d pairs' ratios); at most %d allocs/op\n",
			f.Ratio, f.PairRatio, p.BenchPairs, f.Allocs)
	}
	if f.Shared.Degraded {
		fmt.Fprintln(w, "warning: a Shared ran degraded (Redis unreachable) during the shared fleet's run")
	}
}

// redisServer is the program's own redis-server.
type redisServer struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free loopback port with persistence
// off, in a temporary directory, and waits for it to answer.
func startRedis() (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (Debian package redis-server): %w", err)
	}
	dir, err := os.MkdirTemp("", "fleet-redis-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer log.Close()
	r := &redisServer{addr: addr, dir: dir}
	r.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server on %s not answering after 10s: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond) // the process coming up
	}
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
	os.RemoveAll(r.dir)
}
