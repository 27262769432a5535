package resiliencetest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc/test/bufconn"

	"github.com/grpc-resilience/resilience/internal/listen"
)

// memoryBufSize is the buffer of each direction of an in-memory connection.
const memoryBufSize = 1 << 20

// memoryListeners numbers the in-memory Listeners, so that each has an
// address of its own.
var memoryListeners atomic.Uint64

// ListenerMode is what a Listener does with connections.
type ListenerMode int

const (
	// Serve accepts connections and hands them to the server: the default.
	Serve ListenerMode = iota
	// Refuse closes the port: connecting fails with "connection refused"
	// (an error wrapping syscall.ECONNREFUSED, in memory too).
	Refuse
	// AcceptAndClose accepts every connection and closes it at once, as a
	// process that crashes on each connection, or a proxy without a
	// backend, does.
	AcceptAndClose
	// Blackhole accepts every connection and never reads from it, writes to
	// it or closes it: the client's handshake and calls hang until their
	// deadlines, as against a hung server.
	Blackhole
)

// String returns the mode's name.
func (m ListenerMode) String() string {
	switch m {
	case Serve:
		return "Serve"
	case Refuse:
		return "Refuse"
	case AcceptAndClose:
		return "AcceptAndClose"
	case Blackhole:
		return "Blackhole"
	}
	return fmt.Sprintf("ListenerMode(%d)", int(m))
}

// Listener is a net.Listener for a grpc.Server (pass it to Serve) that a
// test can stop and restart on the same address, or switch to refusing,
// accepting and closing, or blackholing connections, at any time while the
// server runs. The server never notices: its Accept blocks while the
// address is closed.
//
// Listen creates one on a loopback TCP port; ListenMemory one whose
// connections stay in memory, for tests in a testing/synctest bubble, where
// real sockets do not work. Clients reach either with
// grpc.NewClient(l.Target(), grpc.WithContextDialer(l.DialContext), …).
// Every method is safe for concurrent use.
type Listener struct {
	addr   net.Addr // fixed for the Listener's life
	memory bool     // in memory (bufconn), not TCP

	mu      sync.Mutex // guards the fields below
	mode    ListenerMode
	inner   net.Listener      // the bound socket or bufconn; nil while closed
	conns   map[net.Conn]bool // every connection accepted and not yet closed
	changed chan struct{}     // closed and replaced when inner or closed change
	closed  bool
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a Listener in Serve mode on 127.0.0.1 with a port chosen
// by the kernel. Its Addr is a *net.TCPAddr.
func Listen() (*Listener, error) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return newListener(inner.Addr(), inner, false), nil
}

// ListenMemory returns a Listener in Serve mode whose connections are
// in-memory pipes (google.golang.org/grpc/test/bufconn), reached only
// through DialContext. It behaves as Listen's does, modes and restarts
// included, with no port and no kernel in the way: this is the one to use
// in a testing/synctest bubble, where real sockets do not work. Create it,
// the server and the client inside the bubble; then latency, deadlines and
// backoff pass in fake time, and a test of your own service's client can
// check exact durations without waiting for them. Its Addr has the network
// "memory" and a name of its own, such as "memory-1".
func ListenMemory() *Listener {
	addr := memoryAddr("memory-" + strconv.FormatUint(memoryListeners.Add(1), 10))
	return newListener(addr, bufconn.Listen(memoryBufSize), true)
}

func newListener(addr net.Addr, inner net.Listener, memory bool) *Listener {
	return &Listener{
		addr:    addr,
		memory:  memory,
		inner:   inner,
		conns:   make(map[net.Conn]bool),
		changed: make(chan struct{}),
	}
}

// memoryAddr is the address of an in-memory Listener.
type memoryAddr string

func (a memoryAddr) Network() string { return "memory" }
func (a memoryAddr) String() string  { return string(a) }

// Addr returns the listener's address, the same for its whole life, also
// while the address is closed.
func (l *Listener) Addr() net.Addr { return l.addr }

// Target returns the target to give grpc.NewClient: "passthrough:///"
// followed by Addr, so that the address reaches the dialer as it is.
func (l *Listener) Target() string { return "passthrough:///" + l.addr.String() }

