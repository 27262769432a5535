package scenario

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// payloadSize is the size of the request and response payloads.
const payloadSize = 32

// newRequest returns the request every call sends: a small payload each
// way and no requested status (the fault interceptor sets one when it
// injects a failure).
func newRequest() *testpb.SimpleRequest {
	return &testpb.SimpleRequest{
		ResponseSize: payloadSize,
		Payload:      &testpb.Payload{Body: make([]byte, payloadSize)},
	}
}

// client is one stack's connection to one server.
type client struct {
	conn     *grpc.ClientConn
	svc      testgrpc.TestServiceClient
	attempts *attemptCounter // nil unless counting
	release  func()
}

// dial connects stack to srv. With count, a stats handler counts every
// attempt the client starts (grpc-go fires stats.Begin per attempt,
// including its own retries and attempts that find no connection).
func dial(srv *faultserver.Server, stack stacks.Stack, p stacks.Policy, count bool) (*client, error) {
	opts, release, err := stack.Build(p)
	if err != nil {
		return nil, err
	}
	all := append(srv.DialOptions(), opts...)
	c := &client{release: release}
	if count {
		c.attempts = &attemptCounter{}
		all = append(all, grpc.WithStatsHandler(c.attempts))
	}
	conn, err := grpc.NewClient(srv.Target(), all...)
	if err != nil {
		release()
		return nil, fmt.Errorf("stack %s: %w", stack.Name, err)
	}
	c.conn, c.svc = conn, testgrpc.NewTestServiceClient(conn)
	return c, nil
}

func (c *client) close() {
	_ = c.conn.Close()
	c.release()
}

func (c *client) call(ctx context.Context, req *testpb.SimpleRequest) error {
	_, err := c.svc.UnaryCall(ctx, req)
	return err
}

// warmup makes n sequential calls that must all succeed.
func (c *client) warmup(n int, req *testpb.SimpleRequest) error {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), defaultWarmupTimeout)
		err := c.call(ctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up call %d: %w", i+1, err)
		}
	}
	return nil
}

// attemptCounter counts client attempts.
type attemptCounter struct{ n atomic.Int64 }

func (a *attemptCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (a *attemptCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if b, ok := s.(*stats.Begin); ok && b.Client {
		a.n.Add(1)
	}
}

func (a *attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (a *attemptCounter) HandleConn(context.Context, stats.ConnStats) {}

func (a *attemptCounter) load() int64 { return a.n.Load() }
