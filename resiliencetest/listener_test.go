package resiliencetest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func rawDial(t *testing.T, l *resiliencetest.Listener) (net.Conn, error) {
	t.Helper()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", l.Addr().String())
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// readOutcome reads from c until it fails, within 200ms.
func readOutcome(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestListenIsOnLoopback(t *testing.T) {
	s := serve(t, nil, nil)
	addr := s.lis.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Errorf("Addr = %v, want 127.0.0.1 with a port", addr)
	}
	if m := s.lis.Mode(); m != resiliencetest.Serve {
		t.Errorf("Mode = %v, want Serve", m)
	}
}

func TestStopRefusesAndFailsRunningCalls(t *testing.T) {
	rec := &recorder{arrived: make(chan string, 1)}
	s := serve(t, nil, rec)
	c := s.client(t)
	must(t, s.faults.InjectNext(echo, 1, resiliencetest.Hang()))
	done := asyncEcho(callCtx(t), c)
	<-rec.arrived

	s.lis.Stop()
	if code := <-done; code != codes.Unavailable {
		t.Errorf("call running at Stop: %v, want Unavailable", code)
	}
	if _, err := rawDial(t, s.lis); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial while stopped: %v, want connection refused", err)
	}
	if m := s.lis.Mode(); m != resiliencetest.Refuse {
		t.Errorf("Mode after Stop = %v, want Refuse", m)
	}
}

func TestRestartKeepsThePort(t *testing.T) {
	rec := &recorder{arrived: make(chan string, 1)}
	s := serve(t, nil, rec)
	conn, err := grpc.NewClient("passthrough:///"+s.lis.Addr().String(), dialInsecure()...)
	must(t, err)
	defer conn.Close()
	c := echoClient(conn)
	ctx := callCtx(t)
	if code := echoCode(ctx, c); code != codes.OK {
		t.Fatalf("before the restart: %v", code)
	}
	<-rec.arrived
	before := s.lis.Addr().String()

	s.lis.Stop()
	if code := echoCode(ctx, c); code != codes.Unavailable {
		t.Errorf("while stopped: %v, want Unavailable", code)
	}
	must(t, s.lis.Restart())
	if after := s.lis.Addr().String(); after != before {
		t.Errorf("Addr after Restart = %s, want %s", after, before)
	}
	if _, err := rawDial(t, s.lis); err != nil {
		t.Errorf("dial %s after Restart: %v", before, err)
	}
	// The same client finds the same server on the same port (skipping
	// grpc-go's reconnect backoff, which is not the subject here).
	conn.ResetConnectBackoff()
	if code := echoCode(ctx, c, grpc.WaitForReady(true)); code != codes.OK {
		t.Errorf("after Restart: %v, want OK", code)
	}
	if n := s.faults.Attempts(echo); n != 2 {
		t.Errorf("the server counted %d attempts, want 2 (before and after the restart)", n)
	}
	// Restart while serving works too, and keeps the port.
	must(t, s.lis.Restart())
	if _, err := rawDial(t, s.lis); err != nil {
		t.Errorf("dial after a second Restart: %v", err)
	}
}

func TestRefuseGivesUnavailable(t *testing.T) {
	s := serve(t, nil, nil)
	must(t, s.lis.SetMode(resiliencetest.Refuse))
	if _, err := rawDial(t, s.lis); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial in Refuse mode: %v, want connection refused", err)
	}
	_, err := s.client(t).Echo(callCtx(t), nil)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("call in Refuse mode: %v, want Unavailable: connection refused", err)
	}
	must(t, s.lis.SetMode(resiliencetest.Serve))
	if code := echoCode(callCtx(t), s.client(t)); code != codes.OK {
		t.Errorf("back to Serve, a new client: %v, want OK", code)
	}
}

func TestAcceptAndCloseGivesUnavailable(t *testing.T) {
	s := serve(t, nil, nil)
	must(t, s.lis.SetMode(resiliencetest.AcceptAndClose))
	c, err := rawDial(t, s.lis)
	if err != nil {
		t.Fatalf("dial in AcceptAndClose mode: %v, want a connection", err)
	}
	if err := readOutcome(c); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read in AcceptAndClose mode: %v, want EOF (closed at once)", err)
	}
	if code := echoCode(callCtx(t), s.client(t)); code != codes.Unavailable {
		t.Errorf("call in AcceptAndClose mode: %v, want Unavailable", code)
	}
	if n := s.faults.Attempts(resiliencetest.AllMethods); n != 0 {
		t.Errorf("%d attempts reached the server", n)
	}
}

