// Command fleet measures what sharing breakers through Redis changes for a
// fleet of five gRPC clients that share one breaker key, in one process,
// one run and one table:
//
//	go -C redisbreaker run ./cmd/fleet
//
// It starts its own redis-server (persistence off, in a temporary
// directory, on a free loopback port) and gRPC EchoServices on loopback,
// then runs six scenarios, each twice: with local breakers and with
// breakers shared through redisbreaker. Five members (interceptors.New
// with the library's defaults, one grpc.NewClient connection each, all to
// the same target "passthrough:///orders.fleet", so one breaker key) call
// at fixed rates; a dialer of each member's own decides where its
// connection goes. After a healthy warm-up:
//
//   - four cases with one bad member (member 0) and four healthy ones that
//     reach a healthy server: 50 calls/s each, or the bad member at 500/s
//     and the others at 20/s; the bad member's connects refused, or its
//     server failing every call (Unavailable);
//   - a full outage: all five at 20 calls/s, the server failing every call
//     for the first half of the run, healthy again for the second half;
//   - noise: all five at 50 calls/s, the server failing 30% of calls.
//
// Each scenario runs for Duration after the warm-up. The table reports,
// per scenario and kind of breaker, the share of the healthy members'
// calls that succeeded, how long the longest-open healthy breaker was not
// closed, the bad member's attempts per second once its breaker opened
// (what its own path still gets), the attempts at the server until every
// breaker had opened in the outage, the attempts per second at the dead
// server after that, and the first success after it healed. Progress goes
// to standard error. Without redis-server on PATH it exits with status 1
// and says so.
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
	"slices"
	"sync"
	"sync/atomic"
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

// Params sets the run; DefaultParams are the figures' settings.
type Params struct {
	Duration time.Duration // each scenario, after the warm-up
	WarmUp   time.Duration // healthy calls before each scenario
	Interval time.Duration // redisbreaker.Options.Interval
	// ReadyWait, if not zero, replaces the members' ready wait
	// (interceptors.WithReadyWait): a run shorter than the default ready
	// wait sees the connects a bad member finds refused count only with a
	// shorter one.
	ReadyWait time.Duration
}

// DefaultParams: 8s per scenario (the length of the runs that found the
// problem), 1s of warm-up, Redis rounds every 100ms (the default).
func DefaultParams() Params {
	return Params{Duration: 8 * time.Second, WarmUp: time.Second, Interval: 100 * time.Millisecond}
}

// Path is where a member's connection goes.
type Path int

const (
	Healthy Path = iota // the shared server
	Refused             // a port nothing listens on: connects refused
	Failing             // a server of its own that fails every call
)

// hasBad reports whether member 0 is a bad one.
func (sc Scenario) hasBad() bool { return sc.Bad != Healthy }

// Scenario is one row pair of the table.
type Scenario struct {
	Name    string
	Rates   [5]float64 // calls/s per member; member 0 is the bad one, if any
	Bad     Path       // member 0's path (Healthy: no bad member)
	Outage  bool       // the shared server fails everything for the first half
	Noise   float64    // the share of the shared server's answers that fail
	healthy []int      // members with a working path
}

// Scenarios are the four cases of one bad member, a full outage, and noise.
func Scenarios() []Scenario {
	s := []Scenario{
		{Name: "1 bad, connects refused; 50/s each", Rates: [5]float64{50, 50, 50, 50, 50}, Bad: Refused},
		{Name: "1 bad, its server fails all; 50/s each", Rates: [5]float64{50, 50, 50, 50, 50}, Bad: Failing},
		{Name: "1 bad at 500/s, refused; others 20/s", Rates: [5]float64{500, 20, 20, 20, 20}, Bad: Refused},
		{Name: "1 bad at 500/s, failing; others 20/s", Rates: [5]float64{500, 20, 20, 20, 20}, Bad: Failing},
		{Name: "full outage, then healed; 20/s each", Rates: [5]float64{20, 20, 20, 20, 20}, Outage: true},
		{Name: "30% noise on all; 50/s each", Rates: [5]float64{50, 50, 50, 50, 50}, Noise: 0.3},
	}
	for i := range s {
		for m := range 5 {
			if (m != 0 || !s[i].hasBad()) && !s[i].Outage {
				s[i].healthy = append(s[i].healthy, m)
			}
		}
	}
	return s
}

