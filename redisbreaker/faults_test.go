package redisbreaker

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// blockedAfter is how long an Allow plus done may take before the test calls
// it blocked. A call that waited on Redis would take at least the round
// Timeout (100ms here); a local one takes microseconds.
const blockedAfter = 50 * time.Millisecond

// load runs attempts on the members until stopped, recording the slowest
// and how many were blocked.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	calls   atomic.Int64
	blocked atomic.Int64
	slowest atomic.Int64
}

func startLoad(t *testing.T, fleet []*member, key string) *load {
	l := &load{stop: make(chan struct{})}
	for _, m := range fleet {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				t0 := time.Now()
				if done, err := m.set.Allow(key); err == nil {
					done(nil)
				}
				d := time.Since(t0)
				l.calls.Add(1)
				if d > blockedAfter {
					l.blocked.Add(1)
				}
				for {
					s := l.slowest.Load()
					if int64(d) <= s || l.slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
				time.Sleep(500 * time.Microsecond) // load pacing
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// degradedLog records OnDegraded calls.
type degradedLog struct {
	mu  sync.Mutex
	got []bool
	err []error
}

func (d *degradedLog) hook(degraded bool, err error) {
	d.mu.Lock()
	d.got = append(d.got, degraded)
	d.err = append(d.err, err)
	d.mu.Unlock()
}

func (d *degradedLog) last() (bool, error, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) == 0 {
		return false, nil, 0
	}
	return d.got[len(d.got)-1], d.err[len(d.err)-1], len(d.got)
}

func degradedGauge(t *testing.T, rd *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "resilience.redisbreaker.degraded" {
				return m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value
			}
		}
	}
	t.Fatal("no resilience.redisbreaker.degraded gauge")
	return 0
}

// tripLocal fails attempts on one member until its breaker opens, and
// returns how many it took.
func tripLocal(t *testing.T, m *member, key string) int {
	t.Helper()
	n := 0
	for m.state(key) != breaker.StateOpen {
		if n > 1000 {
			t.Fatal("breaker does not open")
		}
		if done, err := m.set.Allow(key); err == nil {
			done(errDown)
		}
		n++
	}
	return n
}

// Redis slow, unreachable, down, and restarted empty, mid-run: every member
// carries on with its local breaker, no call waits on Redis, the hook and
// the metric say when a member runs degraded, and once Redis is back the
// fleet shares again.
func TestRedisFaultsMidRun(t *testing.T) {
	r := startRedis(t)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	logs := []*degradedLog{{}, {}}
	o := Options{Prefix: prefix(t), Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	var fleet []*member
	for i, lg := range logs {
		oi := o
		oi.OnDegraded = lg.hook
		if i == 0 {
			oi.MeterProvider = mp
		}
		// Open for a minute: the test checks that openings are shared, not
		// when breakers probe again.
		fleet = append(fleet, newMember(t, r.client(t), breaker.Config{OpenTimeout: time.Minute}, oi))
	}
	for _, m := range fleet {
		synced(t, m.sh)
	}
	ld := startLoad(t, fleet, "load")
	admin := redis.NewClient(&redis.Options{Addr: r.addr})
	defer admin.Close()

	shares := func(phase, key string) {
		t.Helper()
		// The only caller of key, with its view of the fleet: its own
		// quorum, its trip the fleet's.
		warmUp(t, admin, fleet[:1], key)
		tripLocal(t, fleet[0], key)
		d := eventually(t, 2*time.Second, phase+": other member opens", func() bool { return fleet[1].state(key) == breaker.StateOpen })
		t.Logf("%s: the other member opened %v after the first", phase, d)
	}
	waitDegraded := func(phase string, want bool) {
		t.Helper()
		for i, lg := range logs {
			d := eventually(t, 5*time.Second, phase, func() bool { got, _, _ := lg.last(); return got == want })
			_, err, _ := lg.last()
			if want && err == nil {
				t.Errorf("%s: member %d degraded without an error", phase, i)
			}
			t.Logf("%s: member %d degraded=%v after %v (err: %v)", phase, i, want, d, err)
		}
	}
	localStillWorks := func(phase, key string) {
		t.Helper()
		if n := tripLocal(t, fleet[1], key); n != 25 {
			t.Errorf("%s: local breaker opened after %d failures, want 25", phase, n)
		}
	}

	shares("healthy", "k0")

	// Slow: every command stalls for 1.5s.
	if err := admin.ClientPause(context.Background(), 1500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	waitDegraded("slow (CLIENT PAUSE)", true)
	if g := degradedGauge(t, rd); g != 1 {
		t.Errorf("degraded gauge = %d while degraded, want 1", g)
	}
	localStillWorks("slow", "k1")
	waitDegraded("slow over", false)
	if g := degradedGauge(t, rd); g != 0 {
		t.Errorf("degraded gauge = %d after recovery, want 0", g)
	}
	shares("after slow", "k2")

	// Unreachable: the process stops answering (SIGSTOP), connections stay up.
	r.signal(syscall.SIGSTOP)
	waitDegraded("unreachable (SIGSTOP)", true)
	localStillWorks("unreachable", "k3")
	r.signal(syscall.SIGCONT)
	waitDegraded("reachable again", false)
	shares("after unreachable", "k4")

	// Down, then restarted with its data lost.
	r.kill()
	waitDegraded("down", true)
	localStillWorks("down", "k5")
	r.start()
	waitDegraded("restarted empty", false)
	shares("after restart", "k6")

	ld.end()
	t.Logf("%d calls during the faults, %d blocked (> %v), slowest %v",
		ld.calls.Load(), ld.blocked.Load(), blockedAfter, time.Duration(ld.slowest.Load()))
	if b := ld.blocked.Load(); b != 0 {
		t.Errorf("%d calls blocked", b)
	}
}

// Redis down from the start: the Set is local, nothing waits, and the
// backoff keeps retrying until Redis comes.
func TestRedisDownAtStart(t *testing.T) {
	r := startRedis(t)
	r.kill()
	lg := &degradedLog{}
	m := newMember(t, r.client(t), breaker.Config{}, Options{Prefix: prefix(t), Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, OnDegraded: lg.hook})
	eventually(t, 5*time.Second, "degraded reported", func() bool { got, _, _ := lg.last(); return got })
	t0 := time.Now()
	if n := tripLocal(t, m, "k"); n != 25 {
		t.Errorf("local breaker opened after %d failures, want 25", n)
	}
	if d := time.Since(t0); d > blockedAfter {
		t.Errorf("25 attempts took %v with Redis down", d)
	}
	r.start()
	eventually(t, 5*time.Second, "recovered", func() bool { got, _, _ := lg.last(); return !got })
	if _, _, n := lg.last(); n != 2 {
		t.Errorf("OnDegraded called %d times, want 2 (true, then false)", n)
	}
}