// DialContext connects to the Listener, for grpc.WithContextDialer; the
// address argument is ignored. A TCP Listener is dialled on its port; an
// in-memory one through its current pipe listener. While the address is
// closed (Refuse mode, after Stop or Close) it fails with an error wrapping
// syscall.ECONNREFUSED, as a closed port does.
func (l *Listener) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	if !l.memory {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", l.addr.String())
	}
	l.mu.Lock()
	inner, _ := l.inner.(*bufconn.Listener)
	l.mu.Unlock()
	if inner != nil {
		c, err := inner.DialContext(ctx)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		// Closed while dialling: refused, as below.
	}
	return nil, &net.OpError{Op: "dial", Net: l.addr.Network(), Addr: l.addr, Err: syscall.ECONNREFUSED}
}

// Mode returns the current mode.
func (l *Listener) Mode() ListenerMode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// SetMode switches to mode for the connections that arrive from now on;
// connections accepted earlier are left as they are (Stop closes them).
// Switching to Refuse closes the address; switching from Refuse opens the
// same address again (a TCP port is bound again, retrying for a few seconds
// while it is busy, and SetMode fails if it cannot). It fails after Close,
// and for an unknown mode.
func (l *Listener) SetMode(mode ListenerMode) error {
	if mode < Serve || mode > Blackhole {
		return invalid("Listener.SetMode: mode: unknown %v", mode)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return net.ErrClosed
	}
	if mode == Refuse {
		l.unbindLocked()
	} else if l.inner == nil {
		inner, err := l.rebind()
		if err != nil {
			return err
		}
		l.inner = inner
		l.notifyLocked()
	}
	l.mode = mode
	return nil
}

// Stop stops serving as a process that exits does: it closes the address
// (mode Refuse) and every connection accepted so far, so running calls fail
// and new connections are refused. Restart serves again.
func (l *Listener) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.unbindLocked()
	l.mode = Refuse
	l.closeConnsLocked()
}

// Restart stops, as Stop does, then serves again on the same address, as a
// restarted process does. It fails after Close or if the port cannot be
// bound again.
func (l *Listener) Restart() error {
	l.Stop()
	return l.SetMode(Serve)
}

// Accept waits for a connection to serve and returns it. While the address
// is closed it waits for it to open again; connections arriving in
// AcceptAndClose or Blackhole mode are handled here and never returned.
// After Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		inner, changed, closed := l.inner, l.changed, l.closed
		l.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if inner == nil {
			<-changed
			continue
		}
		c, err := inner.Accept()
		if err != nil {
			l.mu.Lock()
			replaced := l.inner != inner || l.closed
			l.mu.Unlock()
			if replaced {
				continue // closed by Stop, SetMode(Refuse) or Close
			}
			return nil, err
		}
		l.mu.Lock()
		if l.closed || l.inner != inner {
			l.mu.Unlock()
			c.Close()
			continue
		}
		mode := l.mode
		if mode == AcceptAndClose {
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = true
		l.mu.Unlock()
		if mode == Serve {
			return tc, nil
		}
		// Blackhole: kept open, untouched, until Stop or Close.
	}
}

// Close closes the address and every connection the Listener accepted, for
// good: Accept returns net.ErrClosed and DialContext is refused. grpc.Server.Stop calls it. Close is
// idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.unbindLocked()
	l.closed = true
	l.closeConnsLocked()
	l.notifyLocked()
	return nil
}

// unbindLocked closes the address. l.mu must be held.
func (l *Listener) unbindLocked() {
	if l.inner == nil {
		return
	}
	_ = l.inner.Close()
	l.inner = nil
	l.notifyLocked()
}

// closeConnsLocked closes every accepted connection. l.mu must be held.
func (l *Listener) closeConnsLocked() {
	for c := range l.conns {
		_ = c.(*trackedConn).Conn.Close()
	}
	clear(l.conns)
}

func (l *Listener) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// trackedConn removes itself from its Listener when closed.
type trackedConn struct {
	net.Conn
	l *Listener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// rebind opens the address again: a new pipe listener in memory, or the
// same TCP port, retried while it is still busy.
func (l *Listener) rebind() (net.Listener, error) {
	if l.memory {
		return bufconn.Listen(memoryBufSize), nil
	}
	inner, err := listen.Again(l.addr.String())
	if err != nil {
		return nil, fmt.Errorf("resiliencetest: listen again on %s: %w", l.addr, err)
	}
	return inner, nil
}
