package redisbreaker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errDown    = status.Error(codes.Unavailable, "connection refused")
	errFailing = status.Error(codes.Internal, "the server fails everything")
)

// member is one instance of a fleet: its own Redis client, Shared and Set.
type member struct {
	set *breaker.Set
	sh  *Shared

	mu  sync.Mutex
	trs []transition // every transition of its breakers, in order
}

type transition struct {
	at       time.Time
	key      string
	from, to breaker.State
}

func (m *member) state(key string) breaker.State { return m.set.State(key) }

// transitions returns the member's transitions of key.
func (m *member) transitions(key string) []transition {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []transition
	for _, tr := range m.trs {
		if tr.key == key {
			out = append(out, tr)
		}
	}
	return out
}

// opened returns when key's breaker last opened (zero if never).
func (m *member) opened(key string) time.Time {
	var at time.Time
	for _, tr := range m.transitions(key) {
		if tr.to == breaker.StateOpen {
			at = tr.at
		}
	}
	return at
}

// local returns the member's Snapshot of key.
func (m *member) local(key string) breaker.Local {
	for _, l := range m.sh.member.Snapshot(nil) {
		if l.Key == key {
			return l
		}
	}
	return breaker.Local{Key: key}
}

// newMember starts a member on client whose Set has the breaker settings
// of bc (its Shared and OnStateChange are the member's). The breakers run
// on real time, as Redis does: a test that needs one open for long says so
// in bc.
func newMember(t *testing.T, client redis.UniversalClient, bc breaker.Config, o Options) *member {
	t.Helper()
	sh, err := New(client, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	m := &member{sh: sh}
	bc.Shared = sh
	bc.OnStateChange = func(key string, from, to breaker.State) {
		m.mu.Lock()
		m.trs = append(m.trs, transition{time.Now(), key, from, to})
		m.mu.Unlock()
	}
	m.set, err = breaker.NewSet(bc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newFleet starts n members, each with a client of its own from dial.
func newFleet(t *testing.T, dial func(t *testing.T) redis.UniversalClient, n int, bc breaker.Config, o Options) []*member {
	t.Helper()
	fleet := make([]*member, n)
	for i := range fleet {
		oi := o
		if oi.Instance == "" {
			oi.Instance = fmt.Sprintf("m%d", i)
		}
		fleet[i] = newMember(t, dial(t), bc, oi)
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

// warmUp calls key successfully on every member (the load, at one call
// every few milliseconds) until each has published its vote and then run a
// round with every other member's vote in Redis: every member's view of
// the fleet is then whole.
func warmUp(t *testing.T, admin redis.UniversalClient, fleet []*member, key string) {
	t.Helper()
	call := func() {
		for _, m := range fleet {
			if done, err := m.set.Allow(key); err == nil {
				done(nil)
			}
		}
		time.Sleep(5 * time.Millisecond) // the load's pace
	}
	period := fleet[0].sh.period
	eventually(t, 5*time.Second, "every member's vote in Redis", func() bool {
		call()
		voters := map[string]bool{}
		b := time.Now().UnixNano() / int64(period)
		for _, bk := range []int64{b, b - 1} {
			m, _ := admin.HGetAll(context.Background(), bucketKey(fleet[0].sh.tag(key), bk)).Result()
			for f := range m {
				voters[f] = true
			}
		}
		for _, m := range fleet {
			if !voters["v:"+m.sh.Instance()] {
				return false
			}
		}
		return true
	})
	rounds := make([]int64, len(fleet))
	for i, m := range fleet {
		rounds[i] = m.sh.okRounds.Load()
	}
	eventually(t, 5*time.Second, "a round of every member after the votes", func() bool {
		call()
		for i, m := range fleet {
			if m.sh.okRounds.Load() <= rounds[i] {
				return false
			}
		}
		return true
	})
}

// outcome is what a member's attempts meet.
type outcome int32

const (
	healthy outcome = iota
	down            // every attempt fails: connections refused
	failing         // every attempt fails: the server answers with errors
	noisy           // 30% of attempts fail
)

// drive runs each member's load at its rate until stopped: an attempt every
// 1/rate, whose outcome its current outcome decides.
type drive struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	loads []*memberLoad
}

// memberLoad is one member's side of a drive.
type memberLoad struct {
	m        *member
	outcome  atomic.Int32
	calls    atomic.Int64
	admitted atomic.Int64
	failed   atomic.Int64 // admitted attempts that failed
	// firstOK is the time (unix ns) of the first success since mark.
	mark, firstOK atomic.Int64
}

func (l *memberLoad) set(o outcome) { l.outcome.Store(int32(o)) }

// success returns the share of the admitted attempts that succeeded.
func (l *memberLoad) success() float64 {
	a := l.admitted.Load()
	if a == 0 {
		return 0
	}
	return float64(a-l.failed.Load()) / float64(a)
}

func startDrive(t *testing.T, fleet []*member, key string, rates []float64) *drive {
	d := &drive{stop: make(chan struct{})}
	for i, m := range fleet {
		l := &memberLoad{m: m}
		d.loads = append(d.loads, l)
		d.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 23))
			pace := time.NewTicker(time.Duration(float64(time.Second) / rates[i]))
			defer pace.Stop()
			for {
				select {
				case <-d.stop:
					return
				case <-pace.C:
				}
				l.calls.Add(1)
				done, err := m.set.Allow(key)
				if err != nil {
					continue
				}
				l.admitted.Add(1)
				var out error
				switch outcome(l.outcome.Load()) {
				case down:
					out = errDown
				case failing:
					out = errFailing
				case noisy:
					if rng.Float64() < 0.3 {
						out = errDown
					}
				}
				if out != nil {
					l.failed.Add(1)
				} else if l.mark.Load() != 0 {
					l.firstOK.CompareAndSwap(0, time.Now().UnixNano())
				}
				done(out)
			}
		})
	}
	t.Cleanup(d.end)
	return d
}

