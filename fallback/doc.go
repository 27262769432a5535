// Package fallback lets a unary call be answered when the downstream cannot
// answer it: a [Handler] that the interceptors call for a failed call (with
// interceptors.Fallback), the [Info] a caller reads (with
// interceptors.FallbackInfo) to tell a fallback answer from a real one, and
// a ready-made stale-answer [Store] that keeps the newest successful reply
// per request and serves it, with its age, when the downstream fails.
//
// # Model
//
// A method's fallback is a [Handler]: Answer, a [Func] asked to answer a
// failed call; Save, a [SaveFunc] told about every successful reply; and
// Margin, how long before the call's deadline a call still waiting on the
// downstream is answered instead. [Store.Handler] is the Store's: it saves
// every successful reply and answers from the newest copy. This is what the
// README shows:
//
//	store, err := fallback.NewStore(fallback.Config{MaxBytes: 64 << 20, MaxAge: 5 * time.Minute})
//	m, err := interceptors.New(
//		interceptors.WithMethodPolicy(interceptors.MatchMethods("/catalog.v1.Catalog/GetItem"),
//			interceptors.Fallback(store.Handler())))
//
// Any function can answer instead (Handler{Answer: ...}), a default answer
// of its own for example; [Store.Fallback] and [Store.Saver] are the
// Store's Func and SaveFunc on their own, to combine with one.
//
// The Store keys each copy by the full method name and the deterministic
// encoding of the request (proto.MarshalOptions{Deterministic: true}), so two
// requests that are equal as messages share one copy however they were built,
// map fields included. It keeps one copy per key, the newest: a save
// replaces the copy it finds. Copies are kept as encoded bytes: [Store.Save]
// encodes the reply, and [Store.Load] resets the caller's reply and decodes a
// copy of its own into it, so neither the caller who saved a reply nor the
// one who loaded it can change what the Store keeps by changing theirs.
//
// A copy is served while its age, the time since it was saved, is at most MaxAge. An older copy is never served; it is dropped
// when a load finds it, or when a later save into the same shard does (saves
// drop every expired copy of their shard, oldest first). Until then it still
// counts toward MaxBytes, so expired copies never make the Store grow.
//
// # Bounds: what counts toward MaxBytes
//
// Each copy counts the length of its key (method name plus encoded request,
// and a few bytes of length prefix), the memory taken by its encoded reply
// (its length rounded up to the allocator's size class, so the figure is what
// the heap really holds), and a fixed 128 bytes for its bookkeeping (the
// entry and its share of the index). When a save takes the Store over
// MaxBytes, the least recently used copies (saved or served) are evicted
// until it fits again. [Store.Bytes] reports the sum; it never exceeds
// MaxBytes, and the Store's heap stays close to it (100,000 distinct 1 KiB
// replies into a 10 MiB Store leave about 10 MiB on the heap; see
// TestMemoryBounded).
//
// The Store is split into shards, each with its own lock, LRU order and an
// equal share of MaxBytes: one shard per MiB of MaxBytes, a power of two, at
// most 16 (the default 64 MiB has 16 shards of 4 MiB). LRU order is kept per
// shard, so eviction is least-recently-used within a shard and close to it
// across the Store; a Store below 2 MiB has a single shard and exact LRU
// order. A reply whose copy would not fit in one shard's share is not kept
// ([ErrTooLarge]); with the default that is a reply over about 4 MiB, gRPC's
// default largest message.
//
// # Defaults
//
// [DefaultConfig] is MaxBytes 64 MiB and MaxAge 5 minutes: long enough to
// ride out a downstream restart or a short outage, short enough that a
// stale answer is still a plausible one for most read methods. A zero field
// means its default; a negative one is an error naming the field.
//
// # When a fallback answers, and why never for writes
//
// The interceptors call a method's Func only when the call failed in a way
// the downstream is to blame for: a server failure (Unavailable, an
// attempt's DeadlineExceeded — not the caller's own deadline or
// cancellation —, ResourceExhausted, Internal, Unknown, DataLoss), a breaker
// that is open, a retry budget that is exhausted, or server pushback that
// stopped retries.
// Client errors (InvalidArgument, NotFound, PermissionDenied and the other
// codes that describe the request rather than the server) are the answer and
// are passed on as they are. A fallback is opt-in per method and is never on
// by default.
//
// Never give a method that writes a fallback: a stored answer to a write
// tells the caller that a change was made when it was not, and a default
// answer hides a lost write. Use it for reads whose stale answer is better
// than none.
//
// Streams are out of scope: a fallback answers unary calls only.
//
// # Concurrency
//
// A Store is safe for concurrent use. Saves and loads of keys in different
// shards do not contend; a load holds its shard's lock only to find the copy
// and decodes it outside the lock. The Func and SaveFunc a Store returns are
// safe for concurrent use too.
package fallback
