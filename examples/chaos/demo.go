package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/fallback"
	"github.com/grpc-resilience/resilience/interceptors"
	"github.com/grpc-resilience/resilience/limiter"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// causeKey is the context key of a call's *error, where the fallback
// keeps why the call failed before it answered.
type causeKey struct{}

// phaseNames are the phases of the timeline, in order.
var phaseNames = [...]string{"noise", "slow", "overload", "outage", "restart"}

const (
	numPhases = len(phaseNames)
	// overloadPhase is the phase of a server at finite capacity, with a
	// spike of load from a quarter to half of it.
	overloadPhase = 2
)

// phaseStats are one client's figures for one phase.
type phaseStats struct {
	calls, ok, attempts atomic.Int64
	stale               atomic.Int64 // of ok: answered from a stale copy
	// Calls refused before any attempt, by the open breaker and by the
	// concurrency limiter.
	refusedBreaker, refusedLimiter atomic.Int64
	// late is the attempts the server served after their caller had
	// gone, in the phase (set at the phase's end).
	late atomic.Int64

	mu sync.Mutex
	// latencies are those of the calls the server answered.
	latencies []time.Duration
}

// totals are one client's figures, running totals or a second's, for the
// progress lines and the picture.
type totals struct {
	calls, ok, attempts int64
	stale               int64 // of ok
	refusedBreaker      int64
	refusedLimiter      int64
	late                int64 // work the server did for callers who had gone
}

// sub returns t - u.
func (t totals) sub(u totals) totals {
	return totals{t.calls - u.calls, t.ok - u.ok, t.attempts - u.attempts, t.stale - u.stale,
		t.refusedBreaker - u.refusedBreaker, t.refusedLimiter - u.refusedLimiter, t.late - u.late}
}

// client is one of the two clients, with its own server.
type client struct {
	name   string
	srv    *server
	conn   *grpc.ClientConn
	stub   testingv1.EchoServiceClient
	slots  chan struct{} // one per call in flight
	tracer trace.Tracer  // nil without telemetry

	phases [numPhases]phaseStats
	// Running totals for the progress lines.
	calls, ok, attempts, stale, refusedBreaker, refusedLimiter atomic.Int64
	// breaker is the state of the resilient client's breaker; -1 for none.
	breaker atomic.Int32

	// lateMark is the server's late work when the current phase began.
	lateMark int64

	// served are the latencies of the calls the server answered since the
	// last progress line.
	mu     sync.Mutex
	served []time.Duration
}

// snapshot returns the client's running totals.
func (c *client) snapshot() totals {
	return totals{c.calls.Load(), c.ok.Load(), c.attempts.Load(), c.stale.Load(),
		c.refusedBreaker.Load(), c.refusedLimiter.Load(), int64(c.srv.faults.Work(resiliencetest.AllMethods).Late)}
}

// takeServed returns the latencies of the calls the server answered since
// the last call, and forgets them.
func (c *client) takeServed() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.served
	c.served = nil
	return l
}

// demo is one run of the timeline.
type demo struct {
	cfg      config
	phaseDur time.Duration
	out      *lockedWriter
	// start is when the traffic started, in Unix nanoseconds; the servers'
	// hooks read it concurrently.
	start atomic.Int64
	// timeline is what -plot draws: the progress lines' figures and the
	// breaker's transitions.
	timeline timeline
	// breakerLog prints the breaker's transitions, repeated probing
	// summarised.
	breakerLog breakerLog
}

func (d *demo) startTime() time.Time { return time.Unix(0, d.start.Load()) }

// phaseOf returns the phase that t falls in.
func (d *demo) phaseOf(t time.Time) int {
	i := int(t.Sub(d.startTime()) / d.phaseDur)
	return min(max(i, 0), numPhases-1)
}

// elapsed returns the time since the start, 0 before it.
func (d *demo) elapsed() time.Duration {
	if s := d.start.Load(); s != 0 {
		return time.Since(time.Unix(0, s))
	}
	return 0
}

// logf prints an event line with the time since the start.
func (d *demo) logf(format string, args ...any) {
	el := d.elapsed()
	d.out.printf("%6s  -- "+format+"\n", append([]any{fmt.Sprintf("%.2fs", el.Seconds())}, args...)...)
}

