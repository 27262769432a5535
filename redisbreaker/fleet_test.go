package redisbreaker

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errDown = status.Error(codes.Unavailable, "connection refused")

func (m *member) state(key string) breaker.State { return m.set.State(key) }

// member is one instance of a fleet: its own Redis client, Shared and Set.
type member struct {
	set *breaker.Set
	sh  *Shared

	mu     sync.Mutex
	opened time.Time // real time of the last transition to open
}

// newMember starts a member whose Set has the breaker settings of bc (its
// Shared and OnStateChange are the member's). The breakers run on real
// time, as Redis does: a test that needs one open for long says so in bc.
func newMember(t *testing.T, r *redisServer, bc breaker.Config, o Options) *member {
	t.Helper()
	sh, err := New(r.client(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	m := &member{sh: sh}
	bc.Shared = sh
	bc.OnStateChange = func(_ string, _, to breaker.State) {
		if to == breaker.StateOpen {
			m.mu.Lock()
			m.opened = time.Now()
			m.mu.Unlock()
		}
	}
	m.set, err = breaker.NewSet(bc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newFleet(t *testing.T, r *redisServer, n int, bc breaker.Config, o Options) []*member {
	t.Helper()
	fleet := make([]*member, n)
	for i := range fleet {
		fleet[i] = newMember(t, r, bc, o)
	}
	for _, m := range fleet {
		synced(t, m.sh)
	}
	return fleet
}

func allState(fleet []*member, key string, want breaker.State) bool {
	for _, m := range fleet {
		if m.state(key) != want {
			return false
		}
	}
	return true
}

// A fleet of 5 against a downstream that is down trips on the fleet's count
// of failures (25 in a row), not on 25 per member, and every member opens
// within milliseconds of the first. On recovery the fleet sends
// HalfOpenProbes probes, not HalfOpenProbes per member.
func TestFleetTripsAndProbesTogether(t *testing.T) {
	r := sharedRedis(t)
	// Open for 500ms: long beside the pub/sub latency that spreads the
	// members' openings, short enough to wait for in real time.
	const openFor = 500 * time.Millisecond
	fleet := newFleet(t, r, 5, breaker.Config{OpenTimeout: openFor}, Options{Prefix: prefix(t)})
	const key = "dns:///orders.example:443"
	for _, m := range fleet { // a healthy start: every member knows the key
		done, err := m.set.Allow(key)
		if err != nil {
			t.Fatal(err)
		}
		done(nil)
	}

	// 100 attempts/s across the fleet (each member 20/s), all failing.
	failed := 0
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	start := time.Now()
	for !allState(fleet, key, breaker.StateOpen) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("fleet not open after %d failures", failed)
		}
		for _, m := range fleet {
			if done, err := m.set.Allow(key); err == nil {
				failed++
				done(errDown)
			}
		}
		<-pace.C // the load's rate, not a wait for behaviour
	}
	var first, last time.Time
	for _, m := range fleet {
		m.mu.Lock()
		o := m.opened
		m.mu.Unlock()
		if first.IsZero() || o.Before(first) {
			first = o
		}
		if o.After(last) {
			last = o
		}
	}
	spread := last.Sub(first)
	t.Logf("fleet of %d open after %d failed attempts in total (local-only: %d); first to last opening: %v",
		len(fleet), failed, 25*len(fleet), spread)
	if failed > 60 {
		t.Errorf("%d failed attempts reached the downstream before the fleet opened, want <= 60", failed)
	}
	if spread > 100*time.Millisecond { // one Interval
		t.Errorf("members opened over %v, want within one Interval (100ms)", spread)
	}

	// Recovery: the open period ends on every member within the spread of
	// their openings; the load runs on until the fleet has closed.
	probes := 0
	start = time.Now()
	for !allState(fleet, key, breaker.StateClosed) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("fleet not closed after %d probes", probes)
		}
		for _, m := range fleet {
			before := m.state(key)
			if done, err := m.set.Allow(key); err == nil {
				if before != breaker.StateClosed {
					probes++
				}
				done(nil)
			}
		}
		time.Sleep(time.Millisecond) // load pacing
	}
	t.Logf("fleet closed after %d half-open probes in total (local-only: %d) in %v",
		probes, 3*len(fleet), time.Since(start))
	if probes > 3 {
		t.Errorf("%d probes across the fleet, want <= HalfOpenProbes (3)", probes)
	}
}

// Pub/sub carries an opening to the other members in milliseconds.
func TestOpenReachesFleetByPubSub(t *testing.T) {
	r := sharedRedis(t)
	// Open for a minute: each round sees the members open, then closes them.
	fleet := newFleet(t, r, 3, breaker.Config{OpenTimeout: time.Minute}, Options{Prefix: prefix(t), Interval: time.Hour / 2, MaxBackoff: time.Hour})
	const key = "k"
	// With a half-hour Interval only pub/sub can carry the news.
	for _, m := range fleet[1:] {
		done, _ := m.set.Allow(key)
		done(nil)
	}
	var lat []time.Duration
	for i := range 5 {
		opener := fleet[0]
		for opener.state(key) != breaker.StateOpen {
			if done, err := opener.set.Allow(key); err == nil {
				done(errDown)
			}
		}
		t0 := time.Now()
		for _, m := range fleet[1:] {
			eventually(t, 2*time.Second, "member opens", func() bool { return m.state(key) == breaker.StateOpen })
		}
		lat = append(lat, time.Since(t0))
		// Let the fleet close again for the next round.
		for _, m := range fleet[1:] {
			m.sh.member.Close(key)
		}
		fleet[0].sh.member.Close(key)
		if !allState(fleet, key, breaker.StateClosed) {
			t.Fatalf("round %d: fleet not closed", i)
		}
	}
	t.Logf("opening seen by every other member after (pub/sub): %v", lat)
	for _, d := range lat {
		if d > 100*time.Millisecond {
			t.Errorf("pub/sub latency %v, want well under 100ms", d)
		}
	}
}

