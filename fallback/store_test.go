package fallback_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/grpc-resilience/resilience/fallback"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

const method = "/resilience.testing.v1.EchoService/Echo"

func req(s string) *testingv1.EchoRequest    { return &testingv1.EchoRequest{Message: s} }
func reply(s string) *testingv1.EchoResponse { return &testingv1.EchoResponse{Message: s} }

func newStore(t testing.TB, c fallback.Config) *fallback.Store {
	t.Helper()
	s, err := fallback.NewStore(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func save(t testing.TB, s *fallback.Store, key, val string) {
	t.Helper()
	if err := s.Save(method, req(key), reply(val)); err != nil {
		t.Fatalf("Save(%q): %v", key, err)
	}
}

// load returns the copy kept for key, or "" and false.
func load(t testing.TB, s *fallback.Store, key string) (string, bool) {
	t.Helper()
	r := new(testingv1.EchoResponse)
	_, ok, err := s.Load(method, req(key), r)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	return r.Message, ok
}

func TestCopyInCopyOut(t *testing.T) {
	s := newStore(t, fallback.Config{})
	rq, rp := req("k"), reply("original")
	if err := s.Save(method, rq, rp); err != nil {
		t.Fatal(err)
	}
	rp.Message = "changed by the saver"
	rq.Message = "other key"

	got := reply("left over from before")
	if _, ok, err := s.Load(method, req("k"), got); err != nil || !ok || got.Message != "original" {
		t.Fatalf("Load = %q, %v, %v; want the saved copy, unaffected by the saver's changes", got.Message, ok, err)
	}
	got.Message = "changed by the loader"
	if v, ok := load(t, s, "k"); !ok || v != "original" {
		t.Errorf("second Load = %q, %v; want the saved copy, unaffected by the loader's changes", v, ok)
	}
	if _, ok := load(t, s, "other key"); ok {
		t.Error("changing the request after Save moved the copy to another key")
	}
}

func TestMissLeavesReplyUntouched(t *testing.T) {
	s := newStore(t, fallback.Config{})
	r := reply("mine")
	if _, ok, err := s.Load(method, req("absent"), r); ok || err != nil || r.Message != "mine" {
		t.Errorf("Load of an absent key = %v, %v, reply %q; want false, nil, reply untouched", ok, err, r.Message)
	}
	save(t, s, "k", "v")
	if _, ok, _ := s.Load("/other.Service/Echo", req("k"), r); ok {
		t.Error("a copy saved for one method was served for another")
	}
}

func TestServesNewestCopy(t *testing.T) {
	s := newStore(t, fallback.Config{})
	save(t, s, "k", "first")
	save(t, s, "k", "second")
	if v, ok := load(t, s, "k"); !ok || v != "second" {
		t.Errorf("Load = %q, %v; want the newest copy", v, ok)
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d after two saves of one key, want 1", s.Len())
	}
}

// entryCost measures what one copy of key -> val counts toward MaxBytes.
func entryCost(t *testing.T, key, val string) int64 {
	s := newStore(t, fallback.Config{})
	save(t, s, key, val)
	return s.Bytes()
}

func TestLRUByBytes(t *testing.T) {
	val := strings.Repeat("x", 200)
	cost := entryCost(t, "k1", val)
	s := newStore(t, fallback.Config{MaxBytes: 3 * cost})
	for _, k := range []string{"k1", "k2", "k3"} {
		save(t, s, k, val)
	}
	if s.Len() != 3 || s.Bytes() != 3*cost {
		t.Fatalf("Len, Bytes = %d, %d; want 3, %d", s.Len(), s.Bytes(), 3*cost)
	}
	load(t, s, "k1") // k2 is now the least recently used
	save(t, s, "k4", val)
	for k, want := range map[string]bool{"k1": true, "k2": false, "k3": true, "k4": true} {
		if _, ok := load(t, s, k); ok != want {
			t.Errorf("%s kept = %v, want %v", k, ok, want)
		}
	}
	// A copy about twice the size makes room by evicting more than one
	// (which ones depends on the map order of the loads above).
	big := strings.Repeat("y", 2*len(val)+50)
	save(t, s, "k5", big)
	if s.Bytes() > 3*cost {
		t.Errorf("Bytes = %d, over MaxBytes %d", s.Bytes(), 3*cost)
	}
	if v, ok := load(t, s, "k5"); !ok || v != big {
		t.Error("the copy just saved was evicted")
	}
}

func TestLRUOrderDeterministic(t *testing.T) {
	val := strings.Repeat("x", 100)
	cost := entryCost(t, "k0", val)
	s := newStore(t, fallback.Config{MaxBytes: 4 * cost})
	for _, k := range []string{"k0", "k1", "k2", "k3"} {
		save(t, s, k, val)
	}
	// Use order, oldest first: k1 k3 k0 k2.
	load(t, s, "k1")
	load(t, s, "k3")
	load(t, s, "k0")
	load(t, s, "k2")
	for _, k := range []string{"n0", "n1", "n2"} {
		save(t, s, k, val)
	}
	// Least recently used first: k1, k3, k0 go; an eviction by save order
	// would have kept k3 instead of k2.
	for k, want := range map[string]bool{"k1": false, "k3": false, "k0": false, "k2": true, "n0": true, "n1": true, "n2": true} {
		if _, ok := load(t, s, k); ok != want {
			t.Errorf("%s kept = %v, want %v", k, ok, want)
		}
	}
}

func TestMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, fallback.Config{MaxAge: time.Minute})
		save(t, s, "k", "v")
		time.Sleep(20 * time.Second)
		r := new(testingv1.EchoResponse)
		if age, ok, _ := s.Load(method, req("k"), r); !ok || age != 20*time.Second {
			t.Errorf("Load after 20s = age %v, %v; want 20s, true", age, ok)
		}
		time.Sleep(40 * time.Second)
		if age, ok, _ := s.Load(method, req("k"), r); !ok || age != time.Minute {
			t.Errorf("Load at exactly MaxAge = age %v, %v; want 1m, true", age, ok)
		}
		time.Sleep(time.Nanosecond)
		r.Message = "mine"
		if _, ok, _ := s.Load(method, req("k"), r); ok || r.Message != "mine" {
			t.Errorf("Load past MaxAge = %v, reply %q; want a miss, reply untouched", ok, r.Message)
		}
		if s.Len() != 0 || s.Bytes() != 0 {
			t.Errorf("Len, Bytes = %d, %d after an expired load; want the copy dropped", s.Len(), s.Bytes())
		}
		// A newer save restarts the age.
		save(t, s, "k", "v2")
		time.Sleep(30 * time.Second)
		if age, ok, _ := s.Load(method, req("k"), r); !ok || age != 30*time.Second || r.Message != "v2" {
			t.Errorf("Load of a resaved copy = %q, age %v, %v; want v2, 30s, true", r.Message, age, ok)
		}
	})
}

func TestExpiredDroppedAtSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Below 2 MiB a Store has one shard, so every save sees every copy.
		s := newStore(t, fallback.Config{MaxBytes: 1 << 20, MaxAge: time.Minute})
		save(t, s, "old1", "v")
		save(t, s, "old2", "v")
		time.Sleep(45 * time.Second)
		save(t, s, "young", "v")
		load(t, s, "old1") // recently used, but still the oldest save
		time.Sleep(30 * time.Second)
		save(t, s, "new", "v")
		if s.Len() != 2 {
			t.Errorf("Len = %d after a save past old1's and old2's MaxAge, want 2 (young, new)", s.Len())
		}
		for k, want := range map[string]bool{"old1": false, "old2": false, "young": true, "new": true} {
			if _, ok := load(t, s, k); ok != want {
				t.Errorf("%s served = %v, want %v", k, ok, want)
			}
		}
	})
}

func TestTooLarge(t *testing.T) {
	s := newStore(t, fallback.Config{MaxBytes: 1024})
	save(t, s, "k", "small")
	err := s.Save(method, req("k"), reply(strings.Repeat("x", 2048)))
	if !errors.Is(err, fallback.ErrTooLarge) {
		t.Fatalf("Save of 2 KiB into 1 KiB = %v, want ErrTooLarge", err)
	}
	if _, ok := load(t, s, "k"); ok {
		t.Error("an older copy was kept after a newer reply could not be; want only the newest served")
	}
	if s.Bytes() != 0 {
		t.Errorf("Bytes = %d, want 0", s.Bytes())
	}
}