func (d *demo) phaseDescription(p int) string {
	switch phaseNames[p] {
	case "noise":
		return fmt.Sprintf("%s of attempts fail with Unavailable", percent(d.cfg.Noise))
	case "slow":
		return fmt.Sprintf("%s of attempts take %v longer", percent(d.cfg.Tail), d.cfg.TailLatency)
	case "overload":
		from, to := d.spike()
		return fmt.Sprintf("the server serves %d at once, %v each (%.0f/s), queues %d more; "+
			"load %.0f/s (%.1f x capacity) from %.1fs to %.1fs",
			d.cfg.Workers, d.cfg.Service, d.cfg.capacity(), d.cfg.Queue, d.spikeRate(), d.cfg.Spike, from.Seconds(), to.Seconds())
	case "outage":
		return "every attempt fails with Unavailable (the server is up)"
	default:
		return fmt.Sprintf("server stopped for %v, then serves again on the same port", d.cfg.Down)
	}
}

func percent(f float64) string { return strconv.FormatFloat(f*100, 'g', 4, 64) + "%" }

// hasCapacity reports whether the server has a finite capacity in phase
// p: from the overload phase until the restart.
func (d *demo) hasCapacity(p int) bool {
	return p == overloadPhase || p == overloadPhase+1
}

// spike returns when the overload phase's spike of load begins and ends,
// since the start: from a quarter to half of the phase.
func (d *demo) spike() (from, to time.Duration) {
	start := time.Duration(overloadPhase) * d.phaseDur
	return start + d.phaseDur/4, start + d.phaseDur/2
}

// spikeRate is the calls per second, per client, during the spike.
func (d *demo) spikeRate() float64 { return d.cfg.Spike * d.cfg.capacity() }

// rateAt is the calls per second, per client, scheduled at el since the
// start.
func (d *demo) rateAt(el time.Duration) float64 {
	if from, to := d.spike(); el >= from && el < to {
		return d.spikeRate()
	}
	return d.cfg.Rate
}

// runDemo starts the servers and clients, plays the timeline and returns
// the figures. Progress lines go to progress.
func runDemo(ctx context.Context, cfg config, progress io.Writer) (*results, error) {
	d := &demo{cfg: cfg, phaseDur: cfg.phaseDuration(), out: &lockedWriter{w: progress}}

	tel, err := setupTelemetry(ctx, cfg.otlpEndpoint, d.out)
	if err != nil {
		return nil, err
	}
	defer tel.shutdown(d.out)

	plain, err := d.newClient(ctx, "plain", tel)
	if err != nil {
		return nil, err
	}
	defer plain.close()
	resilient, err := d.newClient(ctx, "resilient", tel)
	if err != nil {
		return nil, err
	}
	defer resilient.close()
	clients := []*client{plain, resilient}
	d.timeline.names = []string{plain.name, resilient.name}

	d.printHeader(tel)
	interrupted, err := d.play(ctx, clients)
	return d.results(clients, interrupted), err
}

// newClient starts a server for the client name and connects to it.
func (d *demo) newClient(ctx context.Context, name string, tel *telemetry) (_ *client, err error) {
	c := &client{name: name, slots: make(chan struct{}, d.cfg.Concurrency)}
	c.breaker.Store(-1)
	srv, err := d.newServer(c, tel)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	defer func() {
		if err != nil {
			c.srv.close()
		}
	}()

	// The plain client: grpc-go as it comes, with its retries switched
	// off explicitly (they are off without a service config anyway).
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
	}
	if name == "resilient" {
		c.breaker.Store(int32(breaker.StateClosed))
		m, err := interceptors.New(d.resilienceOptions(c, tel)...)
		if err != nil {
			return nil, err
		}
		opts = append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts = append(opts, tel.clientOptions(name)...)
	c.tracer = tel.tracer()

	conn, err := grpc.NewClient(c.srv.addr(), opts...)
	if err != nil {
		return nil, err
	}
	// Connect both clients before the clock starts, so that neither pays
	// for its first connection inside the noise phase.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(cctx, s) {
			conn.Close()
			return nil, fmt.Errorf("%s client: connecting to %s: %v (state %v)", name, c.srv.addr(), cctx.Err(), s)
		}
	}
	c.conn, c.stub = conn, testingv1.NewEchoServiceClient(conn)
	return c, nil
}

