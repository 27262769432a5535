package interceptors

import (
	"context"

	"google.golang.org/grpc"
)

// UnaryClientInterceptor returns m's unary interceptor. It runs the attempt
// loop described in the package documentation.
func (m *Middleware) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return m.unary
}

func (m *Middleware) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c, opts, cancel, err := m.newCall(ctx, method, cc, opts)
	if err != nil {
		return err
	}
	defer cancel()
	for {
		a, err := c.startAttempt()
		if err != nil {
			return c.fail(err)
		}
		err = invoker(a.ctx, method, req, reply, cc, opts...)
		c.endAttempt(&a, err)
		if err == nil {
			c.succeed()
			return nil
		}
		if stop := c.waitForRetry(err); stop != nil {
			return c.fail(stop)
		}
	}
}
