package engine

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Stream runs a streaming call; opts are handled as Unary's.
//
// A stream is retried only before it is committed: until the first response
// header or message arrives, the caller reads the headers, or the messages
// sent exceed the replay buffer. Until then the messages the caller sent
// are kept and replayed, in order, on the next attempt. After commit,
// errors reach the caller unchanged: the application never sees a
// duplicated or lost message. Attempts are counted per stream, never per
// message. The per-attempt timeout bounds the time to commit, not the life
// of a committed stream.
func (e *Engine) Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts []grpc.CallOption) (grpc.ClientStream, error) {
	s := &retryStream{
		desc:     desc,
		streamer: streamer,
	}
	var err error
	if s.opts, s.cancel, err = e.init(&s.c, ctx, method, cc, opts); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		o, ok := s.newAttemptLocked()
		if ok {
			return s, nil
		}
		if stop := s.retryLocked(o); stop != nil {
			return nil, s.finishLocked(*stop)
		}
	}
}

// retryStream is the grpc.ClientStream handed to the caller. grpc allows one
// goroutine to send while another receives; mu guards the state they share.
type retryStream struct {
	c        call
	desc     *grpc.StreamDesc
	streamer grpc.Streamer
	opts     []grpc.CallOption
	cancel   context.CancelFunc // ends the call context

	// committed is set once the stream can no longer be retried; from then
	// on cs never changes and the fast paths read it without the lock.
	committed atomic.Bool

	mu        sync.Mutex
	cs        grpc.ClientStream // the current attempt's stream
	a         attempt           // the current attempt
	acancel   context.CancelCauseFunc
	stopAfter func() bool // stops the caller-cancel watcher of the attempt
	timer     *time.Timer // per-attempt timeout until commit
	buf       []any       // messages sent, replayed on a new attempt
	bufSize   int
	closeSent bool
	// attemptEnded is set once the current attempt's outcome is reported.
	attemptEnded bool
	finished     bool
	endErr       error
	// stop is set when no attempt could start (a gate refused it, or a
	// wait before it ended): the decision that ends the call.
	stop *decision
}

// newAttemptLocked starts an attempt and replays what the caller already
// sent. If it did not start, ok is false and o says how it failed (or
// s.stop is set: no attempt could start), for retryLocked.
func (s *retryStream) newAttemptLocked() (o outcome, ok bool) {
	c := &s.c
	a := &s.a
	if stop := c.nextAttempt(a, false); stop != nil {
		s.stop = stop
		return outcome{}, false
	}
	ctx, acancel := context.WithCancelCause(a.ctx)
	cs, err := s.streamer(ctx, s.desc, c.cc, c.method, s.opts...)
	if err != nil {
		acancel(nil)
		return c.endAttempt(a, err, nil), false
	}
	s.cs, s.acancel, s.attemptEnded = cs, acancel, false
	if d := c.p.PerAttemptTimeout; d > 0 {
		s.timer = time.AfterFunc(d, func() { acancel(errAttemptTimeout) })
	}
	// If the caller abandons the stream and cancels its context (or the
	// call deadline passes), end the call even if nobody reads the error:
	// the breaker and telemetry hear about every attempt exactly once.
	s.stopAfter = context.AfterFunc(ctx, s.abandoned)
	for _, msg := range s.buf {
		if err := cs.SendMsg(msg); err != nil {
			// The new attempt already failed; RecvMsg reports why.
			return outcome{}, true
		}
	}
	if s.closeSent {
		_ = cs.CloseSend()
	}
	return outcome{}, true
}

// retryLocked decides, after an attempt failed as o says, whether another
// follows; if so it waits (without the lock) for the decided delay and
// returns nil, else the decision that ends the stream.
func (s *retryStream) retryLocked(o outcome) *decision {
	if d := s.stop; d != nil {
		s.stop = nil
		return d
	}
	d := s.c.decide(event{outcome: o}, 0, false)
	if d.op == opStop {
		return &d
	}
	s.mu.Unlock()
	err := s.c.sleep(s.c.ctx, d.delay)
	s.mu.Lock()
	if err != nil {
		d = waitStop(err)
		return &d
	}
	return nil
}

// abandoned runs when the current attempt's context ends by other means
// than the stream ending: the caller's cancel or the call deadline (the
// per-attempt timeout is left to RecvMsg, which retries).
func (s *retryStream) abandoned() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.c.ctx.Err(); err != nil {
		s.finishLocked(stop(contextStatus(err)))
	}
}

