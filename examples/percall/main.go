// Percall: override the Middleware's policy for one call with CallOptions
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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/interceptors"
	"github.com/grpc-resilience/resilience/internal/testserver"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	srv := testserver.New()
	if err := srv.ListenTCP(); err != nil {
		return err
	}
	defer srv.Close()

	// Defaults (3 attempts, ...) except for a breaker that opens after 7
	// failed attempts in a row (default 25), to show CallNoBreaker below.
	m, err := interceptors.New(interceptors.WithBreaker(breaker.Config{ConsecutiveFailures: 7}))
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(srv.Addr(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	req := &testingv1.EchoRequest{Message: "hi"}

	// call makes one Echo call with opts and prints its outcome: the code,
	// the attempts (CallAttempts) and, on failure, what the *Error says.
	call := func(what string, opts ...grpc.CallOption) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var attempts int
		_, err := client.Echo(ctx, req, append(opts, interceptors.CallAttempts(&attempts))...)
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
	unavailable := testserver.Fault{}

	// 1. More attempts than the default for one important call.
	srv.FailNext(3, unavailable)
	call("server fails 3x, default (3 attempts)")
	srv.FailNext(3, unavailable)
	call("server fails 3x, CallMaxAttempts(5)", interceptors.CallMaxAttempts(5))

	// 2. No retry for a call that must not be repeated.
	srv.FailNext(1, unavailable)
	call("server fails 1x, CallNoRetry()", interceptors.CallNoRetry())

	// 3. Bound each attempt: the first one hangs, the second answers.
	srv.Reset() // attempt numbers in the hook count from 1 again
	srv.SetHook(hangFirstAttempt)
	call("1st attempt hangs, CallPerAttemptTimeout(50ms)", interceptors.CallPerAttemptTimeout(50*time.Millisecond))

	// 4. Or race a second attempt against a slow first one.
	srv.Reset()
	start := time.Now()
	call("1st attempt hangs, CallHedging(20ms)", interceptors.CallHedging(interceptors.HedgePolicy{
		Delay: 20 * time.Millisecond, MaxAttempts: 2,
	}))
	if time.Since(start) > time.Second {
		return fmt.Errorf("the hedged call took %v", time.Since(start))
	}
	srv.SetHook(nil)

	// 5. A breaker opened by failures refuses calls at once; a call that
	// must go through anyway (a health check, say) passes CallNoBreaker.
	srv.FailNext(7, unavailable)
	call("server fails 7x, 7 attempts 10ms apart", interceptors.CallMaxAttempts(7),
		interceptors.CallBackoff(backoff.Constant(10*time.Millisecond)))
	call("next call: the breaker is open")
	call("next call, CallNoBreaker()", interceptors.CallNoBreaker())
	return nil
}

// hangFirstAttempt holds the first attempt until its context ends.
func hangFirstAttempt(ctx context.Context, _ string, attempt int64) error {
	if attempt == 1 {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return nil
}
