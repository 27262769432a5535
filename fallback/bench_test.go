package fallback_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/grpc-resilience/resilience/fallback"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// BenchmarkStore measures Save and Load of a 1 KiB reply, over 1024 keys,
// against the encoding and decoding they cannot avoid, in the same run:
// compare Save with baseline=Marshal and Load with baseline=Unmarshal.
// (proto.Clone is no baseline: it shares string data instead of copying.)
func BenchmarkStore(b *testing.B) {
	rp := reply(strings.Repeat("x", 1024))
	const keys = 1024
	reqs := make([]*testingv1.EchoRequest, keys)
	for i := range reqs {
		reqs[i] = req(fmt.Sprint("key-", i))
	}
	b.Run("baseline=Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(rp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=Unmarshal", func(b *testing.B) {
		enc, _ := proto.Marshal(rp)
		got := new(testingv1.EchoResponse)
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(enc, got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Save", func(b *testing.B) {
		s := newStore(b, fallback.Config{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Save(method, reqs[i%keys], rp); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Load", func(b *testing.B) {
		s := newStore(b, fallback.Config{})
		for _, r := range reqs {
			if err := s.Save(method, r, rp); err != nil {
				b.Fatal(err)
			}
		}
		got := new(testingv1.EchoResponse)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok, err := s.Load(method, reqs[i%keys], got); !ok || err != nil {
				b.Fatal(ok, err)
			}
			i++
		}
	})
	b.Run("Load/parallel", func(b *testing.B) {
		s := newStore(b, fallback.Config{})
		for _, r := range reqs {
			if err := s.Save(method, r, rp); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			got := new(testingv1.EchoResponse)
			i := 0
			for pb.Next() {
				if _, ok, err := s.Load(method, reqs[i%keys], got); !ok || err != nil {
					b.Error(ok, err)
					return
				}
				i++
			}
		})
	})
}