// resilienceOptions are the resilient client's options: the library's
// defaults (the breaker's hook only watches it), unless -hedge=0 hedging
// of Echo, and unless -stale=false a stale-answer fallback for Echo.
// printHeader says so.
func (d *demo) resilienceOptions(c *client, tel *telemetry) []interceptors.Option {
	opts := []interceptors.Option{
		interceptors.WithBreaker(breaker.Config{
			// Every other field zero: the library's defaults.
			OnStateChange: func(_ string, from, to breaker.State) {
				c.breaker.Store(int32(to))
				d.timeline.transition(d.elapsed(), to)
				d.breakerLog.transition(d, c.name, from, to)
			},
		}),
	}
	if d.cfg.Hedge > 0 {
		opts = append(opts, interceptors.WithMethodPolicy(
			interceptors.MatchMethods(testingv1.EchoService_Echo_FullMethodName),
			interceptors.Hedging(interceptors.HedgePolicy{Delay: d.cfg.Hedge, Percentile: d.cfg.HedgePercentile, MaxAttempts: 2})))
	}
	if d.cfg.Stale {
		// Echo is a read: it may be answered from the newest copy of its
		// reply, at most 5 minutes old, when the server cannot answer.
		store, err := fallback.NewStore(fallback.Config{MaxBytes: 16 << 20, MaxAge: 5 * time.Minute})
		if err == nil {
			h := store.Handler()
			answer := h.Answer
			h.Answer = func(ctx context.Context, method string, req, reply any, err error) (fallback.Info, error) {
				// Keep why the call failed, for the table: a call the
				// breaker refused at once is counted as such, stale
				// answer or not.
				if cause, ok := ctx.Value(causeKey{}).(*error); ok {
					*cause = err
				}
				return answer(ctx, method, req, reply, err)
			}
			opts = append(opts, interceptors.WithMethodPolicy(
				interceptors.MatchMethods(testingv1.EchoService_Echo_FullMethodName),
				interceptors.Fallback(h)))
		}
	}
	return append(opts, tel.interceptorOptions()...)
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	c.srv.close()
}

// call makes call i, scheduled at at, and records it in phase p.
func (c *client) call(d *demo, i int, at time.Time, p int) {
	ctx, cancel := context.WithDeadline(context.Background(), at.Add(d.cfg.Timeout))
	defer cancel()
	var span trace.Span
	if c.tracer != nil {
		ctx, span = c.tracer.Start(ctx, "chaos "+c.name, trace.WithTimestamp(at), trace.WithAttributes(
			attribute.String("chaos.client", c.name),
			attribute.String("chaos.phase", phaseNames[p]),
			attribute.Int("chaos.call", i)))
	}
	var err, cause error
	ctx = context.WithValue(ctx, causeKey{}, &cause)
	var info fallback.Info
	attempts := -1
	select {
	case c.slots <- struct{}{}:
		// FallbackInfo says whether the answer was a stale copy, Attempts
		// how many attempts the call made (none: the breaker refused it);
		// a plain client ignores both.
		_, err = c.stub.Echo(ctx, &testingv1.EchoRequest{Message: "item " + strconv.Itoa(i%d.cfg.Keys)},
			interceptors.FallbackInfo(&info), interceptors.Attempts(&attempts))
		<-c.slots
	case <-ctx.Done():
		err = status.Errorf(codes.DeadlineExceeded, "chaos: all %d slots busy until the deadline", d.cfg.Concurrency)
	}
	latency := time.Since(at)
	if span != nil {
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
	}

	ps := &c.phases[p]
	ps.calls.Add(1)
	if err == nil {
		ps.ok.Add(1)
		c.ok.Add(1)
		if info.Used {
			ps.stale.Add(1)
			c.stale.Add(1)
		} else {
			ps.mu.Lock()
			ps.latencies = append(ps.latencies, latency)
			ps.mu.Unlock()
			c.mu.Lock()
			c.served = append(c.served, latency)
			c.mu.Unlock()
		}
	}
	if cause == nil {
		cause = err
	}
	// Refused before any attempt, without touching the network (and
	// answered from a stale copy, if one was there), by the open breaker
	// or by the concurrency limiter (at once, or after waiting in its
	// queue as long as the call's deadline allowed); not a call that
	// waited for a connection or a probe slot.
	if attempts == 0 {
		switch {
		case errors.Is(cause, breaker.ErrOpen):
			ps.refusedBreaker.Add(1)
			c.refusedBreaker.Add(1)
		case errors.Is(cause, limiter.ErrLimited):
			ps.refusedLimiter.Add(1)
			c.refusedLimiter.Add(1)
		}
	}
	c.calls.Add(1)
}