func TestNewErrors(t *testing.T) {
	r := sharedRedis(t)
	c := r.client(t)
	_, err := New(nil, Options{Prefix: "{x}", Interval: -1, MaxBackoff: time.Millisecond, Timeout: -time.Second})
	for _, want := range []string{
		"redisbreaker: invalid options: nil redis client",
		"Prefix must not contain '{' or '}'",
		"Interval must be >= 0",
		"Timeout must be >= 0",
	} {
		if err == nil || !containsLine(err.Error(), want) {
			t.Errorf("New error = %v, want it to say %q", err, want)
		}
	}
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("error does not match ErrInvalidOptions: %v", err)
	}
	if _, err := New(c, Options{}); err == nil || !containsLine(err.Error(), "Prefix is required") {
		t.Errorf("New without Prefix: %v", err)
	}
	if _, err := New(c, Options{Prefix: "p", Interval: time.Second, MaxBackoff: time.Millisecond}); err == nil ||
		!containsLine(err.Error(), "MaxBackoff (1ms) must be at least Interval (1s)") {
		t.Errorf("New with MaxBackoff < Interval: %v", err)
	}
	sh, err := New(c, Options{Prefix: prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if _, err := breaker.NewSet(breaker.Config{Shared: sh}); err != nil {
		t.Fatal(err)
	}
	if _, err := breaker.NewSet(breaker.Config{Shared: sh}); err == nil || !containsLine(err.Error(), "already attached") {
		t.Errorf("second NewSet on one Shared: %v", err)
	}
}

func containsLine(s, sub string) bool { return strings.Contains(s, sub) }

// With the default open schedule a fleet of 5, each member at 100 calls/s,
// probes a dead downstream through the lease holder only: about one probe
// per open period for the whole fleet, where five local breakers would send
// one each. Once the downstream heals, a probe finds it within about a
// period.
func TestFleetProbesDeadDownstreamTogether(t *testing.T) {
	r := sharedRedis(t)
	// A prefix of this run's own: a lease left by an earlier run (-count)
	// would hold the fleet's probes back for its ProbeLease.
	p := prefix(t) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fleet := newFleet(t, r, 5, breaker.Config{}, Options{Prefix: p})
	const key = "k"
	var healed atomic.Bool
	var attempts, successes atomic.Int64
	var firstSuccess atomic.Int64 // ns since start, 0 until then
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range fleet {
		wg.Go(func() {
			pace := time.NewTicker(10 * time.Millisecond) // the load's rate
			defer pace.Stop()
			for {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				done, err := m.set.Allow(key)
				if err != nil {
					continue
				}
				attempts.Add(1)
				if healed.Load() {
					successes.Add(1)
					firstSuccess.CompareAndSwap(0, int64(time.Since(start)))
					done(nil)
				} else {
					done(errDown)
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	eventually(t, 5*time.Second, "fleet opens", func() bool { return allState(fleet, key, breaker.StateOpen) })
	before := attempts.Load()
	const dead = 2 * time.Second
	time.Sleep(dead) // the downstream stays dead: the load runs on
	probes := attempts.Load() - before
	perSecond := float64(probes) / dead.Seconds()
	t.Logf("dead downstream, fleet of %d at 100 calls/s each: %d attempts in %v (%.1f/s; %d local breakers: about %d/s)",
		len(fleet), probes, dead, perSecond, len(fleet), 10*len(fleet))
	if perSecond > 20 {
		t.Errorf("%.1f attempts/s across the fleet while dead, want about 10 (at most 20)", perSecond)
	}
	healAt := time.Since(start)
	healed.Store(true)
	eventually(t, 5*time.Second, "a success after healing", func() bool { return firstSuccess.Load() != 0 })
	took := time.Duration(firstSuccess.Load()) - healAt
	t.Logf("first success %v after the downstream healed", took)
	if took > 300*time.Millisecond {
		t.Errorf("first success %v after healing, want about one open period (100ms), at most 300ms", took)
	}
}

// A lease holder reopened on another member's word (an opening that
// crossed its lease) gives the lease back at once: kept, it would hold the
// whole fleet's probes back for ProbeLease, its own included.
func TestLeaseReleasedWhenTheFleetReopens(t *testing.T) {
	r := sharedRedis(t)
	p := prefix(t) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	m := newMember(t, r, breaker.Config{OpenTimeout: 50 * time.Millisecond}, Options{Prefix: p})
	synced(t, m.sh)
	const key = "k"
	for m.state(key) != breaker.StateOpen {
		if done, err := m.set.Allow(key); err == nil {
			done(errDown)
		}
	}
	leased := func() bool {
		for _, l := range m.sh.member.Snapshot(nil) {
			if l.Key == key && l.Leased {
				return true
			}
		}
		return false
	}
	eventually(t, 2*time.Second, "the member holds the lease", func() bool { m.state(key); return leased() })
	admin := r.client(t)
	lease := "{" + p + ":" + key + "}:lease"
	if holder, _ := admin.Get(t.Context(), lease).Result(); holder != m.sh.Instance() {
		t.Fatalf("lease held by %q, want %q", holder, m.sh.Instance())
	}
	// Another member's probe failed: it publishes its opening.
	if err := admin.Publish(t.Context(), p+":events", "o 60000 other "+key).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the member reopens on the fleet's word", func() bool { return m.state(key) == breaker.StateOpen })
	eventually(t, 2*time.Second, "the lease is given back", func() bool {
		n, err := admin.Exists(t.Context(), lease).Result()
		return err == nil && n == 0
	})
}
