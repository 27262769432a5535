package main

import (
	"context"
	"time"

	"google.golang.org/grpc"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// server is one client's EchoService: a plain grpc.Server with the fault
// interceptors of resiliencetest, on a resiliencetest.Listener that the
// restart phase stops and restarts on the same port.
type server struct {
	faults *resiliencetest.Faults
	lis    *resiliencetest.Listener
	gs     *grpc.Server
	done   chan struct{} // closed when gs.Serve has returned
}

// newServer starts c's server. Every attempt that reaches it is counted
// for c, in the phase it arrives in, before any fault applies.
func (d *demo) newServer(c *client, tel *telemetry) (*server, error) {
	faults, err := resiliencetest.NewFaults(resiliencetest.WithSeed(d.cfg.Seed))
	if err != nil {
		return nil, err
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		return nil, err
	}
	count := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c.phases[d.phaseOf(time.Now())].attempts.Add(1)
		c.attempts.Add(1)
		return handler(ctx, req)
	}
	opts := append(tel.serverOptions(), grpc.ChainUnaryInterceptor(count))
	opts = append(opts, faults.ServerOptions()...)
	// Stop waits for running handlers, so that close leaves nothing behind.
	opts = append(opts, grpc.WaitForHandlers(true))
	s := &server{faults: faults, lis: lis, gs: grpc.NewServer(opts...), done: make(chan struct{})}
	testingv1.RegisterEchoServiceServer(s.gs, resiliencetest.EchoServer{})
	go func() {
		defer close(s.done)
		_ = s.gs.Serve(lis)
	}()
	return s, nil
}

// addr is the server's address, the same across restarts.
func (s *server) addr() string { return s.lis.Addr().String() }

// close stops the server for good and waits for its goroutines.
func (s *server) close() {
	s.gs.Stop()
	<-s.done
}