// play runs the timeline: it switches the servers' faults at each phase,
// schedules the calls and prints a progress line per second and client.
// It reports whether ctx ended the run early.
func (d *demo) play(ctx context.Context, clients []*client) (interrupted bool, err error) {
	servers := make([]*server, len(clients))
	for i, c := range clients {
		servers[i] = c.srv
	}
	if err := d.applyPhase(0, servers); err != nil {
		return false, err
	}
	start := time.Now()
	d.start.Store(start.UnixNano())
	end := start.Add(time.Duration(numPhases) * d.phaseDur)
	d.logf("%s: %s", phaseNames[0], d.phaseDescription(0))

	type event struct {
		at time.Time
		do func()
	}
	var events []event
	var restartErr, phaseErr error
	for p := 1; p < numPhases; p++ {
		events = append(events, event{start.Add(time.Duration(p) * d.phaseDur), func() {
			d.endPhase(p-1, clients)
			d.logf("%s: %s", phaseNames[p], d.phaseDescription(p))
			if err := d.applyPhase(p, servers); err != nil {
				phaseErr = errors.Join(phaseErr, err)
				d.logf("setting the faults of %s failed: %v", phaseNames[p], err)
			}
		}})
	}
	events = append(events, event{start.Add(time.Duration(numPhases-1)*d.phaseDur + d.cfg.Down), func() {
		restartErr = forEach(servers, func(s *server) error { return s.lis.Restart() })
		if restartErr != nil {
			d.logf("restart failed: %v", restartErr)
			return
		}
		d.logf("servers serving again on the same ports")
	}})

	var calls sync.WaitGroup
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	calls.Go(func() { d.schedule(schedCtx, clients, start, end, &calls) })

	last := make([]totals, len(clients))
	second := 1
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		next := end
		if len(events) > 0 && events[0].at.Before(next) {
			next = events[0].at
		}
		tick := start.Add(time.Duration(second) * time.Second)
		if tick.Before(next) {
			next = tick
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-ctx.Done():
			interrupted = true
		}
		if interrupted {
			d.logf("interrupted: waiting for the calls in flight")
			break
		}
		now := time.Now()
		// The second that ends now is printed before what starts now (a
		// phase at 10 s), so that each row follows its own phase's header.
		if !now.Before(tick) {
			d.printProgress(second, clients, last)
			second++
		}
		for len(events) > 0 && !now.Before(events[0].at) {
			events[0].do()
			events = events[1:]
		}
		if !now.Before(end) {
			break
		}
	}
	stopSched()
	calls.Wait()
	d.endPhase(d.phaseOf(time.Now()), clients)
	d.breakerLog.flush(d)
	if d.progressChanged(clients, last) {
		d.printProgress(-1, clients, last)
	}
	return interrupted, errors.Join(phaseErr, restartErr)
}

// schedule starts the calls of every client, one every 1/rate seconds at
// the rate of the moment (rateAt), until end.
func (d *demo) schedule(ctx context.Context, clients []*client, start, end time.Time, calls *sync.WaitGroup) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var el time.Duration // of call i since the start
	for i := 0; ; i, el = i+1, el+time.Duration(float64(time.Second)/d.rateAt(el)) {
		at := start.Add(el)
		if !at.Before(end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		p := d.phaseOf(at)
		for _, c := range clients {
			calls.Go(func() { c.call(d, i, at, p) })
		}
	}
}

