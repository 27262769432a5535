package redisbreaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// ErrInvalidConfig is wrapped by every error New returns for a nil client or
// an invalid Options field.
var ErrInvalidConfig = errors.New("redisbreaker: invalid config")

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("redisbreaker: closed")

// Options configures a [Shared]. Zero fields take the defaults listed with
// them; negative durations are errors naming the field.
type Options struct {
	// Prefix namespaces every key and the pub/sub channel: one per service
	// (every client of the fleet uses the same), e.g. "checkout". Required;
	// it must not contain '{' or '}' (the keys' hash tag is built from it).
	Prefix string
	// Interval is how often the counts are published and the fleet's read
	// back. Zero means 100ms; at least 1ms.
	Interval time.Duration
	// Timeout bounds one round trip to Redis (a pipeline of one round).
	// go-redis honours it only with the client's ContextTimeoutEnabled set;
	// otherwise the client's ReadTimeout and WriteTimeout bound it. Zero
	// means 1s.
	Timeout time.Duration
	// ProbeLease is how long the fleet's half-open probe lease lasts if its
	// holder neither closes nor reopens the breaker (it went away). Zero
	// means 5s.
	ProbeLease time.Duration
	// MaxBackoff caps the wait between attempts while Redis fails: the
	// wait doubles from Interval up to MaxBackoff, each drawn at random in
	// [wait/2, wait] so a fleet does not reconnect in lockstep. Zero means
	// 5s; at least Interval.
	MaxBackoff time.Duration
	// Instance names this member in the fleet (stored in Redis, in lease
	// and run fields). Empty means a random one; two members must not share
	// one.
	Instance string
	// OnDegraded, if not nil, is called from the background goroutine when
	// the Shared starts (degraded true, with the error) or stops (false,
	// nil) running degraded: on purely local breakers because Redis
	// failed. It must not block for long.
	OnDegraded func(degraded bool, err error)
	// MeterProvider, if not nil, records the metrics listed in the package
	// documentation. nil records none.
	MeterProvider metric.MeterProvider
}

const (
	defaultInterval   = 100 * time.Millisecond
	defaultTimeout    = time.Second
	defaultProbeLease = 5 * time.Second
	defaultMaxBackoff = 5 * time.Second
	maxPending        = 4096 // transitions queued while Redis is unreachable
)

// Shared shares the breakers of one [breaker.Set] with every other Set
// configured with a Shared of the same Prefix on the same Redis. Create it
// with New, put it in breaker.Config.Shared, and Close it when done. It is
// safe for concurrent use.
type Shared struct {
	rdb  redis.UniversalClient
	o    Options
	ch   string // pub/sub channel
	inst string

	attachMu sync.Mutex
	member   *breaker.Member // set once by Attach
	attached chan struct{}   // closed by Attach

	mu      sync.Mutex
	pending []pendingTransition
	votes   map[string]breaker.Vote // votes changed since the last round, by key
	wake    chan struct{}

	degraded atomic.Bool // as reported to OnDegraded
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	ps       *redis.PubSub

	// owned by the sync goroutine
	keys    map[string]*keyState
	snap    []breaker.Local
	period  time.Duration // the breakers' bucket, Window/Buckets: votes are kept per bucket
	roundNo uint64

	received  atomic.Int64  // pub/sub messages applied (tests)
	okRounds  atomic.Int64  // rounds that succeeded (tests)
	synced    chan struct{} // closed after the first round that succeeded (tests)
	listening atomic.Bool   // the pub/sub subscription is confirmed and its connection up

	met metrics
}

type pendingTransition struct {
	breaker.Transition
	at time.Time
}

