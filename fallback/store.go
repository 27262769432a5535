package fallback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
)

// ErrTooLarge is returned by [Store.Save] for a reply whose copy would take
// more than a shard's share of MaxBytes (see the package documentation). The
// copy is not kept, and an older copy for the same key is dropped, so that
// the Store never serves anything but the newest reply it was given.
var ErrTooLarge = errors.New("fallback: reply too large to keep")

// ErrInvalidArgument is wrapped by the errors [Store.Save] and [Store.Load]
// (and a Func's) return for an argument of one call they cannot use (an
// empty method, a nil message); the message names the argument. Settings
// (a Config, a Handler) that are wrong are reported at construction with
// [ErrInvalidConfig], as everywhere in the module.
var ErrInvalidArgument = errors.New("fallback: invalid argument")

// entryOverhead is what one entry costs beyond its key and its reply's
// bytes: the entry struct (80 bytes) and its share of the shard's map.
const entryOverhead = 128

// minShardBytes is the least share of MaxBytes a shard is given; a Store with
// MaxBytes below twice this has a single shard, so its LRU order is exact.
const minShardBytes = 1 << 20

// maxShards bounds the number of shards.
const maxShards = 16

var (
	keyOpts = proto.MarshalOptions{Deterministic: true}
	valOpts = proto.MarshalOptions{UseCachedSize: true} // after Size
)

// Store keeps the newest successful reply per method and request, as
// encoded bytes, bounded by MaxBytes and MaxAge. The zero value is not
// usable; create one with [NewStore]. A Store is safe for concurrent use.
type Store struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed
	maxAge time.Duration
	epoch  time.Time
	bufs   sync.Pool // *[]byte, for building keys
}

// shard is one lock's worth of the Store: a map, an LRU list (most recently
// saved or served first) and an age list (most recently saved first), both
// circular through their sentinels.
type shard struct {
	mu    sync.Mutex
	m     map[string]*entry
	lru   entry // sentinel of the LRU list
	age   entry // sentinel of the age list
	bytes int64
	max   int64
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

type entry struct {
	key      string
	val      []byte // the encoded reply; never written after it is stored
	at       time.Duration
	lru, age link
}

type link struct{ prev, next *entry }

func (e *entry) cost() int64 { return int64(len(e.key)+cap(e.val)) + entryOverhead }

// NewStore returns an empty Store, or an error wrapping [ErrInvalidConfig]
// naming every invalid field of c.
func NewStore(c Config) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	n := 1
	for n < maxShards && c.MaxBytes/int64(2*n) >= minShardBytes {
		n *= 2
	}
	s := &Store{
		shards: make([]shard, n),
		mask:   uint64(n - 1),
		seed:   maphash.MakeSeed(),
		maxAge: c.MaxAge,
	}
	s.epoch = time.Now()
	s.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	for i := range s.shards {
		sh := &s.shards[i]
		sh.m = make(map[string]*entry)
		sh.max = c.MaxBytes / int64(n)
		sh.lru.lru = link{&sh.lru, &sh.lru}
		sh.age.age = link{&sh.age, &sh.age}
	}
	return s, nil
}

// Save keeps a copy of reply as the answer to req on method, replacing any
// older copy. It returns an error, and keeps nothing new, when an argument is
// unusable ([ErrInvalidArgument]), when req or reply cannot be encoded, or
// when the copy is too large ([ErrTooLarge]). Save does not retain req or
// reply: the caller may change them as soon as it returns.
func (s *Store) Save(method string, req, reply proto.Message) error {
	if err := checkReply(reply); err != nil {
		return err
	}
	kb, err := s.key(method, req)
	if err != nil {
		return err
	}
	defer s.putBuf(kb)
	n := valOpts.Size(reply) // fills the size cache valOpts reads
	// slices.Grow rounds the capacity up to the allocator's size class,
	// so cap(val) is what the copy really takes.
	val, err := valOpts.MarshalAppend(slices.Grow([]byte(nil), n), reply)
	if err != nil {
		return fmt.Errorf("fallback: encoding reply for %s: %w", method, err)
	}

	sh := s.shard(*kb)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := time.Now().Sub(s.epoch)
	sh.dropExpired(now, s.maxAge)
	e := sh.m[string(*kb)]
	if int64(len(*kb)+cap(val))+entryOverhead > sh.max {
		if e != nil {
			sh.remove(e)
		}
		return fmt.Errorf("%w: %d bytes for %s, at most %d", ErrTooLarge, len(val), method, sh.max-entryOverhead-int64(len(*kb)))
	}
	if e != nil {
		sh.bytes -= e.cost()
		e.val, e.at = val, now
		sh.bytes += e.cost()
		unlink(byUse, e)
		unlink(byAge, e)
	} else {
		e = &entry{key: string(*kb), val: val, at: now}
		sh.m[e.key] = e
		sh.bytes += e.cost()
	}
	push(byUse, &sh.lru, e)
	push(byAge, &sh.age, e)
	for sh.bytes > sh.max {
		sh.remove(sh.lru.lru.prev)
	}
	return nil
}

