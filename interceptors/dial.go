package interceptors

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// NewClientReady creates a client for target with grpc.NewClient and waits
// until its connection is Ready, for at most as long as ctx allows. Give ctx
// a deadline: the wait ends only when the connection is Ready or ctx is done.
//
// On failure the client is closed and the error names the target, the last
// connectivity state and the last connection error seen (for example
// "connect: connection refused"), and wraps ctx's error.
//
// To learn the connection error it dials TCP (and unix: addresses) itself
// through a net.Dialer; a grpc.WithContextDialer in opts takes precedence,
// in which case the error reports the state only. HTTP CONNECT proxies from
// the environment are not used by that dialer; pass your own dialer if you
// need them.
func NewClientReady(ctx context.Context, target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	d := &recordingDialer{}
	all := make([]grpc.DialOption, 0, len(opts)+1)
	all = append(all, grpc.WithContextDialer(d.dial))
	all = append(all, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("interceptors: client for %q: %w", target, err)
	}
	conn.Connect()
	for {
		s := conn.GetState()
		if s == connectivity.Ready {
			return conn, nil
		}
		if s == connectivity.Shutdown {
			return nil, fmt.Errorf("interceptors: client for %q shut down while connecting", target)
		}
		if s == connectivity.Idle {
			conn.Connect()
		}
		if !conn.WaitForStateChange(ctx, s) {
			last := conn.GetState()
			_ = conn.Close()
			if dialErr := d.lastError(); dialErr != nil {
				return nil, fmt.Errorf("interceptors: %q not ready (state %v): %w; last connection error: %v", target, last, ctx.Err(), dialErr)
			}
			return nil, fmt.Errorf("interceptors: %q not ready (state %v): %w", target, last, ctx.Err())
		}
	}
}

// recordingDialer dials like grpc-go's default dialer and remembers the
// last error.
type recordingDialer struct {
	mu  sync.Mutex
	err error
}

func (d *recordingDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	network := "tcp"
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", rest
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	return conn, err
}

func (d *recordingDialer) lastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}
