package breaker

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func benchSet(b *testing.B, c Config) *Set {
	b.Helper()
	s, err := NewSet(c)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchTrip(b *testing.B, s *Set, key string) {
	b.Helper()
	for range 25 {
		attempt(s, key, errUnavailable)
	}
	if got := s.State(key); got != StateOpen {
		b.Fatalf("State = %v, want open", got)
	}
}

// BenchmarkAllowOpen is the cost of a rejection by an open breaker (target:
// <= 1µs/op, <= 2 allocs/op).
func BenchmarkAllowOpen(b *testing.B) {
	s := benchSet(b, Config{OpenTimeout: time.Hour})
	const key = "dns:///orders.example:443"
	benchTrip(b, s, key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Allow(key); err == nil {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkAllowOpenParallel(b *testing.B) {
	s := benchSet(b, Config{OpenTimeout: time.Hour})
	const key = "dns:///orders.example:443"
	benchTrip(b, s, key)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Allow(key); err == nil {
				b.Error("admitted")
				return
			}
		}
	})
}

// BenchmarkAllowDone is the overhead a closed breaker adds to an attempt:
// Allow plus done(nil).
func BenchmarkAllowDone(b *testing.B) {
	s := benchSet(b, Config{})
	const key = "dns:///orders.example:443"
	b.ReportAllocs()
	for b.Loop() {
		done, err := s.Allow(key)
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// BenchmarkAllowDoneFailure reports a server error (classified, counted in the
// window, evaluated by the trip rule) on a breaker that stays closed.
func BenchmarkAllowDoneFailure(b *testing.B) {
	s := benchSet(b, Config{ConsecutiveFailures: 1 << 31, MinRequests: 1 << 31})
	const key = "dns:///orders.example:443"
	err := status.Error(codes.Unavailable, "down")
	b.ReportAllocs()
	for b.Loop() {
		done, aerr := s.Allow(key)
		if aerr != nil {
			b.Fatal(aerr)
		}
		done(err)
	}
}

func BenchmarkAllowDoneParallel(b *testing.B) {
	s := benchSet(b, Config{})
	const key = "dns:///orders.example:443"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := s.Allow(key)
			if err != nil {
				b.Error(err)
				return
			}
			done(nil)
		}
	})
}

// BenchmarkAllowDoneManyKeys spreads parallel attempts over 1,000 keys.
func BenchmarkAllowDoneManyKeys(b *testing.B) {
	s := benchSet(b, Config{})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("dns:///svc-%d.example:443/pkg.Service/Method", i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919)
		for pb.Next() {
			i++
			done, err := s.Allow(keys[i%uint64(len(keys))])
			if err != nil {
				b.Error(err)
				return
			}
			done(nil)
		}
	})
}

// BenchmarkAllowNewKeyAtCap is the slow path: every Allow adds a key to a Set
// at its cap, so every Allow evicts one.
func BenchmarkAllowNewKeyAtCap(b *testing.B) {
	s := benchSet(b, Config{MaxKeys: 1000})
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "dns:///svc-" + strconv.Itoa(i)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		done, err := s.Allow(keys[i%len(keys)])
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
		i++
	}
}

func BenchmarkDefaultIsFailure(b *testing.B) {
	err := fmt.Errorf("attempt 2: %w", status.Error(codes.Unavailable, "down"))
	b.ReportAllocs()
	for b.Loop() {
		if !DefaultIsFailure(err) {
			b.Fatal("not a failure")
		}
	}
}
