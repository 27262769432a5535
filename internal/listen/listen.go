// Package listen binds a loopback TCP port again after a restart, for the
// fault-injecting Listener of package resiliencetest.
//
// # Model
//
// A port may be released only a little after the previous socket closed,
// so Again retries a busy port (EADDRINUSE) every 10 ms for up to 5 s; any
// other error is returned at once.
//
// # Concurrency
//
// Again is safe for concurrent use; it keeps no state.
package listen

import (
	"errors"
	"net"
	"syscall"
	"time"
)

const (
	// timeout bounds how long binding the port again is retried.
	timeout = 5 * time.Second
	// interval is the pause between two bind attempts.
	interval = 10 * time.Millisecond
)

// Again listens on addr ("host:port") again, retrying while the port is
// still busy.
func Again(addr string) (net.Listener, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return nil, err
		}
		<-t.C
	}
}
