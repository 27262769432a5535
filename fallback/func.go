package fallback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// ErrNoCopy is wrapped, next to the call's own error, by the error the Func
// of [Store.Fallback] returns when the Store has no fresh copy to answer
// with.
var ErrNoCopy = errors.New("fallback: no fresh copy")

// Func is a fallback: the interceptors call it for a method that has one when
// a call failed in a way the downstream is to blame for (see the package
// documentation for the failure classes), once per call, on the caller's
// goroutine, before the call returns. Streams never use a Func.
//
// ctx is the caller's context; method is the full method name
// ("/pkg.Service/Method"); req is the request as the caller passed it and
// reply the reply it passed to fill; err is the error the caller would
// otherwise get. Neither req nor reply may be kept after Func returns.
//
// To answer, Func fills reply and returns a nil error, with an [Info] that
// says what kind of answer it is (Stale and Age for a stored copy; Used is
// set by the interceptors). The caller then gets reply and a nil error. Not
// to answer, Func returns a non-nil error, which should wrap err so that its
// gRPC status code and errors.Is still see the original failure; the caller
// gets that error, and the Info is ignored. Func must leave reply as it was
// when it does not answer.
type Func func(ctx context.Context, method string, req, reply any, err error) (Info, error)

// SaveFunc is told about the reply of every successful call of a method that
// has a fallback, so that it can keep what a [Func] serves later. The
// interceptors call it once per call (for a hedged call, with the winner's
// reply only), on the caller's goroutine, after the reply arrived and before
// the call returns. It must copy what it keeps and may not keep req or reply;
// it cannot fail the call.
type SaveFunc func(method string, req, reply any)

// Info tells a caller whether its call was answered by a fallback. The
// interceptors give every call of a method with a fallback one, through a
// per-call output, and record the same facts on the call's span and metrics:
// a fallback answer is never silent.
type Info struct {
	// Used reports that the reply came from a fallback, not from the
	// downstream.
	Used bool
	// Stale reports that the reply is a stored copy of an earlier reply
	// (Used is true too).
	Stale bool
	// Age is how old the stored copy was when it was served; zero unless
	// Stale.
	Age time.Duration
}

// Fallback returns a [Func] that answers a failed call with the newest copy
// the Store keeps for its method and request, if that copy is no older than
// MaxAge, reporting Info{Used: true, Stale: true, Age: age}. Without one it
// returns an error wrapping both the call's error and [ErrNoCopy]; with a
// req or reply that is not a proto.Message, one wrapping the call's error
// and [ErrInvalidArgument].
func (s *Store) Fallback() Func {
	return func(_ context.Context, method string, req, reply any, err error) (Info, error) {
		rq, ok1 := req.(proto.Message)
		rp, ok2 := reply.(proto.Message)
		if !ok1 || !ok2 {
			return Info{}, wrap(err, fmt.Errorf("%w: req (%T) and reply (%T) must be proto.Message", ErrInvalidArgument, req, reply))
		}
		age, ok, lerr := s.Load(method, rq, rp)
		switch {
		case lerr != nil:
			return Info{}, wrap(err, lerr)
		case !ok:
			return Info{}, wrap(err, ErrNoCopy)
		}
		return Info{Used: true, Stale: true, Age: age}, nil
	}
}

// Saver returns a [SaveFunc] that saves each reply with [Store.Save].
// Replies it cannot keep (too large, not a proto.Message, not encodable) are
// skipped: keeping a copy never fails a call.
func (s *Store) Saver() SaveFunc {
	return func(method string, req, reply any) {
		rq, ok1 := req.(proto.Message)
		rp, ok2 := reply.(proto.Message)
		if ok1 && ok2 {
			_ = s.Save(method, rq, rp)
		}
	}
}

// wrap returns an error that matches both orig and why, and reads as orig
// followed by why in parentheses.
func wrap(orig, why error) error {
	if orig == nil {
		return why
	}
	return fmt.Errorf("%w (%w)", orig, why)
}

// Handler is a method's fallback as the interceptors take it
// (interceptors.Fallback): the Func that answers, the SaveFunc that keeps
// successful replies, and how early before the deadline to answer.
type Handler struct {
	// Answer answers a failed call; it is required.
	Answer Func
	// Save, if set, is told about the reply of every successful call.
	Save SaveFunc
	// Margin is how long before the call's deadline the fallback answers
	// a call that is still waiting for the downstream (a hung or slow
	// server), cancelling its attempt, so that the caller gets its answer
	// in time. Zero means 10 % of the time the call had left when it
	// started; negative values are invalid.
	Margin time.Duration
}

// Validate reports what is wrong with h, naming the field.
func (h Handler) Validate() error {
	var errs []error
	if h.Answer == nil {
		errs = append(errs, fmt.Errorf("%w: Answer is nil", ErrInvalidConfig))
	}
	if h.Margin < 0 {
		errs = append(errs, fmt.Errorf("%w: Margin must be >= 0 (0 means 10 %% of the time left), got %v", ErrInvalidConfig, h.Margin))
	}
	return errors.Join(errs...)
}

// Handler returns the Handler that answers from s and saves every
// successful reply into it.
func (s *Store) Handler() Handler { return Handler{Answer: s.Fallback(), Save: s.Saver()} }
