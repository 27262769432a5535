package redisbreaker

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
)

// keyState is what the sync goroutine remembers of one breaker key.
type keyState struct {
	pubSucc, pubFail uint64        // the Set's totals already published
	own              []bucketCount // ring: what this member added per bucket
	remote           []bucketCount // ring: the other members' counts per bucket, as last read
	since            int64         // buckets before this one are ignored: the breaker closed after them
	lastRun          uint32        // run last published
	runBucket        int64         // bucket it was published in
	active           time.Time     // last round with local outcomes
	hadFleet         bool          // the Set holds non-zero fleet counts
	seen             uint64        // last round the Set held the key
}

type bucketCount struct {
	b    int64 // bucket number; the slot is empty unless it matches
	s, f uint32
	read bool // remote: read after the bucket was over (final)
}

func (ks *keyState) slot(ring []bucketCount, b int64) *bucketCount {
	p := &ring[b%int64(len(ring))]
	if p.b != b {
		*p = bucketCount{b: b}
	}
	return p
}

func (ks *keyState) at(ring []bucketCount, b int64) bucketCount {
	if p := ring[b%int64(len(ring))]; p.b == b {
		return p
	}
	return bucketCount{b: b}
}

// Keys of one breaker share the hash tag {<prefix>:<key>}, so a Cluster
// keeps them in one slot and a pipeline's commands for one key go to one
// node.
func (s *Shared) tag(key string) string { return "{" + s.o.Prefix + ":" + key + "}" }

func bucketKey(tag string, b int64) string { return tag + ":b:" + strconv.FormatInt(b, 10) }

