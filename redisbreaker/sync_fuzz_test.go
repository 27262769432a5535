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
func (r *recorder) Voted(string, bool)              {}

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
// panic; "0 <ms>" and "1 <ms>", ms a decimal number of milliseconds that
// fits an int64, read back as written (formatVote's form); anything else
// is refused and counts as no vote.
//
//	go test -run '^$' -fuzz FuzzParseVote -fuzztime 60s .
func FuzzParseVote(f *testing.F) {
	for _, seed := range []string{"0 0", "1 1700000000000", "1 9223372036854775807", "1 9223372036854775808",
		"", "1", "1 ", " 1 5", "2 5", "1 -5", "1 +5", "1 5 ", "1  5", "1 0x10", "true 5", "01 5", "1 007"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		failing, ms, ok := parseVote(v)
		flag, num, found := strings.Cut(v, " ")
		want := found && (flag == "0" || flag == "1") && num != ""
		for _, r := range num {
			want = want && r >= '0' && r <= '9'
		}
		var wantMs int64
		if want {
			n, err := strconv.ParseInt(num, 10, 64)
			want, wantMs = err == nil, n
		}
		if ok != want {
			t.Fatalf("parseVote(%q) ok = %v, want %v", v, ok, want)
		}
		if !ok {
			if failing || ms != 0 {
				t.Fatalf("parseVote(%q) refused but returned %v, %d", v, failing, ms)
			}
			return
		}
		if failing != (flag == "1") || ms != wantMs {
			t.Fatalf("parseVote(%q) = %v, %d; want %v, %d", v, failing, ms, flag == "1", wantMs)
		}
		if f2, ms2, ok2 := parseVote(formatVote(failing, ms)); f2 != failing || ms2 != ms || !ok2 {
			t.Fatalf("formatVote(%v, %d) = %q reads back as %v, %d, %v", failing, ms, formatVote(failing, ms), f2, ms2, ok2)
		}
	})
}

// The tally of a key's votes: every other member once, its newest bucket
// winning; this member's own vote, malformed votes (as a member, not
// failing) and failing votes from before the breaker last closed left out
// of the failing count.
func TestTally(t *testing.T) {
	s := &Shared{inst: "me"}
	cur := map[string]string{
		"v:me": "1 100",               // this member
		"v:a":  "1 100",               // failing
		"v:b":  "0 100",               // healthy now, failing in the previous bucket
		"v:c":  "1 40",                // failing, before the breaker closed at 50
		"v:d":  "garbage",             // a member, no vote
		"x:e":  "1 100",               // not a vote
		"v:":   formatVote(true, 100), // an empty instance name is still a member
	}
	prev := map[string]string{"v:b": "1 90", "v:f": "1 90", "v:g": "0 90", "v:a": "0 90"}
	got := s.tally(cur, prev, 50)
	if want := (breaker.Fleet{Members: 7, Failing: 3}); got != want { // a, b, c, d, "", f, g; failing: a, "", f
		t.Fatalf("tally = %+v, want %+v", got, want)
	}
	if got := s.tally(nil, nil, 0); got != (breaker.Fleet{}) {
		t.Fatalf("tally of nothing = %+v", got)
	}
}
