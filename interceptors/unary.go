package interceptors

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// UnaryClientInterceptor returns m's unary interceptor. It runs the attempt
// loop described in the package documentation.
func (m *Middleware) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return m.unary
}

// unaryCall adds to a call what the unary loop needs per attempt: the
// attempt's trailer (for server pushback) and room for the attempt's call
// options, so that neither costs an allocation of its own.
type unaryCall struct {
	call
	trailer    metadata.MD
	trailerOpt grpc.TrailerCallOption
	optsBuf    [8]grpc.CallOption
}

func (m *Middleware) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	u := &unaryCall{}
	opts, cancel, err := m.initCall(&u.call, ctx, method, cc, opts)
	if err != nil {
		return err
	}
	defer cancel()
	if u.p.hedge != nil {
		return m.hedged(u, method, req, reply, cc, invoker, opts)
	}
	u.trailerOpt.TrailerAddr = &u.trailer
	for {
		a, err := u.startAttempt()
		if err != nil {
			return u.fail(err)
		}
		aopts := opts
		if u.ts.wantsTrailer(a.n) {
			aopts = append(append(u.optsBuf[:0], opts...), &u.trailerOpt)
		}
		u.trailer = nil
		err = invoker(a.ctx, method, req, reply, cc, aopts...)
		if err = u.endAttempt(&a, err, u.trailer); err == nil {
			u.succeed()
			return nil
		}
		if stop := u.waitForRetry(err); stop != nil {
			return u.fail(stop)
		}
	}
}