// applyPhase sets the faults of phase p on every server, in place of the
// previous phase's. The capacity limit of the overload phase stays through
// the outage (whose attempts fail before they take a worker), so that the
// server works off the queue the overload left at its own pace; it goes
// with the restart.
func (d *demo) applyPhase(p int, servers []*server) error {
	const every = resiliencetest.AllMethods
	for _, s := range servers {
		if p != overloadPhase+1 { // the outage keeps the overload's capacity
			s.faults.Clear(every)
		}
		var err error
		switch phaseNames[p] {
		case "noise":
			err = s.faults.InjectFraction(every, d.cfg.Noise,
				resiliencetest.Fail(codes.Unavailable).WithMessage("chaos: transient noise"))
		case "slow":
			err = s.faults.SetLatency(every, d.cfg.Tail, d.cfg.TailLatency)
		case "overload":
			err = s.faults.SetCapacity(every, resiliencetest.Capacity{Workers: d.cfg.Workers, Service: d.cfg.Service, Queue: d.cfg.Queue})
		case "outage":
			err = s.faults.InjectFraction(every, 1,
				resiliencetest.Fail(codes.Unavailable).WithMessage("chaos: outage"))
		}
		if err != nil {
			return err
		}
	}
	if phaseNames[p] == "restart" {
		_ = forEach(servers, func(s *server) error { s.lis.Stop(); return nil })
		d.logf("servers stopped")
	}
	return nil
}

// endPhase records, for each client, the work its server did for callers
// who had gone during phase p (since the previous phase ended).
func (d *demo) endPhase(p int, clients []*client) {
	for _, c := range clients {
		late := int64(c.srv.faults.Work(resiliencetest.AllMethods).Late)
		c.phases[p].late.Store(late - c.lateMark)
		c.lateMark = late
	}
}

// forEach runs f on every server at once, so that both clients see the
// change at the same time, and returns the first error.
func forEach(servers []*server, f func(*server) error) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = f(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *demo) printHeader(tel *telemetry) {
	c := d.cfg
	w := d.out
	w.printf("chaos: %d phases x %v, %v calls/s per client, at most %d in flight each, %v deadline per call\n",
		numPhases, d.phaseDur, c.Rate, c.Concurrency, c.Timeout)
	for p := range numPhases {
		w.printf("  %-8s %5.1fs-%5.1fs  %s\n", phaseNames[p],
			(time.Duration(p) * d.phaseDur).Seconds(), (time.Duration(p+1) * d.phaseDur).Seconds(), d.phaseDescription(p))
	}
	w.printf("plain:     grpc.NewClient + grpc.WithDisableRetry\n")
	w.printf("resilient: interceptors.New(...).DialOptions(), library defaults (3 attempts, backoff 50ms x 2^n,\n")
	w.printf("           retry budget, breaker open 25ms-100ms, ready wait, adaptive concurrency limit), and:\n")
	switch {
	case c.Hedge > 0 && c.HedgePercentile > 0:
		w.printf("             Echo hedged at its p%g latency (%v until 100 are seen), 2 in flight (default: no hedging)  -hedge=0 to turn off\n",
			100*c.HedgePercentile, c.Hedge)
	case c.Hedge > 0:
		w.printf("             Echo hedged after %v, 2 in flight (default: no hedging)  -hedge=0 to turn off\n", c.Hedge)
	default:
		w.printf("             (no hedging, the default)\n")
	}
	if c.Stale {
		w.printf("             Echo answered from a stale copy (<= 5m old) when the server cannot  -stale=false to turn off\n")
	}
	w.printf("requests:  %d distinct (item 0..%d), so a stale copy exists once an item was answered  -keys\n", c.Keys, c.Keys-1)
	if tel != nil {
		w.printf("telemetry: OTLP traces and metrics to %s\n", tel.endpoint)
	} else {
		w.printf("telemetry: off (set OTEL_EXPORTER_OTLP_ENDPOINT to export traces and metrics)\n")
	}
	w.printf("\n%6s  %-8s  %-9s  %6s  %6s  %8s  %16s  %9s  %7s  %s\n", "time", "phase", "client", "calls", "ok", "attempts",
		"refused: brk lim", "late work", "p99", "breaker")
}