// releaseLease deletes the lease only if this member holds it.
const releaseLease = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// round runs one pipeline: the queued transitions and, if full, this
// member's counts out and the fleet's in. Results are applied only once the
// whole pipeline succeeded.
func (s *Shared) round(full bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	start := time.Now()

	s.mu.Lock()
	trs := s.pending
	s.pending = nil
	s.mu.Unlock()

	pipe := s.rdb.Pipeline()
	var after []func()
	leasing := make(map[string]bool)
	published := int64(0)

	// The last transition of each key decides whether to ask for a lease.
	last := make(map[string]int, len(trs))
	for i, t := range trs {
		last[t.Key] = i
	}
	period := s.cfg.Window / time.Duration(s.cfg.Buckets)
	now := time.Now()
	bnow := now.UnixNano() / int64(period)
	for i, t := range trs {
		tag := s.tag(t.Key)
		switch {
		case t.To == breaker.StateOpen && !t.Fleet:
			rem := t.OpenFor - now.Sub(t.at)
			if rem < time.Millisecond {
				break
			}
			pipe.Set(ctx, tag+":open", s.inst, rem)
			pipe.Publish(ctx, s.ch, "o "+strconv.FormatInt(rem.Milliseconds(), 10)+" "+s.inst+" "+t.Key)
			published++
		case t.To == breaker.StateClosed:
			key := t.Key
			after = append(after, func() {
				if ks := s.keys[key]; ks != nil {
					ks.since = bnow + 1
				}
			})
			if !t.Fleet && t.From == breaker.StateHalfOpen {
				pipe.Del(ctx, tag+":open")
				pipe.Publish(ctx, s.ch, "c 0 "+s.inst+" "+t.Key)
				published++
			}
		case t.To == breaker.StateHalfOpen && last[t.Key] == i && !leasing[t.Key]:
			leasing[t.Key] = true
			after = append(after, s.askLease(ctx, pipe, t.Key))
		}
		if t.From == breaker.StateHalfOpen {
			// Leaving half-open, by its own probes or on the fleet's word
			// (another member's opening that crossed this member's lease):
			// the probe lease, if this member holds it, goes back now.
			// Kept, it would hold every member's probes back, this one's
			// too (SET NX fails on its own key), for ProbeLease.
			pipe.Eval(ctx, releaseLease, []string{tag + ":lease"}, s.inst)
		}
	}

	if full {
		s.snap = s.member.Snapshot(s.snap[:0])
		s.roundNo++
		for _, l := range s.snap {
			if l.State == breaker.StateHalfOpen && !l.Leased && !leasing[l.Key] {
				leasing[l.Key] = true
				after = append(after, s.askLease(ctx, pipe, l.Key))
			}
			if f := s.queueCounts(ctx, pipe, l, now, bnow); f != nil {
				after = append(after, f)
			}
		}
		for k, ks := range s.keys {
			if ks.seen != s.roundNo {
				delete(s.keys, k)
			}
		}
		if pipe.Len() == 0 {
			pipe.Ping(ctx) // an idle Set still learns whether Redis is there
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.requeue(trs)
		return err
	}
	for _, f := range after {
		f()
	}
	s.met.rounds.Record(context.Background(), time.Since(start).Seconds(), s.met.attrs)
	if published > 0 {
		s.met.published.Add(context.Background(), published, s.met.attrs)
	}
	return nil
}

// requeue puts transitions a failed round took back in front of the queue.
func (s *Shared) requeue(trs []pendingTransition) {
	if len(trs) == 0 {
		return
	}
	s.mu.Lock()
	s.pending = append(trs, s.pending...)
	if n := len(s.pending) - maxPending; n > 0 {
		s.pending = s.pending[n:]
	}
	s.mu.Unlock()
}

// askLease queues a try for the key's probe lease and returns what to do with
// the answer.
func (s *Shared) askLease(ctx context.Context, pipe redis.Pipeliner, key string) func() {
	tag := s.tag(key)
	got := pipe.SetNX(ctx, tag+":lease", s.inst, s.o.ProbeLease)
	return func() {
		if got.Val() && !s.member.Lease(key) {
			// No longer half-open: give the lease back at once.
			_ = s.rdb.Eval(ctx, releaseLease, []string{tag + ":lease"}, s.inst).Err()
		}
	}
}

// queueCounts queues the key's new counts and the reads of the fleet's, and
// returns what to do with the answers (nil: nothing).
func (s *Shared) queueCounts(ctx context.Context, pipe redis.Pipeliner, l breaker.Local, now time.Time, bnow int64) func() {
	n := s.cfg.Buckets
	ks := s.keys[l.Key]
	if ks == nil {
		ks = &keyState{own: make([]bucketCount, n), remote: make([]bucketCount, n), active: now}
		s.keys[l.Key] = ks
	}
	ks.seen = s.roundNo
	tag := s.tag(l.Key)
	bk := bucketKey(tag, bnow)
	ds, df := l.Successes-ks.pubSucc, l.Failures-ks.pubFail
	if l.Successes < ks.pubSucc || l.Failures < ks.pubFail { // the breaker was created again
		ds, df = l.Successes, l.Failures
	}
	wrote := false
	if ds > 0 {
		pipe.HIncrBy(ctx, bk, "s", int64(ds))
		wrote = true
	}
	if df > 0 {
		pipe.HIncrBy(ctx, bk, "f", int64(df))
		wrote = true
	}
	run := l.Run
	if run != ks.lastRun || (run > 0 && ks.runBucket != bnow) {
		pipe.HSet(ctx, bk, "r:"+s.inst, run)
		wrote = true
	}
	if wrote {
		period := s.cfg.Window / time.Duration(n)
		pipe.PExpire(ctx, bk, s.cfg.Window+2*period)
	}
	if ds+df > 0 {
		ks.active = now
	}
	// Only a closed breaker reads the fleet (its trip rule needs it), and
	// only while it is in use: a key idle for a window drops the fleet's
	// counts until its next outcome; opens still reach it by pub/sub.
	reading := l.State == breaker.StateClosed && now.Sub(ks.active) <= s.cfg.Window
	var reads []bucketRead
	var pttl *redis.DurationCmd
	if reading {
		for i := range int64(n) {
			b := bnow - i
			if b < ks.since {
				break
			}
			if i >= 2 && ks.at(ks.remote, b).read {
				continue // over, and already read after it was
			}
			reads = append(reads, bucketRead{b: b, cmd: pipe.HGetAll(ctx, bucketKey(tag, b))})
		}
		pttl = pipe.PTTL(ctx, tag+":open")
	}
	key := l.Key
	return func() {
		ks.pubSucc, ks.pubFail = l.Successes, l.Failures
		o := ks.slot(ks.own, bnow)
		o.s = sat32(uint64(o.s) + ds)
		o.f = sat32(uint64(o.f) + df)
		ks.lastRun, ks.runBucket = run, bnow
		if !reading {
			if ks.hadFleet {
				ks.hadFleet = false
				s.member.SetFleet(key, breaker.Fleet{})
			}
			return
		}
		var f breaker.Fleet
		runs := make(map[string]uint32)
		for _, r := range reads {
			m := r.cmd.Val()
			own := ks.at(ks.own, r.b)
			rs := sub32(parseU(m["s"]), own.s)
			rf := sub32(parseU(m["f"]), own.f)
			prev := ks.at(ks.remote, r.b)
			if r.b >= bnow-1 && rs > prev.s {
				f.ResetRun = true // a success elsewhere since the last round
			}
			*ks.slot(ks.remote, r.b) = bucketCount{b: r.b, s: rs, f: rf, read: r.b < bnow-1}
			if r.b < bnow-1 {
				continue
			}
			for k, v := range m { // the newest bucket wins for each member
				inst, ok := strings.CutPrefix(k, "r:")
				if !ok || inst == s.inst {
					continue
				}
				if _, seen := runs[inst]; !seen || r.b == bnow {
					runs[inst] = parseU(v)
				}
			}
		}
		var succ, fail, rsum uint64
		for i := range int64(n) {
			b := bnow - i
			if b < ks.since {
				break
			}
			c := ks.at(ks.remote, b)
			succ += uint64(c.s)
			fail += uint64(c.f)
		}
		for _, v := range runs {
			rsum += uint64(v)
		}
		f.Successes, f.Failures, f.Run = sat32(succ), sat32(fail), sat32(rsum)
		ks.hadFleet = f != breaker.Fleet{}
		s.member.SetFleet(key, f)
		if d := pttl.Val(); d > 0 {
			s.member.Open(key, d) // an open this member missed on pub/sub
		}
	}
}

type bucketRead struct {
	b   int64
	cmd *redis.MapStringStringCmd
}

func parseU(v string) uint32 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return sat32(n)
}

func sat32(n uint64) uint32 { return uint32(min(n, math.MaxUint32)) }

func sub32(a, b uint32) uint32 {
	if a < b {
		return 0 // Redis lost the data (restart): only what is there counts
	}
	return a - b
}
