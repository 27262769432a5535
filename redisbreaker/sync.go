package redisbreaker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
)

// keyState is what the sync goroutine remembers of one breaker key.
type keyState struct {
	calls  uint64    // Local.Calls when the vote was last written
	active time.Time // last round that found the key called
	since  int64     // unix ms the breaker last closed: older failing votes are the last episode's
	seen   uint64    // last round the Set held the key
}

// Keys of one breaker share the hash tag {<prefix>:<key>}, so a Cluster
// keeps them in one slot and a pipeline's commands for one key go to one
// node.
func (s *Shared) tag(key string) string { return "{" + s.o.Prefix + ":" + key + "}" }

func bucketKey(tag string, b int64) string { return tag + ":v:" + strconv.FormatInt(b, 10) }

// releaseLease deletes the lease only if this member holds it.
const releaseLease = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// round runs one pipeline: the queued transitions and votes and, if full,
// every recent key's vote out and the fleet's votes in. Results are applied
// only once the whole pipeline succeeded.
func (s *Shared) round(full bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	start := time.Now()

	s.mu.Lock()
	trs, votes := s.pending, s.votes
	s.pending, s.votes = nil, nil
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
	now := time.Now()
	bnow := now.UnixNano() / int64(s.period)
	for i, t := range trs {
		tag := s.tag(t.Key)
		forFleet := !t.Fleet && !t.Own // this member's decision for the fleet
		switch {
		case t.To == breaker.StateOpen && forFleet:
			rem := t.OpenFor - now.Sub(t.at)
			if rem < time.Millisecond {
				break
			}
			pipe.Set(ctx, tag+":open", s.inst, rem)
			pipe.Publish(ctx, s.ch, "o "+strconv.FormatInt(rem.Milliseconds(), 10)+" "+s.inst+" "+t.Key)
			published++
		case t.To == breaker.StateClosed:
			key, at := t.Key, t.at.UnixMilli()
			after = append(after, func() { s.keyState(key).since = at })
			if forFleet && t.From == breaker.StateHalfOpen {
				pipe.Del(ctx, tag+":open")
				pipe.Publish(ctx, s.ch, "c 0 "+s.inst+" "+t.Key)
				published++
			}
		case t.To == breaker.StateHalfOpen && !t.Own && last[t.Key] == i && !leasing[t.Key]:
			leasing[t.Key] = true
			after = append(after, s.askLease(ctx, pipe, t.Key))
		}
		if t.From == breaker.StateHalfOpen && !t.Own {
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
			if l.State == breaker.StateHalfOpen && !l.Own && !l.Leased && !leasing[l.Key] {
				leasing[l.Key] = true
				after = append(after, s.askLease(ctx, pipe, l.Key))
			}
			ks := s.keyState(l.Key)
			ks.seen = s.roundNo
			if _, changed := votes[l.Key]; changed || l.Calls != ks.calls {
				ks.active = now
				s.writeVote(ctx, pipe, l.Key, l.Vote, now, bnow)
				calls := l.Calls
				after = append(after, func() { ks.calls = calls })
			}
			// Only a key in use reads the fleet's votes; one idle for two
			// buckets lets its view expire (the Set drops a view one
			// bucket old) until it is called again.
			if now.Sub(ks.active) <= 2*s.period {
				after = append(after, s.readVotes(ctx, pipe, l.Key, ks, bnow, l.State == breaker.StateClosed))
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
	} else {
		// A vote that changed goes out now, and the fleet's come back with
		// it: the vote that completes a quorum opens the fleet within this
		// round trip.
		for key, v := range votes {
			ks := s.keyState(key)
			ks.active = now
			s.writeVote(ctx, pipe, key, v, now, bnow)
			after = append(after, s.readVotes(ctx, pipe, key, ks, bnow, false))
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.requeue(trs, votes)
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

// keyState returns the sync goroutine's record of key, creating it.
func (s *Shared) keyState(key string) *keyState {
	ks := s.keys[key]
	if ks == nil {
		ks = &keyState{seen: s.roundNo}
		s.keys[key] = ks
	}
	return ks
}

// requeue puts transitions and votes a failed round took back in front of
// the queue; a vote queued since is newer and wins.
func (s *Shared) requeue(trs []pendingTransition, votes map[string]breaker.Vote) {
	if len(trs) == 0 && len(votes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(trs, s.pending...)
	if n := len(s.pending) - maxPending; n > 0 {
		s.pending = s.pending[n:]
	}
	for k, v := range votes {
		s.queueVoteLocked(k, v, false) // a vote queued since is newer
	}
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

// writeVote queues this member's vote on key into the current bucket.
func (s *Shared) writeVote(ctx context.Context, pipe redis.Pipeliner, key string, v breaker.Vote, now time.Time, bnow int64) {
	bk := bucketKey(s.tag(key), bnow)
	pipe.HSet(ctx, bk, "v:"+s.inst, formatVote(v, now.UnixMilli()))
	// The bucket is read while it is the current or the previous one.
	pipe.PExpire(ctx, bk, 3*s.period)
}

// readVotes queues the reads of the fleet's votes on key (the current and
// the previous bucket, and the open key when the breaker is closed) and
// returns what to do with the answers: hand them to the Set.
func (s *Shared) readVotes(ctx context.Context, pipe redis.Pipeliner, key string, ks *keyState, bnow int64, closed bool) func() {
	tag := s.tag(key)
	buckets := [2]*redis.MapStringStringCmd{
		pipe.HGetAll(ctx, bucketKey(tag, bnow)),
		pipe.HGetAll(ctx, bucketKey(tag, bnow-1)),
	}
	var pttl *redis.DurationCmd
	if closed {
		// An opening this member missed on pub/sub.
		pttl = pipe.PTTL(ctx, tag+":open")
	}
	return func() {
		s.member.SetFleet(key, s.tally(buckets[0].Val(), buckets[1].Val(), ks.since))
		if pttl != nil {
			if d := pttl.Val(); d > 0 {
				s.member.Open(key, d)
			}
		}
	}
}

// tally counts the other members' votes in the current bucket cur and the
// previous one prev (a member's newest vote counts): how many voted, less
// those abstaining, and how many of them failing since the breaker last
// closed (unix ms).
func (s *Shared) tally(cur, prev map[string]string, since int64) breaker.Fleet {
	var f breaker.Fleet
	count := func(m map[string]string, skip map[string]string) {
		for k, v := range m {
			inst, ok := strings.CutPrefix(k, "v:")
			if !ok || inst == s.inst {
				continue
			}
			if _, newer := skip[k]; newer {
				continue
			}
			vote, at, ok := parseVote(v)
			if ok && vote == breaker.VoteAbstain {
				continue
			}
			f.Members++
			if ok && vote == breaker.VoteFailing && at >= since {
				f.Failing++
			}
		}
	}
	count(cur, nil)
	count(prev, cur)
	return f
}

// A vote is stored as "<h|f|a> <unix ms>": healthy, failing or abstain,
// and when it was cast.
const voteLetters = "hfa" // indexed by breaker.Vote

func formatVote(v breaker.Vote, ms int64) string {
	return voteLetters[v:v+1] + " " + strconv.FormatInt(ms, 10)
}

// parseVote reads a stored vote; ok is false for anything else.
func parseVote(s string) (v breaker.Vote, ms int64, ok bool) {
	l, t, found := strings.Cut(s, " ")
	i := strings.Index(voteLetters, l)
	if !found || len(l) != 1 || i < 0 {
		return 0, 0, false
	}
	if t == "" || t[0] < '0' || t[0] > '9' { // no sign: ParseInt takes "+5" and "-0"
		return 0, 0, false
	}
	ms, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return breaker.Vote(i), ms, true
}
