package redisbreaker

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
)

// recorder is a breaker.Shared that hands out its Member and records the
// Set's transitions, so that a test can apply messages without Redis.
type recorder struct {
	m   *breaker.Member
	trs []breaker.Transition
}

func (r *recorder) Attach(m *breaker.Member) error  { r.m = m; return nil }
func (r *recorder) Transition(t breaker.Transition) { r.trs = append(r.trs, t) }
func (r *recorder) Voted(string, breaker.Vote)      {}

// applyTo returns a Shared named "me" whose member is a fresh Set's, and
// the recorder of that Set's transitions. Nothing runs in the background.
func applyTo(t *testing.T) (*Shared, *recorder) {
	t.Helper()
	rec := &recorder{}
	c := breaker.DefaultConfig()
	c.Shared = rec
	if _, err := breaker.NewSet(c); err != nil {
		t.Fatal(err)
	}
	rec.m.SetDegraded(false)
	return &Shared{inst: "me", member: rec.m}, rec
}

// wellFormed parses a pub/sub message as the package documents it: "o <ms>
// <instance> <key>" with ms a positive number of milliseconds that fits a
// time.Duration, or "c 0 <instance> <key>"; the key is the rest.
func wellFormed(payload string) (kind string, d time.Duration, inst, key string, ok bool) {
	f := strings.SplitN(payload, " ", 4)
	if len(f) != 4 {
		return "", 0, "", "", false
	}
	kind, inst, key = f[0], f[2], f[3]
	switch kind {
	case "o":
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/int64(time.Millisecond) {
			return "", 0, "", "", false
		}
		d = time.Duration(n) * time.Millisecond
	case "c":
	default:
		return "", 0, "", "", false
	}
	return kind, d, inst, key, true
}

// FuzzApply checks the reading of the fleet's pub/sub messages: it never
// panics; a well-formed open from another member opens the key's breaker
// for exactly the time it says, a close closes an open one; anything else
// (a malformed message, a duration that does not fit, one of its own) has
// no effect at all.
//
//	go test -run '^$' -fuzz FuzzApply -fuzztime 60s .
func FuzzApply(f *testing.F) {
	for _, seed := range []string{
		"o 5000 other dns:///orders:443", "c 0 other dns:///orders:443", "o 5000 me k", "o 1 a key with spaces",
		"o 0 a k", "o -5 a k", "o 5s a k", "o 9223372036854 a k", "o 9223372036855 a k", "o 18446744073710 a k",
		"o 9223372036854775807 a k", "x 1 a k", "o 1 a", "o", "", "c 0 a ", "o 1  k", " o 1 a k", "o +7 a k", "c x a k",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		s, rec := applyTo(t)
		kind, d, inst, key, ok := wellFormed(payload)
		if ok && kind == "c" {
			rec.m.Open(key, time.Hour) // something to close
			rec.trs = nil
		}
		s.apply(payload)
		applied := s.received.Load() == 1
		if !ok || inst == s.inst {
			if applied || len(rec.trs) != 0 {
				t.Fatalf("%q: applied (%v), transitions %+v; want it ignored", payload, applied, rec.trs)
			}
			return
		}
		if !applied || len(rec.trs) == 0 {
			t.Fatalf("%q: applied %v, transitions %+v; want it applied", payload, applied, rec.trs)
		}
		last := rec.trs[len(rec.trs)-1]
		if last.Key != key || !last.Fleet {
			t.Fatalf("%q: transition %+v, want one of key %q on the fleet's word", payload, last, key)
		}
		switch kind {
		case "o":
			if last.To != breaker.StateOpen || last.OpenFor != d {
				t.Fatalf("%q: transition %+v, want open for %v", payload, last, d)
			}
		case "c":
			if last.To != breaker.StateClosed {
				t.Fatalf("%q: transition %+v, want closed", payload, last)
			}
		}
	})
}

// FuzzParseVote checks the reading of the votes stored in Redis: never a
// panic; "<h|f|a> <ms>", ms a decimal number of milliseconds that fits an
// int64, reads back as written (formatVote's form); anything else is
// refused.
//
//	go test -run '^$' -fuzz FuzzParseVote -fuzztime 60s .
func FuzzParseVote(f *testing.F) {
	for _, seed := range []string{"h 0", "f 1700000000000", "a 9223372036854775807", "f 9223372036854775808",
		"", "f", "f ", " f 5", "x 5", "f -5", "f +5", "f 5 ", "f  5", "f 0x10", "fa 5", "1 5", "f 007", "hfa 5"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ms, ok := parseVote(s)
		letter, num, found := strings.Cut(s, " ")
		want := found && len(letter) == 1 && strings.Contains("hfa", letter) && num != ""
		for _, r := range num {
			want = want && r >= '0' && r <= '9'
		}
		var wantMs int64
		if want {
			n, err := strconv.ParseInt(num, 10, 64)
			want, wantMs = err == nil, n
		}
		if ok != want {
			t.Fatalf("parseVote(%q) ok = %v, want %v", s, ok, want)
		}
		if !ok {
			if v != 0 || ms != 0 {
				t.Fatalf("parseVote(%q) refused but returned %v, %d", s, v, ms)
			}
			return
		}
		wantVote := map[string]breaker.Vote{"h": breaker.VoteHealthy, "f": breaker.VoteFailing, "a": breaker.VoteAbstain}[letter]
		if v != wantVote || ms != wantMs {
			t.Fatalf("parseVote(%q) = %v, %d; want %v, %d", s, v, ms, wantVote, wantMs)
		}
		if v2, ms2, ok2 := parseVote(formatVote(v, ms)); v2 != v || ms2 != ms || !ok2 {
			t.Fatalf("formatVote(%v, %d) = %q reads back as %v, %d, %v", v, ms, formatVote(v, ms), v2, ms2, ok2)
		}
	})
}

// The tally of a key's votes: every other member once, its newest bucket
// winning; this member's own vote and abstentions left out, malformed votes
// counted as members not failing, and failing votes from before the
// breaker last closed not failing.
func TestTally(t *testing.T) {
	s := &Shared{inst: "me"}
	fail, healthy, abstain := breaker.VoteFailing, breaker.VoteHealthy, breaker.VoteAbstain
	cur := map[string]string{
		"v:me": formatVote(fail, 100),    // this member
		"v:a":  formatVote(fail, 100),    // failing
		"v:b":  formatVote(healthy, 100), // healthy now, failing in the previous bucket
		"v:c":  formatVote(fail, 40),     // failing, before the breaker closed at 50
		"v:d":  "garbage",                // a member, no vote
		"x:e":  formatVote(fail, 100),    // not a vote
		"v:":   formatVote(fail, 100),    // an empty instance name is still a member
		"v:h":  formatVote(abstain, 100), // abstains now, failing in the previous bucket
	}
	prev := map[string]string{"v:b": formatVote(fail, 90), "v:f": formatVote(fail, 90), "v:g": formatVote(healthy, 90),
		"v:a": formatVote(healthy, 90), "v:h": formatVote(fail, 90), "v:i": formatVote(abstain, 90)}
	got := s.tally(cur, prev, 50)
	if want := (breaker.Fleet{Members: 7, Failing: 3}); got != want { // a, b, c, d, "", f, g; failing: a, "", f
		t.Fatalf("tally = %+v, want %+v", got, want)
	}
	if got := s.tally(nil, nil, 0); got != (breaker.Fleet{}) {
		t.Fatalf("tally of nothing = %+v", got)
	}
}