// Result is what one scenario measured with one kind of breaker. Fields
// that do not apply to the scenario are negative.
type Result struct {
	// HealthySuccess is the share of the calls of members with a working
	// path that succeeded.
	HealthySuccess float64
	// HealthyOpen is the longest time a healthy member's breaker was not
	// closed.
	HealthyOpen time.Duration
	// BadAttemptsPerSec is the bad member's attempts per second from its
	// breaker's first opening to the end.
	BadAttemptsPerSec float64
	// BadOpened reports that the bad member's breaker opened.
	BadOpened bool
	// Openings counts every member's transitions to open.
	Openings int
	// UntilAllOpen is the attempts at the server from the outage's start
	// until every breaker had opened; DeadPerSec the attempts per second
	// at the server after that until it healed; FirstSuccess the time from
	// its healing to the first call that succeeded.
	UntilAllOpen int
	DeadPerSec   float64
	FirstSuccess time.Duration
	// Degraded reports that a Shared ran degraded (Redis unreachable).
	Degraded bool
}

// Row is one scenario with both kinds of breaker.
type Row struct {
	Scenario      Scenario
	Local, Shared Result
}

func main() {
	p := DefaultParams()
	flag.DurationVar(&p.Duration, "duration", p.Duration, "each scenario's run, after the warm-up")
	flag.DurationVar(&p.WarmUp, "warmup", p.WarmUp, "healthy calls before each scenario")
	flag.DurationVar(&p.Interval, "interval", p.Interval, "redisbreaker Interval")
	flag.DurationVar(&p.ReadyWait, "ready-wait", p.ReadyWait, "the members' ready wait (0: the library's default)")
	flag.Parse()
	if p.Duration <= 0 || p.WarmUp < 0 || p.Interval <= 0 || p.ReadyWait < 0 {
		fmt.Fprintln(os.Stderr, "fleet: -duration and -interval must be > 0, -warmup and -ready-wait >= 0")
		os.Exit(2)
	}
	rs, err := startRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	rows, err := Run(context.Background(), rs.addr, p, Scenarios(), os.Stderr)
	rs.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	Print(os.Stdout, p, rows)
}

