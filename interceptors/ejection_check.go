package interceptors

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/endpoint"
	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// ejectionCheck finds the connections on which endpoint ejection is on
// (WithEndpointEjection) but does not apply: a service config of the
// channel's own (from the resolver, or a grpc.WithDefaultServiceConfig
// after DialOptions) picked another load-balancing policy, which never
// records an attempt's pick in the call record. A successful attempt whose
// call record is empty went through such a policy; it is reported through
// telemetry.PolicyIgnored (a Warn log record once per method and target,
// and the policy ignored counter).
//
// Checking costs an allocation, so not every call is checked: the calls of
// a connection until one succeeds (it shows whether the policy is at
// work), and after that one call in checkEvery, so that a service config
// that changes later is still found; the counter counts the calls checked
// and found without the policy.
type ejectionCheck struct {
	conns   sync.Map     // *grpc.ClientConn -> *connCheck
	tracked atomic.Int64 // entries in conns, which are never deleted
}

// checkEvery is how often, in calls, a connection on which the policy was
// seen at work is checked again.
const checkEvery = 256

// maxCheckedConns bounds the connections tracked; calls on others are
// checked every time (correct, only slower).
const maxCheckedConns = 1024

type connCheck struct {
	calls  atomic.Uint64
	judged atomic.Bool // a successful call on the connection was checked
}

// due reports whether the next call on cc is to be checked, and the state
// to report to.
func (e *ejectionCheck) due(cc *grpc.ClientConn) (*connCheck, bool) {
	if cc == nil {
		return nil, false
	}
	v, ok := e.conns.Load(cc)
	if !ok {
		if e.tracked.Load() >= maxCheckedConns {
			return &connCheck{}, true
		}
		if v, ok = e.conns.LoadOrStore(cc, &connCheck{}); !ok {
			e.tracked.Add(1)
		}
	}
	c := v.(*connCheck)
	n := c.calls.Add(1)
	return c, !c.judged.Load() || n%checkEvery == 0
}

// seen reports what a successful attempt's call record shows.
func (c *connCheck) seen(m *Middleware, ctx context.Context, cc *grpc.ClientConn, method string) {
	c.judged.Store(true)
	if len(endpoint.Attempts(ctx)) == 0 {
		m.tel.PolicyIgnored(method, cc.Target(), telemetry.IgnoredEndpointEjection)
	}
}

func (e *ejectionCheck) unary(m *Middleware, cc *grpc.ClientConn, method string, invoker grpc.UnaryInvoker) grpc.UnaryInvoker {
	c, ok := e.due(cc)
	if !ok {
		return invoker
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			c.seen(m, ctx, cc, method)
		}
		return err
	}
}

func (e *ejectionCheck) stream(m *Middleware, cc *grpc.ClientConn, method string, streamer grpc.Streamer) grpc.Streamer {
	c, ok := e.due(cc)
	if !ok {
		return streamer
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err == nil {
			c.seen(m, ctx, cc, method)
		}
		return s, err
	}
}