// Load fills reply with the newest copy kept for req on method, if there is
// one no older than MaxAge, and returns its age and true. reply is reset
// first and then holds a copy of its own: changing it never changes what the
// Store keeps. Without a fresh copy Load leaves reply untouched and returns
// false; a copy it finds too old is dropped. The error is non-nil only for an
// unusable argument ([ErrInvalidArgument]), a request that cannot be encoded,
// or a copy that does not decode into reply (then ok is false too).
func (s *Store) Load(method string, req, reply proto.Message) (age time.Duration, ok bool, err error) {
	if err := checkReply(reply); err != nil {
		return 0, false, err
	}
	kb, err := s.key(method, req)
	if err != nil {
		return 0, false, err
	}
	defer s.putBuf(kb)

	sh := s.shard(*kb)
	sh.mu.Lock()
	e := sh.m[string(*kb)]
	if e == nil {
		sh.mu.Unlock()
		return 0, false, nil
	}
	age = max(time.Now().Sub(s.epoch)-e.at, 0)
	if age > s.maxAge {
		sh.remove(e)
		sh.mu.Unlock()
		return 0, false, nil
	}
	unlink(byUse, e)
	push(byUse, &sh.lru, e)
	val := e.val // immutable: decoding it needs no lock
	sh.mu.Unlock()

	proto.Reset(reply)
	if err := proto.Unmarshal(val, reply); err != nil {
		return 0, false, fmt.Errorf("fallback: decoding the copy for %s into %T: %w", method, reply, err)
	}
	return age, true, nil
}

// Len returns the number of copies the Store holds, including copies past
// MaxAge that no save or load has dropped yet.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Bytes returns how much of MaxBytes the Store uses, counted as described in
// the package documentation. It never exceeds MaxBytes.
func (s *Store) Bytes() int64 {
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.bytes
		sh.mu.Unlock()
	}
	return n
}

// key builds the key of method and req, a uvarint length and the method name
// followed by the deterministic encoding of req, into a pooled buffer the
// caller must return with putBuf.
func (s *Store) key(method string, req proto.Message) (*[]byte, error) {
	if method == "" {
		return nil, fmt.Errorf("%w: method must not be empty", ErrInvalidArgument)
	}
	if req == nil {
		return nil, fmt.Errorf("%w: req must not be nil", ErrInvalidArgument)
	}
	kb := s.bufs.Get().(*[]byte)
	b := binary.AppendUvarint((*kb)[:0], uint64(len(method)))
	b = append(b, method...)
	b, err := keyOpts.MarshalAppend(b, req)
	*kb = b
	if err != nil {
		s.putBuf(kb)
		return nil, fmt.Errorf("fallback: encoding request for %s: %w", method, err)
	}
	return kb, nil
}

// maxPooledKey bounds the buffers kept for reuse, so that one large request
// does not stay in the pool.
const maxPooledKey = 64 << 10

func (s *Store) putBuf(kb *[]byte) {
	if cap(*kb) <= maxPooledKey {
		s.bufs.Put(kb)
	}
}

func checkReply(reply proto.Message) error {
	if reply == nil || !reply.ProtoReflect().IsValid() {
		return fmt.Errorf("%w: reply must be a non-nil message", ErrInvalidArgument)
	}
	return nil
}

func (s *Store) shard(key []byte) *shard {
	if s.mask == 0 {
		return &s.shards[0]
	}
	return &s.shards[maphash.Bytes(s.seed, key)&s.mask]
}

// dropExpired removes, oldest first, the copies saved more than maxAge
// before now.
func (sh *shard) dropExpired(now, maxAge time.Duration) {
	for e := sh.age.age.prev; e != &sh.age && now-e.at > maxAge; e = sh.age.age.prev {
		sh.remove(e)
	}
}

func (sh *shard) remove(e *entry) {
	unlink(byUse, e)
	unlink(byAge, e)
	delete(sh.m, e.key)
	sh.bytes -= e.cost()
}

// Each entry is on two circular lists with sentinel heads: by use (lru)
// and by age. on selects one of an entry's links.
type on func(*entry) *link

func byUse(e *entry) *link { return &e.lru }
func byAge(e *entry) *link { return &e.age }

// push puts e first on the list of head that l selects.
func push(l on, head, e *entry) {
	*l(e) = link{head, l(head).next}
	l(l(head).next).prev = e
	l(head).next = e
}

// unlink takes e off the list that l selects.
func unlink(l on, e *entry) {
	el := l(e)
	l(el.prev).next = el.next
	l(el.next).prev = el.prev
	*el = link{}
}