// Run runs every scenario with local and with shared breakers against the
// Redis at redisAddr, logging progress to log.
func Run(ctx context.Context, redisAddr string, p Params, scenarios []Scenario, log io.Writer) ([]Row, error) {
	var rows []Row
	for _, sc := range scenarios {
		row := Row{Scenario: sc}
		for _, shared := range []bool{false, true} {
			kind, addr := "local", ""
			if shared {
				kind, addr = "shared", redisAddr
			}
			fmt.Fprintf(log, "%s, %s breakers\n", sc.Name, kind)
			r, err := runScenario(ctx, sc, addr, p)
			if err != nil {
				return rows, fmt.Errorf("%s, %s breakers: %w", sc.Name, kind, err)
			}
			if shared {
				row.Shared = r
			} else {
				row.Local = r
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// server is a gRPC EchoService on loopback with its fault injection.
type server struct {
	faults *resiliencetest.Faults
	addr   string
	stop   func()
}

func startServer() (*server, error) {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	return &server{faults: faults, addr: lis.Addr().String(), stop: func() { srv.Stop(); <-served }}, nil
}

func (s *server) attempts() int { return s.faults.Attempts(resiliencetest.AllMethods) }

// member is one client of the fleet and what it saw.
type member struct {
	mw   *interceptors.Middleware
	conn *grpc.ClientConn
	echo testingv1.EchoServiceClient
	sh   *redisbreaker.Shared
	rdb  *redis.Client

	attempts atomic.Int64 // attempts its breaker let through

	mu         sync.Mutex
	trs        []trans // its breaker's transitions
	calls, oks int     // calls that ended within the measurement, and of them successes
	firstOK    time.Time
	measure    time.Time // calls ending before are not counted
	healedAt   time.Time // firstOK is the first success after it
	attAtOpen  int64     // attempts when its breaker first opened in the measurement
	openedOnce bool
}

type trans struct {
	at time.Time
	to breaker.State
}

func (m *member) onChange(_ string, _, to breaker.State) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trs = append(m.trs, trans{now, to})
	if to == breaker.StateOpen && !m.measure.IsZero() && !m.openedOnce {
		m.openedOnce = true
		m.attAtOpen = m.attempts.Load()
	}
}

// notClosed returns how long the breaker was not closed within [from, to].
func (m *member) notClosed(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var total time.Duration
	var since time.Time // when it last left closed; zero while closed
	for _, tr := range m.trs {
		switch {
		case tr.to != breaker.StateClosed && since.IsZero():
			since = tr.at
		case tr.to == breaker.StateClosed && !since.IsZero():
			total += overlap(since, tr.at, from, to)
			since = time.Time{}
		}
	}
	if !since.IsZero() {
		total += overlap(since, to, from, to)
	}
	return total
}

func overlap(a, b, from, to time.Time) time.Duration {
	if a.Before(from) {
		a = from
	}
	if b.After(to) {
		b = to
	}
	return max(b.Sub(a), 0)
}

// opensSince returns the times, oldest first, m's breaker opened at or
// after after.
func (m *member) opensSince(after time.Time) []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var at []time.Time
	for _, tr := range m.trs {
		if tr.to == breaker.StateOpen && !tr.at.Before(after) {
			at = append(at, tr.at)
		}
	}
	return at
}

func (m *member) close() {
	if m.conn != nil {
		m.conn.Close()
	}
	if m.sh != nil {
		m.sh.Close()
	}
	if m.rdb != nil {
		m.rdb.Close()
	}
}

const target = "passthrough:///orders.fleet"

func newMember(i int, dialAddr, redisAddr, prefix string, p Params) (*member, error) {
	m := &member{}
	cfg := breaker.Config{OnStateChange: m.onChange}
	if redisAddr != "" {
		m.rdb = redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
		sh, err := redisbreaker.New(m.rdb, redisbreaker.Options{Prefix: prefix, Interval: p.Interval, Instance: fmt.Sprint("member-", i)})
		if err != nil {
			m.close()
			return nil, err
		}
		m.sh = sh
		cfg.Shared = sh
	}
	mwOpts := []interceptors.Option{interceptors.WithBreaker(cfg)}
	if p.ReadyWait > 0 {
		mwOpts = append(mwOpts, interceptors.WithReadyWait(p.ReadyWait))
	}
	mw, err := interceptors.New(mwOpts...)
	if err != nil {
		m.close()
		return nil, err
	}
	m.mw = mw
	// Inside the Middleware: runs once per attempt its breaker let through.
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		m.attempts.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dialAddr)
	}
	opts := append(mw.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dial),
		grpc.WithChainUnaryInterceptor(count))
	if m.conn, err = grpc.NewClient(target, opts...); err != nil {
		m.close()
		return nil, err
	}
	m.echo = testingv1.NewEchoServiceClient(m.conn)
	return m, nil
}

// maxInFlight bounds a member's calls in flight: a tick that finds this
// many still running passes.
const maxInFlight = 4096