// printProgress prints, for each client, what happened since the last
// line: calls that ended, how many succeeded, attempts that reached the
// server, calls the breaker refused. second < 0 marks the final line, for
// calls that ended after the schedule.
func (d *demo) printProgress(second int, clients []*client, last []totals) {
	label := "end"
	phase := phaseNames[d.phaseOf(time.Now())]
	to := d.elapsed()
	if second >= 0 {
		label = fmt.Sprintf("%ds", second)
		phase = phaseNames[d.phaseOf(d.startTime().Add(time.Duration(second)*time.Second-1))]
		to = time.Duration(second) * time.Second
	}
	deltas := make([]totals, len(clients))
	p99 := make([]float64, len(clients))
	for i, c := range clients {
		now := c.snapshot()
		delta := now.sub(last[i])
		last[i], deltas[i] = now, delta
		p99[i] = -1
		lat := "-"
		if served := c.takeServed(); len(served) > 0 {
			p99[i] = quantileMS(served, 0.99)
			lat = formatMS(p99[i])
		}
		// The plain client has no breaker and no limiter.
		state, refused := "-", "-"
		if s := c.breaker.Load(); s >= 0 {
			state, refused = breaker.State(s).String(), fmt.Sprintf("%d %d", delta.refusedBreaker, delta.refusedLimiter)
		}
		d.out.printf("%6s  %-8s  %-9s  %6d  %6d  %8d  %16s  %9d  %7s  %s\n", label, phase, c.name,
			delta.calls, delta.ok, delta.attempts, refused, delta.late, lat, state)
	}
	d.timeline.add(to, deltas, p99)
}

func (d *demo) progressChanged(clients []*client, last []totals) bool {
	for i, c := range clients {
		if c.snapshot() != last[i] {
			return true
		}
	}
	return false
}

// lockedWriter serializes the lines of the controller and of the breaker
// hook.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// breakerLog prints the resilient client's breaker transitions. While the
// breaker keeps probing a broken server (open -> half-open -> open once
// per open period), the first failed probe is printed and the next ones
// are counted, then summarised in one line when the probing ends (the
// breaker closes, or the run ends).
type breakerLog struct {
	mu       sync.Mutex
	probing  bool          // a failed probe was printed; the next are counted
	failed   int           // failed probes since, not printed
	since    time.Duration // when counting started
	lastOpen time.Duration // of the last failed probe counted
	halfOpen time.Duration // when the probe in progress began; -1: none
}

func (b *breakerLog) transition(d *demo, client string, from, to breaker.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.probing && from == breaker.StateOpen && to == breaker.StateHalfOpen:
		b.halfOpen = d.elapsed() // the start of another probe: printed if it is not one more failure
		return
	case b.probing && from == breaker.StateHalfOpen && to == breaker.StateOpen:
		b.failed++
		b.lastOpen, b.halfOpen = d.elapsed(), -1
		return
	case from == breaker.StateHalfOpen && to == breaker.StateOpen:
		b.probing, b.since, b.halfOpen = true, d.elapsed(), -1
		d.logf("%s breaker %v -> %v (probe failed; further failed probes are summarised)", client, from, to)
		return
	}
	b.summaryLocked(d, client)
	d.logf("%s breaker %v -> %v", client, from, to)
}

// flush prints the summary of a probing still going on at the end.
func (b *breakerLog) flush(d *demo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.summaryLocked(d, "resilient")
}

func (b *breakerLog) summaryLocked(d *demo, client string) {
	if b.failed > 0 {
		d.logf("%s breaker: %d more probes failed from %.2fs to %.2fs (open -> half-open -> open, once per open period)",
			client, b.failed, b.since.Seconds(), b.lastOpen.Seconds())
	}
	if b.probing && b.halfOpen >= 0 {
		d.logf("%s breaker %v -> %v at %.2fs", client, breaker.StateOpen, breaker.StateHalfOpen, b.halfOpen.Seconds())
	}
	b.probing, b.failed, b.halfOpen = false, 0, -1
}
