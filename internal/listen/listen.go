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
