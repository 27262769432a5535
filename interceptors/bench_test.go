package interceptors

import (
	"context"
	"testing"

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
		for _, client := range []string{"bare", "resilience"} {
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