// commitLocked makes the current attempt final.
func (s *retryStream) commitLocked() {
	if s.committed.Load() {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.buf, s.bufSize = nil, 0
	s.committed.Store(true)
}

// finishLocked ends the current attempt and the call as d says (d.err nil
// or io.EOF for success), once; later calls return the first result.
func (s *retryStream) finishLocked(d decision) error {
	if s.finished {
		return s.endErr
	}
	s.finished = true
	s.endAttemptLocked(d.err)
	if d.err != nil && d.err != io.EOF {
		s.endErr = s.c.finish(d)
	} else {
		s.c.finish(decision{op: opStop})
		s.endErr = d.err
	}
	s.cancel()
	return s.endErr
}

// endAttemptLocked reports the current attempt's outcome, once, and
// returns it as decide sees it.
func (s *retryStream) endAttemptLocked(err error) outcome {
	if s.attemptEnded || s.cs == nil {
		return s.c.classify(&s.a, err, nil)
	}
	s.attemptEnded = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.stopAfter()
	if err == io.EOF {
		err = nil
	}
	var trailer metadata.MD
	if err != nil {
		trailer = s.cs.Trailer()
	}
	o := s.c.endAttempt(&s.a, err, trailer)
	s.acancel(nil)
	return o
}

// SendMsg sends m on the current attempt and, until commit, keeps it for
// replay.
func (s *retryStream) SendMsg(m any) error {
	if s.committed.Load() {
		return s.cs.SendMsg(m)
	}
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return s.endErr
	}
	if !s.committed.Load() {
		size := -1 // unknown: too much to replay
		if pm, ok := m.(proto.Message); ok {
			size = proto.Size(pm)
		}
		if size < 0 || size > s.c.e.cfg.ReplayBuffer-s.bufSize {
			// Too much to replay: this attempt is the last.
			s.commitLocked()
		} else {
			s.buf = append(s.buf, m)
			s.bufSize += size
		}
	}
	cs, committed := s.cs, s.committed.Load()
	s.mu.Unlock()
	err := cs.SendMsg(m)
	if err == io.EOF && !committed {
		// The attempt ended; the message is kept and the next RecvMsg
		// learns why the attempt ended and retries if it may.
		return nil
	}
	return err
}

// CloseSend half-closes the current attempt, and every later one.
func (s *retryStream) CloseSend() error {
	s.mu.Lock()
	s.closeSent = true
	cs := s.cs
	s.mu.Unlock()
	return cs.CloseSend()
}

// RecvMsg receives from the current attempt; before commit, a failed
// attempt is replaced by a new one when the policy allows.
func (s *retryStream) RecvMsg(m any) error {
	if s.committed.Load() {
		err := s.cs.RecvMsg(m)
		if err != nil || !s.desc.ServerStreams {
			s.mu.Lock()
			s.finishLocked(stop(err))
			s.mu.Unlock()
		}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		cs := s.cs
		s.mu.Unlock()
		err := cs.RecvMsg(m)
		s.mu.Lock()
		switch {
		case err == nil:
			s.commitLocked()
			if !s.desc.ServerStreams {
				// A single response: the stream is over.
				s.finishLocked(stop(nil))
			}
			return nil
		case s.finished:
			return err
		case s.committed.Load() || err == io.EOF:
			s.commitLocked()
			s.finishLocked(stop(err))
			return err
		}
		if hdr, _ := cs.Header(); hdr != nil {
			// The server answered with headers: committed.
			s.commitLocked()
			s.finishLocked(stop(err))
			return err
		}
		if context.Cause(cs.Context()) == errAttemptTimeout && s.c.ctx.Err() == nil {
			err = errAttemptTimeoutStatus
		}
		o := s.endAttemptLocked(err)
		for {
			if d := s.retryLocked(o); d != nil {
				return s.finishLocked(*d)
			}
			if s.finished {
				// Abandoned while waiting to retry.
				return s.endErr
			}
			var ok bool
			if o, ok = s.newAttemptLocked(); ok {
				break
			}
		}
	}
}

// Header returns the current attempt's header. Reading a header commits
// the stream: the caller has seen this attempt's answer.
func (s *retryStream) Header() (metadata.MD, error) {
	s.mu.Lock()
	cs := s.cs
	s.mu.Unlock()
	md, err := cs.Header()
	if md != nil {
		s.mu.Lock()
		if s.cs == cs {
			s.commitLocked()
		}
		s.mu.Unlock()
	}
	return md, err
}

// Trailer returns the current attempt's trailer.
func (s *retryStream) Trailer() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs.Trailer()
}

// Context returns the current attempt's context.
func (s *retryStream) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs.Context()
}