func (d *drive) end() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.wg.Wait()
}

// watchChannel records the fleet's pub/sub messages from now on.
func watchChannel(t *testing.T, admin redis.UniversalClient, channel string) func() []string {
	ps := admin.Subscribe(context.Background(), channel)
	if _, err := ps.Receive(context.Background()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ps.Channel() {
			mu.Lock()
			got = append(got, msg.Payload)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { ps.Close(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// watchedFleet starts a fleet of 5 members with the default breaker on
// clients from dial, warms it up on key, and records what it publishes
// from then on; it returns the fleet, a client of its own and the record.
func watchedFleet(t *testing.T, dial func(t *testing.T) redis.UniversalClient, key string) ([]*member, redis.UniversalClient, func() []string) {
	t.Helper()
	o := Options{Prefix: prefix(t)}
	fleet := newFleet(t, dial, 5, breaker.Config{}, o)
	admin := dial(t)
	warmUp(t, admin, fleet, key)
	return fleet, admin, watchChannel(t, admin, o.Prefix+":events")
}

// The four cases of one bad member, on the Set: five members share one
// key, four reach a healthy downstream, one has a broken path of its own
// (50 calls/s each, or the bad one at 500/s and the others at 20/s; its
// connects refused, or its server failing). The healthy members' breakers
// never leave closed and all their attempts go through; the bad member
// opens its own breaker, on its own (nothing published), and keeps
// protecting itself: after its 25 failures about 10 probes a second.
func TestOneBadMemberOpensOnlyItself(t *testing.T) {
	r := sharedRedis(t)
	for _, tc := range []struct {
		name      string
		bad, good float64 // calls/s
		broken    outcome
	}{
		{"50 calls/s each, bad member's connects refused", 50, 50, down},
		{"50 calls/s each, bad member's server fails everything", 50, 50, failing},
		{"bad member at 500/s, others at 20/s, refused", 500, 20, down},
		{"bad member at 500/s, others at 20/s, failing", 500, 20, failing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const key = "dns:///orders.example:443"
			fleet, _, published := watchedFleet(t, r.dial, key)
			d := startDrive(t, fleet, key, []float64{tc.bad, tc.good, tc.good, tc.good, tc.good})
			start := time.Now()
			d.loads[0].set(tc.broken)
			const run = 2 * time.Second
			time.Sleep(run) // the load runs
			d.end()

			bad := d.loads[0]
			t.Logf("bad member: %d calls, %d attempts let through; transitions %d", bad.calls.Load(), bad.admitted.Load(), len(fleet[0].transitions(key)))
			for i, l := range d.loads[1:] {
				t.Logf("healthy member %d: %d calls, %d admitted, success %.1f%%", i+1, l.calls.Load(), l.admitted.Load(), 100*l.success())
				if trs := l.m.transitions(key); len(trs) != 0 {
					t.Errorf("healthy member %d: breaker moved %d times, first to %v after %v; want closed throughout",
						i+1, len(trs), trs[0].to, trs[0].at.Sub(start))
				}
				if l.admitted.Load() != l.calls.Load() || l.success() < 1 {
					t.Errorf("healthy member %d: %d of %d calls admitted, success %.1f%%; want every call, all successful",
						i+1, l.admitted.Load(), l.calls.Load(), 100*l.success())
				}
			}
			if fleet[0].opened(key).IsZero() || !fleet[0].local(key).Own {
				t.Errorf("bad member: opened %v, %+v; want its breaker open on its own trouble", fleet[0].opened(key), fleet[0].local(key))
			}
			// Its trip, then one probe per open period (25ms growing to
			// 100ms): about 10 a second.
			if limit := int64(25 + 15*run.Seconds()); bad.admitted.Load() > limit {
				t.Errorf("bad member let %d attempts through in %v, want at most %d", bad.admitted.Load(), run, limit)
			}
			if got := published(); len(got) != 0 {
				t.Errorf("published to the fleet: %q, want nothing", got)
			}
		})
	}
}

// A fleet against a downstream that is down opens on the quorum of its
// members, each after its share of the rule (fleets of 2, 5, 20: 2, 3, 11
// members with 13, 9, 4 failures in a row), not on 25 per member, and
// every member opens within milliseconds of the first. On recovery the
// fleet sends HalfOpenProbes probes, not HalfOpenProbes per member. The
// load is 100 attempts/s for the whole fleet, spread evenly.
func TestFleetTripsAndProbesTogether(t *testing.T) {
	r := sharedRedis(t)
	for _, tc := range []struct {
		members, share, limit int
	}{
		{2, 13, 2*13 + 2},
		{5, 9, 60}, // the bound
		{20, 4, 20*4 + 20},
	} {
		t.Run(fmt.Sprint(tc.members, " members"), func(t *testing.T) {
			// Open for 500ms: long beside the pub/sub latency that spreads
			// the members' openings, short enough to wait for in real time.
			const openFor = 500 * time.Millisecond
			fleet := newFleet(t, r.dial, tc.members, breaker.Config{OpenTimeout: openFor}, Options{Prefix: prefix(t)})
			const key = "dns:///orders.example:443"
			warmUp(t, r.client(t), fleet, key)

			// Every member calls once a tick, all failing.
			failed := 0
			pace := time.NewTicker(time.Duration(tc.members) * 10 * time.Millisecond)
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
			took := time.Since(start)
			var first, last time.Time
			for _, m := range fleet {
				o := m.opened(key)
				if first.IsZero() || o.Before(first) {
					first = o
				}
				if o.After(last) {
					last = o
				}
				if m.local(key).Own {
					t.Errorf("member %s opened on its own, want on the fleet's quorum", m.sh.Instance())
				}
			}
			spread := last.Sub(first)
			t.Logf("fleet of %d open after %d failed attempts in total (%d each: %d; local-only: %d) in %v; first to last opening: %v",
				len(fleet), failed, tc.share, tc.members*tc.share, 25*len(fleet), took, spread)
			if failed > tc.limit {
				t.Errorf("%d failed attempts reached the downstream before the fleet opened, want <= %d", failed, tc.limit)
			}
			if spread > 100*time.Millisecond { // one Interval
				t.Errorf("members opened over %v, want within one Interval (100ms)", spread)
			}

			// Recovery: the open period ends on every member within the
			// spread of their openings; the load runs on until the fleet
			// has closed.
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
		})
	}
}

// Independent 30% noise on every member opens nothing, neither the fleet
// nor any member on its own.
func TestFleetUnderNoiseOpensNothing(t *testing.T) {
	const key = "k"
	fleet, _, published := watchedFleet(t, sharedRedis(t).dial, key)
	d := startDrive(t, fleet, key, []float64{100, 100, 100, 100, 100})
	for _, l := range d.loads {
		l.set(noisy)
	}
	time.Sleep(3 * time.Second) // the load runs
	d.end()
	for i, l := range d.loads {
		t.Logf("member %d: %d attempts, %.1f%% failed", i, l.admitted.Load(), 100*(1-l.success()))
		if trs := l.m.transitions(key); len(trs) != 0 || l.admitted.Load() != l.calls.Load() {
			t.Errorf("member %d: %d transitions, %d of %d calls admitted; want none and every call", i, len(trs), l.admitted.Load(), l.calls.Load())
		}
	}
	if got := published(); len(got) != 0 {
		t.Errorf("published: %q, want nothing", got)
	}
}

// leaseHolders samples the key's probe lease until stopped and returns the
// instances seen holding it.
func leaseHolders(t *testing.T, admin redis.UniversalClient, lease string) func() map[string]int {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	seen := map[string]int{}
	wg.Go(func() {
		last := ""
		for {
			select {
			case <-stop:
				return
			default:
			}
			if v, err := admin.Get(context.Background(), lease).Result(); err == nil && v != last {
				seen[v]++
				last = v
			} else if errors.Is(err, redis.Nil) {
				last = ""
			}
			time.Sleep(time.Millisecond) // sampling
		}
	})
	end := func() map[string]int {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		return seen
	}
	t.Cleanup(func() { end() })
	return end
}

// A bad member first opens only itself; a real outage then opens the fleet
// on the quorum. When the downstream heals for everyone but the bad
// member, the healthy members' probes close the fleet within about an open
// period: the bad member, on its own trouble, never takes the probe lease,
// and its failed probes reopen only itself. dial gives each member its
// client; failover, if not nil, runs in the middle of the healthy phase
// (the Sentinel test fails the primary over there).
func badMemberThenOutage(t *testing.T, dial func(t *testing.T) redis.UniversalClient, failover func()) {
	const key = "dns:///orders.example:443"
	fleet, admin, published := watchedFleet(t, dial, key)
	holders := leaseHolders(t, admin, fleet[0].sh.tag(key)+":lease")
	d := startDrive(t, fleet, key, []float64{200, 50, 50, 50, 50})
	bad := d.loads[0]

	// 1. The bad member alone.
	bad.set(down)
	eventually(t, 5*time.Second, "the bad member opens", func() bool { return !fleet[0].opened(key).IsZero() })
	if failover != nil {
		failover()
		for _, m := range fleet {
			eventually(t, 20*time.Second, "every member shares again after the failover", func() bool { return !m.sh.Degraded() })
		}
		warmUp(t, admin, fleet[1:], key) // the healthy members' views, after the degraded spell
	} else {
		time.Sleep(500 * time.Millisecond) // the load runs
	}
	for i, m := range fleet[1:] {
		if trs := m.transitions(key); len(trs) != 0 {
			t.Fatalf("healthy member %d moved to %v while only the bad member failed", i+1, trs[0].to)
		}
	}
	if got := published(); len(got) != 0 {
		t.Fatalf("published while only the bad member failed: %q", got)
	}

	// 2. A real outage: everyone fails.
	outage := time.Now()
	for _, l := range d.loads[1:] {
		l.set(down)
	}
	eventually(t, 5*time.Second, "the fleet opens", func() bool { return allState(fleet[1:], key, breaker.StateOpen) })
	t.Logf("the fleet opened %v after the outage began", time.Since(outage))
	for i, m := range fleet[1:] {
		if m.local(key).Own {
			t.Errorf("healthy member %d opened on its own, want on the fleet's quorum", i+1)
		}
	}
	time.Sleep(500 * time.Millisecond) // the downstream stays dead: the load runs on

	// 3. Healed, except for the bad member's path.
	healed := time.Now()
	for _, l := range d.loads[1:] {
		l.mark.Store(healed.UnixNano())
		l.set(healthy)
	}
	eventually(t, 5*time.Second, "the healthy members close", func() bool { return allState(fleet[1:], key, breaker.StateClosed) })
	first := int64(0)
	for _, l := range d.loads[1:] {
		if f := l.firstOK.Load(); f != 0 && (first == 0 || f < first) {
			first = f
		}
	}
	took := time.Duration(first - healed.UnixNano())
	time.Sleep(300 * time.Millisecond) // the load runs on
	d.end()
	seen := holders()
	t.Logf("first success %v after healing; lease holders %v; bad member %+v", took, seen, fleet[0].local(key))
	if took > 300*time.Millisecond {
		t.Errorf("first success %v after healing, want about an open period (100ms), at most 300ms", took)
	}
	if n := seen[fleet[0].sh.Instance()]; n != 0 {
		t.Errorf("the bad member held the probe lease %d times", n)
	}
	if l := fleet[0].local(key); l.State == breaker.StateClosed || !l.Own {
		t.Errorf("bad member %+v, want still open on its own trouble", l)
	}
	for _, msg := range published() {
		if strings.Contains(msg, " "+fleet[0].sh.Instance()+" ") {
			t.Errorf("the bad member published %q", msg)
		}
	}
}

func TestBadMemberNeverProbesForTheFleet(t *testing.T) {
	r := sharedRedis(t)
	badMemberThenOutage(t, r.dial, nil)
}

// Pub/sub carries an opening to the other members in milliseconds.
func TestOpenReachesFleetByPubSub(t *testing.T) {
	r := sharedRedis(t)
	// Rounds every half hour (the breakers' bucket made longer, as Attach
	// asks): only pub/sub can carry the news. Open for a minute: each round
	// of the test sees the members open, then closes them.
	bc := breaker.Config{OpenTimeout: time.Minute, Window: 10 * time.Hour}
	fleet := newFleet(t, r.dial, 3, bc, Options{Prefix: prefix(t), Interval: time.Hour / 2, MaxBackoff: time.Hour})
	const key = "k"
	for _, m := range fleet {
		done, _ := m.set.Allow(key)
		done(nil)
	}
	// The opener's view, as its round would give it: no other member
	// called (none has published a vote), so it is its own quorum.
	opener := fleet[0]
	var lat []time.Duration
	for i := range 5 {
		opener.sh.member.SetFleet(key, breaker.Fleet{})
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
		for _, m := range fleet {
			m.sh.member.Close(key)
		}
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
		"redisbreaker: invalid config: nil redis client",
		"Prefix must not contain '{' or '}'",
		"Interval must be >= 0",
		"Timeout must be >= 0",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error = %v, want it to say %q", err, want)
		}
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("error does not match ErrInvalidConfig: %v", err)
	}
	if _, err := New(c, Options{}); err == nil || !strings.Contains(err.Error(), "Prefix is required") {
		t.Errorf("New without Prefix: %v", err)
	}
	if _, err := New(c, Options{Prefix: "p", Interval: time.Second, MaxBackoff: time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "MaxBackoff (1ms) must be at least Interval (1s)") {
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
	if _, err := breaker.NewSet(breaker.Config{Shared: sh}); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second NewSet on one Shared: %v", err)
	}
	// Rounds as long as the breakers' bucket would let every view expire
	// between them.
	slow, err := New(c, Options{Prefix: prefix(t), Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, err = breaker.NewSet(breaker.Config{Shared: slow})
	if want := "breaker: invalid config: Shared: redisbreaker: Interval (1s) must be shorter than the breakers' bucket, Window/Buckets (1s)"; err == nil ||
		!strings.HasPrefix(err.Error(), want) || !errors.Is(err, breaker.ErrInvalidConfig) {
		t.Errorf("NewSet with Interval = Window/Buckets: %v, want %q...", err, want)
	}
}

// With the default open schedule a fleet of 5, each member at 100 calls/s,
// probes a dead downstream through the lease holder only: about one probe
// per open period for the whole fleet, where five local breakers would send
// one each. Once the downstream heals, a probe finds it within about a
// period.
func TestFleetProbesDeadDownstreamTogether(t *testing.T) {
	r := sharedRedis(t)
	// A prefix of this run's own: a lease left by an earlier run (-count)
	// would hold the fleet's probes back for its ProbeLease.
	fleet := newFleet(t, r.dial, 5, breaker.Config{}, Options{Prefix: prefix(t) + "-" + fmt.Sprint(time.Now().UnixNano())})
	const key = "k"
	warmUp(t, r.client(t), fleet, key)
	d := startDrive(t, fleet, key, []float64{100, 100, 100, 100, 100})
	for _, l := range d.loads {
		l.set(down)
	}
	attempts := func() (n int64) {
		for _, l := range d.loads {
			n += l.admitted.Load()
		}
		return n
	}
	eventually(t, 5*time.Second, "fleet opens", func() bool { return allState(fleet, key, breaker.StateOpen) })
	before := attempts()
	const dead = 2 * time.Second
	time.Sleep(dead) // the downstream stays dead: the load runs on
	probes := attempts() - before
	perSecond := float64(probes) / dead.Seconds()
	t.Logf("dead downstream, fleet of %d at 100 calls/s each: %d attempts in %v (%.1f/s; %d local breakers: about %d/s)",
		len(fleet), probes, dead, perSecond, len(fleet), 10*len(fleet))
	if perSecond > 20 {
		t.Errorf("%.1f attempts/s across the fleet while dead, want about 10 (at most 20)", perSecond)
	}
	healed := time.Now()
	for _, l := range d.loads {
		l.mark.Store(healed.UnixNano())
		l.set(healthy)
	}
	first := func() (f int64) {
		for _, l := range d.loads {
			if v := l.firstOK.Load(); v != 0 && (f == 0 || v < f) {
				f = v
			}
		}
		return f
	}
	eventually(t, 5*time.Second, "a success after healing", func() bool { return first() != 0 })
	took := time.Duration(first() - healed.UnixNano())
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
	p := prefix(t) + "-" + fmt.Sprint(time.Now().UnixNano())
	m := newMember(t, r.client(t), breaker.Config{OpenTimeout: 50 * time.Millisecond}, Options{Prefix: p})
	synced(t, m.sh)
	const key = "k"
	admin := r.client(t)
	warmUp(t, admin, []*member{m}, key) // alone: its own quorum
	for m.state(key) != breaker.StateOpen {
		if done, err := m.set.Allow(key); err == nil {
			done(errDown)
		}
	}
	eventually(t, 2*time.Second, "the member holds the lease", func() bool { m.state(key); return m.local(key).Leased })
	lease := m.sh.tag(key) + ":lease"
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
