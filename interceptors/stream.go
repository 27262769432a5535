package interceptors

import (
	"context"

	"google.golang.org/grpc"
)

// StreamClientInterceptor returns m's stream interceptor.
func (m *Middleware) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return m.stream
}

func (m *Middleware) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	_, opts = m.resolve(method, opts)
	return streamer(ctx, desc, cc, method, opts...)
}
