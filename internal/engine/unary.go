package engine

import (
	"context"

	oc "github.com/grpc-resilience/resilience/internal/outcome"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// unaryCall adds to a call what the unary driver needs per attempt: the
// attempt's trailer (for server pushback) and room for the attempt's call
// options, so that neither costs an allocation of its own.
type unaryCall struct {
	call
	req, reply any
	cur        attempt // the attempt this goroutine runs
	trailer    metadata.MD
	optsBuf    [4]grpc.CallOption
}

// Unary runs a unary call. The policy settings among opts (see Setting)
// and grpc.OnFinish act on the call; the other options go to every
// attempt.
func (e *Engine) Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	u := &unaryCall{req: req, reply: reply}
	u.unary = u
	opts, cancel, err := e.init(&u.call, ctx, method, cc, opts)
	if err != nil {
		return err
	}
	defer cancel()
	if u.p.Hedge != nil {
		if _, ok := reply.(proto.Message); ok {
			return u.hedged(invoker, opts)
		}
		// No way to give a hedge a reply of its own: retry only.
		u.p.Hedge = nil
	}
	for {
		a := &u.cur
		if stop := u.nextAttempt(a, false); stop != nil {
			return u.finish(*stop)
		}
		err = invoker(a.ctx, method, req, reply, cc, u.attemptOpts(u.g.target.wantsTrailer(a.n), opts)...)
		d := u.decide(event{outcome: u.endAttempt(a, err, u.trailer)}, 0, false)
		if d.op == opStop {
			return u.finish(d)
		}
		if err := u.sleep(u.ctx, d.delay); err != nil {
			return u.finish(waitStop(err))
		}
	}
}

// waitStop is the decision that ends a call whose wait before its next
// attempt (sleep's, a *waitEnded) the caller's context or the connection
// cut short.
func waitStop(err error) decision {
	return decision{op: opStop, err: err, kind: oc.CallerGone}
}

// attemptOpts returns the call options of an attempt: opts, and the
// trailer option when the attempt reads server pushback.
func (u *unaryCall) attemptOpts(trailer bool, opts []grpc.CallOption) []grpc.CallOption {
	u.trailer = nil
	if !trailer {
		return opts
	}
	return append(append(u.optsBuf[:0], opts...), grpc.Trailer(&u.trailer))
}