func TestBlackholeNeverAnswers(t *testing.T) {
	s := serve(t, nil, nil)
	must(t, s.lis.SetMode(resiliencetest.Blackhole))
	c, err := rawDial(t, s.lis)
	if err != nil {
		t.Fatalf("dial in Blackhole mode: %v, want a connection", err)
	}
	if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := readOutcome(c); !isTimeout(err) {
		t.Errorf("read in Blackhole mode: %v, want a timeout (no answer, not closed)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if code := echoCode(ctx, s.client(t)); code != codes.DeadlineExceeded {
		t.Errorf("call in Blackhole mode: %v, want DeadlineExceeded (the client's deadline)", code)
	}
	if n := s.faults.Attempts(resiliencetest.AllMethods); n != 0 {
		t.Errorf("%d attempts reached the server", n)
	}
	// Stop closes the blackholed connections too.
	s.lis.Stop()
	if err := readOutcome(c); isTimeout(err) || err == nil {
		t.Errorf("read after Stop: %v, want the connection closed", err)
	}
}

func TestModeChangesKeepConnections(t *testing.T) {
	s := serve(t, nil, nil)
	c := s.client(t)
	ctx := callCtx(t)
	if code := echoCode(ctx, c); code != codes.OK {
		t.Fatal(code)
	}
	must(t, s.lis.SetMode(resiliencetest.Blackhole))
	if code := echoCode(ctx, c); code != codes.OK {
		t.Errorf("an established connection after SetMode(Blackhole): %v, want OK", code)
	}
}

func TestListenerClose(t *testing.T) {
	lis, err := resiliencetest.Listen()
	must(t, err)
	accepted := make(chan error, 1)
	go func() {
		_, err := lis.Accept()
		accepted <- err
	}()
	lis.Stop() // Accept waits while stopped...
	must(t, lis.Close())
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	must(t, lis.Close())
	if err := lis.Restart(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Restart after Close: %v, want net.ErrClosed", err)
	}
	if err := lis.SetMode(resiliencetest.Serve); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetMode after Close: %v, want net.ErrClosed", err)
	}
}

func TestListenMemoryAddresses(t *testing.T) {
	a, b := resiliencetest.ListenMemory(), resiliencetest.ListenMemory()
	defer a.Close()
	defer b.Close()
	if a.Addr().Network() != "memory" || a.Addr().String() == b.Addr().String() {
		t.Errorf("addresses %s/%s and %s/%s, want network memory and one name each",
			a.Addr().Network(), a.Addr(), b.Addr().Network(), b.Addr())
	}
	if want := "passthrough:///" + a.Addr().String(); a.Target() != want {
		t.Errorf("Target = %q, want %q", a.Target(), want)
	}
	tcp, err := resiliencetest.Listen()
	must(t, err)
	defer tcp.Close()
	if want := "passthrough:///" + tcp.Addr().String(); tcp.Target() != want {
		t.Errorf("TCP Target = %q, want %q", tcp.Target(), want)
	}
}

// An in-memory Listener stops, restarts and switches modes as a TCP one
// does, inside a testing/synctest bubble, where durations are exact.
func TestListenMemoryInABubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := s.client(t)
		if code := echoCode(callCtx(t), c); code != codes.OK {
			t.Fatalf("serving: %v", code)
		}

		// Stop fails the running call and refuses new connections.
		must(t, s.faults.InjectNext(echo, 1, resiliencetest.Hang()))
		done := asyncEcho(callCtx(t), c)
		must(t, s.faults.WaitAttempts(callCtx(t), echo, 2))
		s.lis.Stop()
		if code := <-done; code != codes.Unavailable {
			t.Errorf("call running at Stop: %v, want Unavailable", code)
		}
		if _, err := s.lis.DialContext(t.Context(), ""); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial while stopped: %v, want connection refused", err)
		}
		if _, err := s.client(t).Echo(callCtx(t), &testingv1.EchoRequest{}); status.Code(err) != codes.Unavailable ||
			!strings.Contains(err.Error(), "connection refused") {
			t.Errorf("call while stopped: %v, want Unavailable: connection refused", err)
		}

		// Restart: the same client finds the server again; its reconnect
		// backoff passes in fake time.
		must(t, s.lis.Restart())
		if code := echoCode(callCtx(t), c, grpc.WaitForReady(true)); code != codes.OK {
			t.Errorf("after Restart: %v, want OK", code)
		}

		must(t, s.lis.SetMode(resiliencetest.AcceptAndClose))
		if code := echoCode(callCtx(t), s.client(t)); code != codes.Unavailable {
			t.Errorf("AcceptAndClose: %v, want Unavailable", code)
		}
		must(t, s.lis.SetMode(resiliencetest.Blackhole))
		before := s.faults.Attempts(resiliencetest.AllMethods)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if code := echoCode(ctx, s.client(t)); code != codes.DeadlineExceeded || time.Since(start) != 200*time.Millisecond {
			t.Errorf("Blackhole: %v after %v, want DeadlineExceeded after exactly the 200ms deadline", code, time.Since(start))
		}
		if n := s.faults.Attempts(resiliencetest.AllMethods); n != before {
			t.Errorf("%d attempts reached the server through a blackhole", n-before)
		}
		if code := echoCode(callCtx(t), c); code != codes.OK {
			t.Errorf("an established connection in Blackhole mode: %v, want OK", code)
		}

		must(t, s.lis.Close())
		if _, err := s.lis.DialContext(t.Context(), ""); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after Close: %v, want connection refused", err)
		}
		if _, err := s.lis.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	})
}
