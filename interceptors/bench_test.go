package interceptors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/endpoint"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// BenchmarkUnary compares a happy-path unary call over bufconn through the
// bare client with the same call through the interceptors, in one run:
//
//	go test -run '^$' -bench BenchmarkUnary -benchmem -count 10 ./interceptors/ | tee new.txt
//	benchstat -col /client new.txt
//
// "deadline" calls carry a caller deadline (the common production case);
// "nodeadline" calls let the interceptor add its default call deadline,
// which also puts a grpc-timeout header on the wire.
func BenchmarkUnary(b *testing.B) {
	for _, dl := range []string{"deadline", "nodeadline"} {
		for _, client := range []string{"bare", "resilience", "no-breaker-no-budget"} {
			b.Run("ctx="+dl+"/client="+client, func(b *testing.B) {
				h := benchHarness(b, client)
				ctx := context.Background()
				if dl == "deadline" {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 1<<40)
					defer cancel()
				}
				req := &testingv1.EchoRequest{Message: "hi"}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := h.client.Echo(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUnaryInterceptorOverhead measures the interceptor alone, with
// an invoker that returns at once: the time and allocations it adds to
// every successful call, free of network noise.
func BenchmarkUnaryInterceptorOverhead(b *testing.B) {
	conn, err := grpc.NewClient("passthrough:///overhead", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
	defer cancel()
	for _, name := range []string{"defaults", "no-breaker-no-budget", "no-limiter", "bare-engine", "endpoint-ejection"} {
		b.Run(name, func(b *testing.B) {
			opts := []Option{}
			switch name {
			case "no-breaker-no-budget":
				opts = append(opts, WithoutBreaker(), WithoutRetryBudget())
			case "no-limiter":
				opts = append(opts, WithoutConcurrencyLimit())
			case "bare-engine":
				opts = append(opts, WithoutBreaker(), WithoutRetryBudget(), WithoutConcurrencyLimit())
			case "endpoint-ejection":
				opts = append(opts, WithEndpointEjection(endpoint.Config{}))
			}
			ui := MustNew(opts...).UnaryClientInterceptor()
			b.ReportAllocs()
			for b.Loop() {
				if err := ui(ctx, echoMethod, nil, nil, conn, invoker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMethodPolicies measures a call's policy resolution with 0 and
// with 50 method policies (none of which match): the policy of a method is
// resolved once, so the two should be within noise of each other.
//
//	go test -run '^$' -bench BenchmarkMethodPolicies -benchmem -cpu 1 -count 10 ./interceptors/ | tee mp.txt
//	benchstat -col /policies mp.txt
func BenchmarkMethodPolicies(b *testing.B) {
	conn, err := grpc.NewClient("passthrough:///overhead", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
	defer cancel()
	for _, n := range []int{0, 50} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			opts := []Option{WithoutBreaker(), WithoutRetryBudget()}
			for i := range n {
				opts = append(opts, WithMethodPolicy(MatchMethods(fmt.Sprintf("/pkg.Svc/M%d", i)), MaxAttempts(2)),
					WithMethodPolicy(MatchMethodPrefix(fmt.Sprintf("Get%d", i)), PerAttemptTimeout(time.Second)))
			}
			opts = opts[:2+n] // n policies in all
			ui := MustNew(opts...).UnaryClientInterceptor()
			b.ReportAllocs()
			for b.Loop() {
				if err := ui(ctx, echoMethod, nil, nil, conn, invoker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
