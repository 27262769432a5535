package resiliencetest

import (
	"fmt"
	"net"
	"sync"

	"github.com/grpc-resilience/resilience/internal/listen"
)

// ListenerMode is what a Listener does with connections.
type ListenerMode int

const (
	// Serve accepts connections and hands them to the server: the default.
	Serve ListenerMode = iota
	// Refuse closes the port: connecting fails with "connection refused".
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

// Listener is a net.Listener on 127.0.0.1 for a grpc.Server (pass it to
// Serve) that a test can stop and restart on the same port, or switch to
// refusing, accepting and closing, or blackholing connections, at any time
// while the server runs. The server never notices: its Accept blocks while
// the port is closed. Create it with Listen; every method is safe for
// concurrent use.
type Listener struct {
	addr *net.TCPAddr // fixed for the Listener's life

	mu      sync.Mutex // guards the fields below
	mode    ListenerMode
	inner   net.Listener      // the bound socket; nil while the port is closed
	conns   map[net.Conn]bool // every connection accepted and not yet closed
	changed chan struct{}     // closed and replaced when inner or closed change
	closed  bool
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a Listener in Serve mode on 127.0.0.1 with a port chosen
// by the kernel.
func Listen() (*Listener, error) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Listener{
		addr:    inner.Addr().(*net.TCPAddr),
		inner:   inner,
		conns:   make(map[net.Conn]bool),
		changed: make(chan struct{}),
	}, nil
}

// Addr returns the listener's address, the same for its whole life, also
// while the port is closed.
func (l *Listener) Addr() net.Addr { return l.addr }

// Mode returns the current mode.
func (l *Listener) Mode() ListenerMode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// SetMode switches to mode for the connections that arrive from now on;
// connections accepted earlier are left as they are (Stop closes them).
// Switching to Refuse closes the port; switching from Refuse binds the same
// port again, retrying for a few seconds while it is busy, and fails if it
// cannot. It fails after Close, and for an unknown mode.
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
		inner, err := rebind(l.addr.String())
		if err != nil {
			return err
		}
		l.inner = inner
		l.notifyLocked()
	}
	l.mode = mode
	return nil
}

// Stop stops serving as a process that exits does: it closes the port
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

// Restart stops, as Stop does, then serves again on the same port, as a
// restarted process does. It fails after Close or if the port cannot be
// bound again.
func (l *Listener) Restart() error {
	l.Stop()
	return l.SetMode(Serve)
}

// Accept waits for a connection to serve and returns it. While the port is
// closed it waits for it to open again; connections arriving in
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

// Close closes the port and every connection the Listener accepted, for
// good: Accept returns net.ErrClosed. grpc.Server.Stop calls it. Close is
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

// unbindLocked closes the port. l.mu must be held.
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

// rebind listens on addr again, retrying while the port is still busy.
func rebind(addr string) (net.Listener, error) {
	l, err := listen.Again(addr)
	if err != nil {
		return nil, fmt.Errorf("resiliencetest: listen again on %s: %w", addr, err)
	}
	return l, nil
}