// New returns a Shared using client, which stays the caller's (Close does
// not close it): a *redis.Client, a Sentinel-backed failover client or a
// *redis.ClusterClient. Its background goroutines start at once; nothing
// is sent to Redis until a Set attaches. The error names the nil client or
// every invalid field.
func New(client redis.UniversalClient, o Options) (*Shared, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	if client == nil {
		bad("nil redis client")
	}
	switch {
	case o.Prefix == "":
		bad("Prefix is required (the service's name, shared by the fleet)")
	case strings.ContainsAny(o.Prefix, "{}"):
		bad("Prefix must not contain '{' or '}', got %q", o.Prefix)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Interval", o.Interval}, {"Timeout", o.Timeout}, {"ProbeLease", o.ProbeLease}, {"MaxBackoff", o.MaxBackoff}} {
		if f.d < 0 {
			bad("%s must be >= 0 (0 means default), got %v", f.name, f.d)
		}
	}
	if o.Interval == 0 {
		o.Interval = defaultInterval
	}
	o.Timeout = cmpOr(o.Timeout, defaultTimeout)
	o.ProbeLease = cmpOr(o.ProbeLease, defaultProbeLease)
	o.MaxBackoff = cmpOr(o.MaxBackoff, defaultMaxBackoff)
	if o.Interval > 0 && o.Interval < time.Millisecond {
		bad("Interval must be at least 1ms, got %v", o.Interval)
	}
	if o.Interval > 0 && o.MaxBackoff > 0 && o.MaxBackoff < o.Interval {
		bad("MaxBackoff (%v) must be at least Interval (%v)", o.MaxBackoff, o.Interval)
	}
	if strings.ContainsAny(o.Instance, " ") {
		bad("Instance must not contain spaces, got %q", o.Instance)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Instance == "" {
		o.Instance = strconv.FormatUint(rand.Uint64(), 36)
	}
	s := &Shared{
		rdb:      client,
		o:        o,
		ch:       o.Prefix + ":events",
		inst:     o.Instance,
		attached: make(chan struct{}),
		synced:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		keys:     make(map[string]*keyState),
	}
	if err := s.met.init(o.MeterProvider, o.Prefix, &s.degraded); err != nil {
		return nil, fmt.Errorf("redisbreaker: metrics: %w", err)
	}
	s.ps = client.Subscribe(context.Background()) // connects on first use
	s.wg.Add(2)
	go s.syncLoop()
	go s.subscribeLoop()
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Attach implements [breaker.Shared]; NewSet calls it. A Shared serves one
// Set: a second Attach fails.
func (s *Shared) Attach(m *breaker.Member) error {
	s.attachMu.Lock()
	defer s.attachMu.Unlock()
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	if s.member != nil {
		return errors.New("redisbreaker: already attached to a Set; create one Shared per Set")
	}
	c := m.Config()
	period := c.Window / time.Duration(c.Buckets)
	if s.o.Interval >= period {
		return fmt.Errorf("redisbreaker: Interval (%v) must be shorter than the breakers' bucket, Window/Buckets (%v): "+
			"a member's view of the fleet's votes holds for one bucket", s.o.Interval, period)
	}
	s.member = m
	s.period = period
	close(s.attached)
	return nil
}

// Transition implements [breaker.Shared]: it queues the transition for the
// background goroutine and wakes it. It never blocks.
func (s *Shared) Transition(t breaker.Transition) {
	s.mu.Lock()
	if len(s.pending) >= maxPending {
		s.pending = s.pending[1:]
	}
	s.pending = append(s.pending, pendingTransition{Transition: t, at: time.Now()})
	s.mu.Unlock()
	s.wakeUp()
}

// Voted implements [breaker.Shared]: it queues the key's new vote for the
// background goroutine, which publishes it and reads the fleet's at once,
// and wakes it. It never blocks.
func (s *Shared) Voted(key string, v breaker.Vote) {
	s.mu.Lock()
	s.queueVoteLocked(key, v, true)
	s.mu.Unlock()
	s.wakeUp()
}

// queueVoteLocked queues key's vote v for the next round: over a vote
// already queued for key if replace, else only if none is; a key not
// queued yet only while fewer than maxPending are. Caller holds s.mu.
func (s *Shared) queueVoteLocked(key string, v breaker.Vote, replace bool) {
	if _, queued := s.votes[key]; (queued && !replace) || (!queued && len(s.votes) >= maxPending) {
		return
	}
	if s.votes == nil {
		s.votes = make(map[string]breaker.Vote)
	}
	s.votes[key] = v
}

// wakeUp asks the sync goroutine for a round, without blocking.
func (s *Shared) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Degraded reports whether the last round with Redis failed: the Set runs
// on local breakers until one succeeds.
func (s *Shared) Degraded() bool { return s.degraded.Load() }

// Instance returns this member's name in the fleet.
func (s *Shared) Instance() string { return s.inst }

// Close stops the background goroutines and leaves the Set on local
// breakers. It does not close the Redis client. It is safe to call more than
// once.
func (s *Shared) Close() error {
	s.stopOnce.Do(func() {
		s.attachMu.Lock()
		close(s.stop)
		m := s.member
		s.attachMu.Unlock()
		_ = s.ps.Close()
		s.wg.Wait()
		if m != nil {
			m.SetDegraded(true)
		}
		s.met.close()
	})
	return nil
}

// setDegraded records a change of degraded state and reports it.
func (s *Shared) setDegraded(d bool, err error) {
	if s.member != nil {
		s.member.SetDegraded(d)
	}
	if s.degraded.Swap(d) == d {
		return
	}
	if s.o.OnDegraded != nil {
		s.o.OnDegraded(d, err)
	}
}

// backoff returns the wait before the n-th retry (n >= 1): doubling from
// Interval up to MaxBackoff, drawn in [w/2, w].
func (s *Shared) backoff(n int) time.Duration {
	w := s.o.Interval
	for i := 1; i < n && w < s.o.MaxBackoff; i++ {
		w *= 2
	}
	w = min(w, s.o.MaxBackoff)
	return w/2 + rand.N(w/2+1)
}

// sleep waits for d or Close; it reports false on Close.
func (s *Shared) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// syncLoop runs the rounds: a full one (counts out, fleet in) every
// Interval, and one for the queued transitions as soon as one is queued.
func (s *Shared) syncLoop() {
	defer s.wg.Done()
	select {
	case <-s.attached:
	case <-s.stop:
		return
	}
	tick := time.NewTicker(s.o.Interval)
	defer tick.Stop()
	fails := 0
	full := true // the first round reads the fleet at once
	for {
		err := s.round(full)
		switch {
		case err == nil && !s.listening.Load():
			// Redis answers; the subscription is on its way and wakes
			// this loop once confirmed. Before the first subscription
			// that is just starting up, not worth a report.
			if s.okRounds.Load() == 0 {
				s.member.SetDegraded(true)
			} else {
				s.setDegraded(true, errNotListening)
			}
		case err != nil:
			fails++
			s.met.syncErrors.Add(context.Background(), 1, s.met.attrs)
			s.setDegraded(true, err)
			if !s.sleep(s.backoff(fails)) {
				return
			}
			full = true
			continue
		default:
			if s.okRounds.Add(1) == 1 {
				close(s.synced)
			}
			if fails > 0 || full {
				fails = 0
				s.setDegraded(false, nil)
			}
		}
		select {
		case <-s.stop:
			return
		case <-tick.C:
			full = true
		case <-s.wake:
			full = s.member != nil && s.degraded.Load() || s.okRounds.Load() == 0
		}
	}
}

// errNotListening makes a member degraded while its pub/sub subscription is
// down, even if its rounds succeed: it would miss the fleet's openings.
var errNotListening = errors.New("redisbreaker: pub/sub subscription not up")

// subscribeLoop applies the other members' opens and closes as they are
// published. go-redis resubscribes on reconnect; this loop paces its retries
// with the same jittered backoff as the sync loop.
func (s *Shared) subscribeLoop() {
	defer s.wg.Done()
	select {
	case <-s.attached:
	case <-s.stop:
		return
	}
	ctx := context.Background()
	fails := 0
	subscribed := false
	health := max(10*s.o.Interval, time.Second)
	for {
		if !subscribed {
			if err := s.ps.Subscribe(ctx, s.ch); err != nil {
				if s.closed() || !s.sleep(s.backoff(fails+1)) {
					return
				}
				fails++
				continue
			}
			subscribed = true
		}
		msg, err := s.ps.ReceiveTimeout(ctx, health)
		if err != nil {
			if s.closed() {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				_ = s.ps.Ping(ctx) // the next Receive reads the pong, or fails
				continue
			}
			s.listening.Store(false) // go-redis resubscribes on the next Receive
			fails++
			if !s.sleep(s.backoff(fails)) {
				return
			}
			continue
		}
		fails = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !s.listening.Swap(true) {
				s.wakeUp() // a round now, to leave degraded mode
			}
		case *redis.Message:
			s.apply(m.Payload)
		}
	}
}

func (s *Shared) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Messages on the channel: "o <ms> <instance> <key>" (opened for ms) and
// "c 0 <instance> <key>" (closed: its probes succeeded). The key is last, so
// it may hold spaces.
func (s *Shared) apply(payload string) {
	kind, rest, ok1 := strings.Cut(payload, " ")
	ms, rest, ok2 := strings.Cut(rest, " ")
	inst, key, ok3 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !ok3 || inst == s.inst {
		return
	}
	switch kind {
	case "o":
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/int64(time.Millisecond) {
			return // not a duration: n ms would overflow
		}
		s.member.Open(key, time.Duration(n)*time.Millisecond)
	case "c":
		s.member.Close(key)
	default:
		return
	}
	s.received.Add(1)
}

// metrics are the Shared's instruments (no-ops without a MeterProvider).
type metrics struct {
	syncErrors metric.Int64Counter
	rounds     metric.Float64Histogram
	published  metric.Int64Counter
	attrs      metric.MeasurementOption
	reg        metric.Registration
}

func (m *metrics) init(mp metric.MeterProvider, prefix string, degraded *atomic.Bool) error {
	m.attrs = metric.WithAttributeSet(attribute.NewSet(attribute.String("resilience.redisbreaker.prefix", prefix)))
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	meter := mp.Meter("github.com/grpc-resilience/resilience/redisbreaker")
	var err, e error
	m.syncErrors, e = meter.Int64Counter("resilience.redisbreaker.errors",
		metric.WithUnit("{error}"), metric.WithDescription("Rounds with Redis that failed."))
	err = errors.Join(err, e)
	m.rounds, e = meter.Float64Histogram("resilience.redisbreaker.round.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of the rounds with Redis that succeeded."))
	err = errors.Join(err, e)
	m.published, e = meter.Int64Counter("resilience.redisbreaker.published",
		metric.WithUnit("{message}"), metric.WithDescription("Opens and closes published to the fleet."))
	err = errors.Join(err, e)
	g, e := meter.Int64ObservableGauge("resilience.redisbreaker.degraded",
		metric.WithUnit("1"), metric.WithDescription("1 while the breakers run local-only because Redis failed, else 0."))
	err = errors.Join(err, e)
	if err != nil {
		return err
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("resilience.redisbreaker.prefix", prefix)))
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if degraded.Load() {
			v = 1
		}
		o.ObserveInt64(g, v, attrs)
		return nil
	}, g)
	return err
}

func (m *metrics) close() {
	if m.reg != nil {
		_ = m.reg.Unregister()
	}
}

// invalid is an error wrapping ErrInvalidConfig, as breaker's and
// backoff's.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
