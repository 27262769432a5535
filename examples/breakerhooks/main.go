// Breakerhooks: watch a target's circuit breaker open, refuse calls
// without touching the network, probe and close again, through
// breaker.Config.OnStateChange and Middleware.Breakers.
//
//	go -C examples run ./breakerhooks
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return err
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		return err
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	const openTimeout = 500 * time.Millisecond
	m, err := interceptors.New(
		interceptors.WithBreaker(breaker.Config{
			ConsecutiveFailures: 5,           // default 25
			OpenTimeout:         openTimeout, // default 25ms, growing to 100ms
			HalfOpenProbes:      1,           // default 3
			// Called on every transition, in order, outside the breaker's
			// locks: export a gauge, log, page someone. key is the target
			// (or target and method with WithBreakerPerMethod).
			OnStateChange: func(key string, from, to breaker.State) {
				fmt.Fprintf(w, "  [hook] breaker %v -> %v\n", from, to)
			},
		}),
	)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)

	call := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var attempts int
		before := faults.Attempts(resiliencetest.AllMethods)
		_, err := client.Echo(ctx, &testingv1.EchoRequest{Message: "hi"}, interceptors.Attempts(&attempts))
		fmt.Fprintf(w, "call %d: %v after %d attempt(s), %d reached the server", i, status.Code(err), attempts, faults.Attempts(resiliencetest.AllMethods)-before)
		if errors.Is(err, breaker.ErrOpen) {
			var oe *breaker.OpenError
			errors.As(err, &oe)
			fmt.Fprintf(w, "; refused by the breaker (state %v)", oe.State)
		}
		fmt.Fprintln(w)
	}
	// The breakers are keyed by target; read a state with Breakers().State.
	state := func() breaker.State { return m.Breakers().State(conn.Target()) }

	fmt.Fprintln(w, "the server fails every attempt:")
	if err := faults.InjectFraction(resiliencetest.AllMethods, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		call(i)
	}
	fmt.Fprintf(w, "state: %v\n", state())

	fmt.Fprintln(w, "the server recovers; the breaker stays open for its OpenTimeout:")
	faults.Clear(resiliencetest.AllMethods)
	call(4)
	// After OpenTimeout, the next Allow (or State) moves it to half-open.
	time.Sleep(openTimeout)
	for state() == breaker.StateOpen {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(w, "after the OpenTimeout one probe may pass:")
	call(5)
	call(6)
	fmt.Fprintf(w, "state: %v\n", state())
	return nil
}