// load starts a call every period, starting after offset, until ctx ends:
// open-loop, as independent callers do, whether earlier calls have ended or
// not (a member whose connects are refused has its calls wait for the
// connection meanwhile). Each call may take up to callTimeout.
func (m *member) load(ctx context.Context, period, offset time.Duration) {
	select {
	case <-time.After(offset):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	inFlight := make(chan struct{}, maxInFlight)
	for {
		select {
		case inFlight <- struct{}{}:
			wg.Go(func() {
				defer func() { <-inFlight }()
				m.call(ctx)
			})
		default:
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

const callTimeout = 5 * time.Second

// call makes one call and records it if it ended within the measurement.
func (m *member) call(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := m.echo.Echo(cctx, &testingv1.EchoRequest{Message: "ping"})
	cancel()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.measure.IsZero() || ctx.Err() != nil {
		return
	}
	m.calls++
	if err == nil {
		m.oks++
		if !m.healedAt.IsZero() && m.firstOK.IsZero() {
			m.firstOK = now
		}
	}
}

// freeAddr returns a loopback address nothing listens on: refused, or
// free for a server to take.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// runScenario runs sc once: shared through the Redis at redisAddr, or
// local when redisAddr is empty.
func runScenario(ctx context.Context, sc Scenario, redisAddr string, p Params) (Result, error) {
	res := Result{HealthyOpen: -1, BadAttemptsPerSec: -1, UntilAllOpen: -1, DeadPerSec: -1, FirstSuccess: -1}
	srv, err := startServer()
	if err != nil {
		return res, err
	}
	defer srv.stop()
	badAddr := srv.addr
	var badSrv *server // member 0's server of its own, when it fails everything
	switch sc.Bad {
	case Refused:
		if badAddr, err = freeAddr(); err != nil {
			return res, err
		}
	case Failing:
		if badSrv, err = startServer(); err != nil {
			return res, err
		}
		defer badSrv.stop()
		badAddr = badSrv.addr
	}
	prefix := fmt.Sprintf("fleet-%d-%d", os.Getpid(), time.Now().UnixNano())
	members := make([]*member, 0, 5)
	defer func() {
		for _, m := range members {
			m.close()
		}
	}()
	for i := range 5 {
		addr := srv.addr
		if i == 0 && sc.hasBad() {
			addr = badAddr
		}
		m, err := newMember(i, addr, redisAddr, prefix, p)
		if err != nil {
			return res, err
		}
		members = append(members, m)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, m := range members {
		period := time.Duration(float64(time.Second) / sc.Rates[i])
		wg.Go(func() { m.load(loadCtx, period, period*time.Duration(i)/5) })
	}
	defer func() { stopLoad(); wg.Wait() }()

	// Warm-up: healthy calls, every member's breaker (and Shared) knows
	// the key; the shared fleet waits for every Shared to be in touch.
	if err := sleep(ctx, p.WarmUp); err != nil {
		return res, err
	}
	if redisAddr != "" {
		deadline := time.Now().Add(10 * time.Second)
		for slices.ContainsFunc(members, func(m *member) bool { return m.sh.Degraded() }) {
			if time.Now().After(deadline) {
				return res, errors.New("a Shared not in touch with Redis after 10s")
			}
			if err := sleep(ctx, 10*time.Millisecond); err != nil {
				return res, err
			}
		}
	}

	// The scenario's trouble starts.
	start := time.Now()
	for _, m := range members {
		m.mu.Lock()
		m.measure = start
		m.mu.Unlock()
	}
	switch {
	case badSrv != nil:
		if err := badSrv.faults.InjectFraction(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
			return res, err
		}
	case sc.Outage, sc.Noise > 0:
		share := sc.Noise
		if sc.Outage {
			share = 1
		}
		if err := srv.faults.InjectFraction(resiliencetest.AllMethods, share, resiliencetest.Fail(codes.Unavailable)); err != nil {
			return res, err
		}
	}
	before := srv.attempts()

	if sc.Outage {
		res.UntilAllOpen, res.DeadPerSec, res.FirstSuccess, err = outage(ctx, srv, members, start, before, p)
		if err != nil {
			return res, err
		}
	} else if err := sleep(ctx, p.Duration); err != nil {
		return res, err
	}
	end := time.Now()
	stopLoad()
	wg.Wait()

	for i, m := range members {
		res.Openings += len(m.opensSince(start))
		if slices.Contains(sc.healthy, i) {
			res.HealthyOpen = max(res.HealthyOpen, m.notClosed(start, end))
		}
		if m.sh != nil && m.sh.Degraded() {
			res.Degraded = true
		}
	}
	if len(sc.healthy) > 0 {
		calls, oks := 0, 0
		for _, i := range sc.healthy {
			m := members[i]
			m.mu.Lock()
			calls, oks = calls+m.calls, oks+m.oks
			m.mu.Unlock()
		}
		res.HealthySuccess = float64(oks) / float64(max(calls, 1))
	} else {
		res.HealthySuccess = -1
	}
	if sc.hasBad() {
		bad := members[0]
		if opens := bad.opensSince(start); len(opens) > 0 {
			opened := opens[0]
			bad.mu.Lock()
			n := bad.attempts.Load() - bad.attAtOpen
			bad.mu.Unlock()
			res.BadOpened = true
			res.BadAttemptsPerSec = float64(n) / end.Sub(opened).Seconds()
		}
	}
	return res, nil
}

// outage measures the outage scenario from its start: the attempts at the
// server until every breaker opened, the attempts per second at the dead
// server until the middle of the run, and, the server healed there, the
// time to the first success; the run then goes on to its end.
func outage(ctx context.Context, srv *server, members []*member, start time.Time, before int, p Params) (untilOpen int, deadPerSec float64, first time.Duration, err error) {
	heal := start.Add(p.Duration / 2)
	untilOpen = -1
	var allOpenAt time.Time
	atAllOpen := 0
	for time.Now().Before(heal) {
		if untilOpen < 0 && !slices.ContainsFunc(members, func(m *member) bool { return len(m.opensSince(start)) == 0 }) {
			atAllOpen, allOpenAt = srv.attempts(), time.Now()
			untilOpen = atAllOpen - before
		}
		if err := sleep(ctx, time.Millisecond); err != nil { // polling the breakers' hooks
			return 0, 0, 0, err
		}
	}
	if untilOpen < 0 {
		return 0, 0, 0, fmt.Errorf("not every breaker open after %v of outage", p.Duration/2)
	}
	healed := time.Now()
	deadPerSec = float64(srv.attempts()-atAllOpen) / healed.Sub(allOpenAt).Seconds()
	for _, m := range members {
		m.mu.Lock()
		m.healedAt = healed
		m.mu.Unlock()
	}
	srv.faults.Clear(resiliencetest.AllMethods)
	if err := sleep(ctx, time.Until(start.Add(p.Duration))); err != nil {
		return 0, 0, 0, err
	}
	first = -1
	for _, m := range members {
		m.mu.Lock()
		if !m.firstOK.IsZero() && (first < 0 || m.firstOK.Sub(healed) < first) {
			first = m.firstOK.Sub(healed)
		}
		m.mu.Unlock()
	}
	return untilOpen, deadPerSec, first, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Print writes the table.
func Print(w io.Writer, p Params, rows []Row) {
	defaults := "interceptors.New defaults"
	if p.ReadyWait > 0 {
		defaults = fmt.Sprintf("interceptors.New defaults but WithReadyWait(%v)", p.ReadyWait)
	}
	fmt.Fprintf(w, "5 members share one breaker key (%s, one connection each); %v per scenario after %v of\n", defaults, p.Duration, p.WarmUp)
	fmt.Fprintf(w, "healthy calls; local: breakers of their own; shared: redisbreaker on one Redis, Interval %v\n\n", p.Interval)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\tbreakers\thealthy members' calls OK\thealthy breaker not closed\tbad member's attempts/s once open\topenings\tattempts until all open\tattempts/s while dead\tfirst success after healing\t")
	for _, r := range rows {
		for _, side := range []struct {
			name string
			r    Result
		}{{"local", r.Local}, {"shared", r.Shared}} {
			x := side.r
			name := r.Scenario.Name
			if side.name == "shared" {
				name = ""
			}
			bad := "-"
			if r.Scenario.hasBad() {
				bad = "never opened"
				if x.BadOpened {
					bad = fmt.Sprintf("%.1f", x.BadAttemptsPerSec)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", name, side.name,
				pct(x.HealthySuccess), secs(x.HealthyOpen, p.Duration), bad, x.Openings,
				num(x.UntilAllOpen), rate(x.DeadPerSec), msOrDash(x.FirstSuccess))
		}
	}
	tw.Flush()
	for _, r := range rows {
		if r.Shared.Degraded {
			fmt.Fprintf(w, "warning: %s: a Shared ran degraded (Redis unreachable)\n", r.Scenario.Name)
		}
	}
}

func pct(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func secs(d, of time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs of %v", d.Seconds(), of)
}

func num(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func rate(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func msOrDash(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
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
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
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
