// Percall: override the Middleware's policy for one call with PolicyOptions
// passed beside the call's other grpc.CallOptions, and learn how many
// attempts a call took.
//
//	go -C examples run ./percall
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

	"github.com/grpc-resilience/resilience/backoff"
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

	// Defaults (3 attempts, ...) except for a breaker that opens after 7
	// failed attempts in a row (default 25), to show NoBreaker below.
	m, err := interceptors.New(interceptors.WithBreaker(breaker.Config{ConsecutiveFailures: 7}))
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
	req := &testingv1.EchoRequest{Message: "hi"}

	// call makes one Echo call with opts and prints its outcome: the code,
	// the attempts (Attempts) and, on failure, what the *Error says.
	call := func(what string, opts ...grpc.CallOption) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var attempts int
		_, err := client.Echo(ctx, req, append(opts, interceptors.Attempts(&attempts))...)
		fmt.Fprintf(w, "%-47s %-16s attempts %d", what, status.Code(err), attempts)
		var ie *interceptors.Error
		if errors.As(err, &ie) && ie.Reason != nil {
			fmt.Fprintf(w, ", reason: %v", ie.Reason)
		}
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Fprint(w, ", refused by the open breaker")
		}
		fmt.Fprintln(w)
	}
	const echo = testingv1.EchoService_Echo_FullMethodName
	unavailable := resiliencetest.Fail(codes.Unavailable)
	// inject queues a fault for the next n Echo attempts.
	inject := func(n int, f resiliencetest.Fault) {
		if err == nil {
			err = faults.InjectNext(echo, n, f)
		}
	}

	// 1. More attempts than the default for one important call.
	inject(3, unavailable)
	call("server fails 3x, default (3 attempts)")
	inject(3, unavailable)
	call("server fails 3x, MaxAttempts(5)", interceptors.MaxAttempts(5))

	// 2. No retry for a call that must not be repeated.
	inject(1, unavailable)
	call("server fails 1x, MaxAttempts(1)", interceptors.MaxAttempts(1))

	// 3. Bound each attempt: the first one hangs, the second answers.
	inject(1, resiliencetest.Hang())
	call("1st attempt hangs, PerAttemptTimeout(50ms)", interceptors.PerAttemptTimeout(50*time.Millisecond))

	// 4. Or race a second attempt against a slow first one.
	inject(1, resiliencetest.Hang())
	start := time.Now()
	call("1st attempt hangs, Hedging(20ms)", interceptors.Hedging(interceptors.HedgePolicy{
		Delay: 20 * time.Millisecond, MaxAttempts: 2,
	}))
	if time.Since(start) > time.Second {
		return fmt.Errorf("the hedged call took %v", time.Since(start))
	}

	// 5. A breaker opened by failures refuses calls at once; a call that
	// must go through anyway (a health check, say) passes NoBreaker.
	inject(7, unavailable)
	call("server fails 7x, 7 attempts 10ms apart", interceptors.MaxAttempts(7),
		interceptors.Backoff(backoff.Constant(10*time.Millisecond)))
	call("next call: the breaker is open")
	call("next call, NoBreaker()", interceptors.NoBreaker())
	return err // from inject
}
