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

// FuzzParseU checks the reading of the counts stored in Redis: never a
// panic; a decimal number is read saturated at math.MaxUint32; anything
// else (a sign, spaces, hex, garbage, a number past uint64, which no Redis
// counter holds) reads as 0.
//
//	go test -run '^$' -fuzz FuzzParseU -fuzztime 60s .
func FuzzParseU(f *testing.F) {
	for _, seed := range []string{"0", "7", "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
		"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "007"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := parseU(v)
		decimal := v != ""
		for _, r := range v {
			decimal = decimal && r >= '0' && r <= '9'
		}
		if !decimal {
			if got != 0 {
				t.Fatalf("parseU(%q) = %d, want 0", v, got)
			}
			return
		}
		var want uint32
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			want = uint32(min(n, math.MaxUint32))
		}
		if got != want {
			t.Fatalf("parseU(%q) = %d, want %d", v, got, want)
		}
	})
}
