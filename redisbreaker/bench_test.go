package redisbreaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// BenchmarkAllowDone is the happy path, Allow plus done(nil) on a closed
// breaker: local is the baseline, shared the same Set attached to a running
// Shared (rounds with Redis every 100ms in the background), and
// gobreaker-distributed sony/gobreaker's DistributedCircuitBreaker on a
// Redis-backed SharedDataStore (a lock and two round trips per call).
// Compare with benchstat; the shared/local ratio is the cost of sharing.
func BenchmarkAllowDone(b *testing.B) {
	const key = "dns:///orders.example:443"
	b.Run("local", func(b *testing.B) {
		s, err := breaker.NewSet(breaker.Config{})
		if err != nil {
			b.Fatal(err)
		}
		allowDone(b, s, key)
	})
	b.Run("shared", func(b *testing.B) {
		r := benchRedis(b)
		c := redis.NewClient(&redis.Options{Addr: r.addr})
		defer c.Close()
		sh, err := New(c, Options{Prefix: "bench-shared"})
		if err != nil {
			b.Fatal(err)
		}
		defer sh.Close()
		s, err := breaker.NewSet(breaker.Config{Shared: sh})
		if err != nil {
			b.Fatal(err)
		}
		synced(b, sh) // the first round, before timing
		allowDone(b, s, key)
		if sh.Degraded() {
			b.Fatal("degraded during the benchmark")
		}
	})
	b.Run("gobreaker-distributed", func(b *testing.B) {
		r := benchRedis(b)
		c := redis.NewClient(&redis.Options{Addr: r.addr})
		defer c.Close()
		cb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](&gbStore{c: c}, gobreaker.Settings{Name: key})
		if err != nil {
			b.Fatal(err)
		}
		ok := func() (struct{}, error) { return struct{}{}, nil }
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Execute(ok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func allowDone(b *testing.B, s *breaker.Set, key string) {
	b.ReportAllocs()
	for b.Loop() {
		done, err := s.Allow(key)
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

// gbStore is a gobreaker.SharedDataStore on Redis, as its documentation
// asks: a lock (SET NX PX, retried) around reading and writing one value.
type gbStore struct{ c *redis.Client }

func (s *gbStore) Lock(name string) error {
	ctx := context.Background()
	for range 1000 {
		ok, err := s.c.SetNX(ctx, "gb:lock:"+name, "1", time.Second).Result()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return errors.New("gbStore: lock not acquired")
}

func (s *gbStore) Unlock(name string) error {
	return s.c.Del(context.Background(), "gb:lock:"+name).Err()
}

func (s *gbStore) GetData(name string) ([]byte, error) {
	v, err := s.c.Get(context.Background(), "gb:data:"+name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, err
}

func (s *gbStore) SetData(name string, data []byte) error {
	return s.c.Set(context.Background(), "gb:data:"+name, data, 0).Err()
}