func TestDeterministicKey(t *testing.T) {
	s := newStore(t, fallback.Config{})
	const n = 64
	a := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := range n {
		a.Fields[fmt.Sprint("f", i)] = structpb.NewNumberValue(float64(i))
	}
	b := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := n - 1; i >= 0; i-- {
		b.Fields[fmt.Sprint("f", i)] = structpb.NewNumberValue(float64(i))
	}
	b.Fields["nested"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"z": structpb.NewBoolValue(true), "a": structpb.NewStringValue("s"),
	}})
	nested, _ := structpb.NewStruct(map[string]any{"a": "s", "z": true})
	a.Fields["nested"] = structpb.NewStructValue(nested)
	if !proto.Equal(a, b) {
		t.Fatal("test requests differ")
	}
	for i := range 10 { // map iteration order differs from save to save
		if err := s.Save(method, a, reply(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
		r := new(testingv1.EchoResponse)
		if _, ok, err := s.Load(method, b, r); err != nil || !ok || r.Message != fmt.Sprint("v", i) {
			t.Fatalf("Load with an equal request built differently = %q, %v, %v; want v%d", r.Message, ok, err, i)
		}
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d after saving equal requests, want 1", s.Len())
	}
}

func TestBadInput(t *testing.T) {
	s := newStore(t, fallback.Config{})
	var nilReply *testingv1.EchoResponse
	for _, tc := range []struct {
		name, method string
		req, reply   proto.Message
		word         string
	}{
		{"nil reply", method, req("k"), nil, "reply"},
		{"typed nil reply", method, req("k"), nilReply, "reply"},
		{"nil req", method, nil, reply("v"), "req"},
		{"empty method", "", req("k"), reply("v"), "method"},
	} {
		err := s.Save(tc.method, tc.req, tc.reply)
		if !errors.Is(err, fallback.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.word) {
			t.Errorf("%s: Save = %v, want ErrInvalidArgument naming %s", tc.name, err, tc.word)
		}
		_, ok, err := s.Load(tc.method, tc.req, tc.reply)
		if ok || !errors.Is(err, fallback.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.word) {
			t.Errorf("%s: Load = %v, %v, want ErrInvalidArgument naming %s", tc.name, ok, err, tc.word)
		}
	}
	// A proto3 string that is not UTF-8 cannot be encoded.
	if err := s.Save(method, req("\xff"), reply("v")); err == nil || !strings.Contains(err.Error(), "request") {
		t.Errorf("Save with an unencodable request = %v, want an error about the request", err)
	}
	if err := s.Save(method, req("k"), reply("\xff")); err == nil || !strings.Contains(err.Error(), "reply") {
		t.Errorf("Save with an unencodable reply = %v, want an error about the reply", err)
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after failed saves, want 0", s.Len())
	}
	// A typed nil request is the empty message, as in proto and gRPC.
	var nilReq *testingv1.EchoRequest
	if err := s.Save(method, nilReq, reply("v")); err != nil {
		t.Errorf("Save with a typed nil request = %v, want it treated as empty", err)
	}
	if v, ok := load(t, s, ""); !ok || v != "v" {
		t.Errorf("Load with the empty request = %q, %v; want the copy saved with a typed nil one", v, ok)
	}
}

func TestConfig(t *testing.T) {
	err := fallback.Config{MaxBytes: -1, MaxAge: -time.Second}.Validate()
	for _, field := range []string{"MaxBytes", "MaxAge"} {
		if !errors.Is(err, fallback.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate = %v, want ErrInvalidConfig naming %s", err, field)
		}
	}
	if _, err := fallback.NewStore(fallback.Config{MaxAge: -1}); !errors.Is(err, fallback.ErrInvalidConfig) {
		t.Errorf("NewStore with MaxAge -1 = %v, want ErrInvalidConfig", err)
	}
	if err := fallback.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig invalid: %v", err)
	}
	if err := (fallback.Config{}).Validate(); err != nil {
		t.Errorf("zero Config invalid: %v", err)
	}
	d := fallback.DefaultConfig()
	d.MaxBytes = 1
	if fallback.DefaultConfig().MaxBytes != 64<<20 || fallback.DefaultConfig().MaxAge != 5*time.Minute {
		t.Errorf("DefaultConfig = %+v, want a fresh 64 MiB, 5m", fallback.DefaultConfig())
	}
}

func TestConcurrentUse(t *testing.T) {
	val := strings.Repeat("v", 100)
	cost := entryCost(t, "k00", val+"00")
	// Room for about half the keys: saves evict while others load.
	s := newStore(t, fallback.Config{MaxBytes: 50 * cost})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			r := new(testingv1.EchoResponse)
			for range 2000 {
				k := fmt.Sprintf("k%02d", rng.IntN(100))
				if rng.IntN(2) == 0 {
					if err := s.Save(method, req(k), reply(val+k[1:])); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				_, ok, err := s.Load(method, req(k), r)
				if err != nil || (ok && r.Message != val+k[1:]) {
					t.Errorf("Load(%s) = %q, %v, %v; want its own copy", k, r.Message, ok, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			if b := s.Bytes(); b > 50*cost {
				t.Errorf("Bytes = %d during concurrent use, over MaxBytes %d", b, 50*cost)
			}
			_ = s.Len()
		}
	})
	wg.Wait()
	if b := s.Bytes(); b > 50*cost || b != int64(s.Len())*cost {
		t.Errorf("Bytes = %d with %d copies of cost %d, MaxBytes %d", b, s.Len(), cost, 50*cost)
	}
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestMemoryBounded(t *testing.T) {
	const maxBytes = 10 << 20
	rp := reply(strings.Repeat("x", 1024))
	before := heapAlloc()
	s := newStore(t, fallback.Config{MaxBytes: maxBytes})
	for i := range 100_000 {
		if err := s.Save(method, req(fmt.Sprint("key-", i)), rp); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAlloc()
	growth := int64(after) - int64(before)
	t.Logf("100,000 saves of 1 KiB replies, MaxBytes 10 MiB: %d copies kept, Bytes %d (%.2f MiB), heap growth %.2f MiB",
		s.Len(), s.Bytes(), float64(s.Bytes())/(1<<20), float64(growth)/(1<<20))
	if growth > 11<<20 {
		t.Errorf("heap grew %.2f MiB, want <= 11 MiB", float64(growth)/(1<<20))
	}
	if s.Bytes() > maxBytes {
		t.Errorf("Bytes = %d, over MaxBytes %d", s.Bytes(), maxBytes)
	}
	if n := s.Len(); n < 7500 { // 10 MiB / (1152 + key + 128)
		t.Errorf("only %d copies kept in 10 MiB, want at least 7500", n)
	}
	runtime.KeepAlive(s)
}
