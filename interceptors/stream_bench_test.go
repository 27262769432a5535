package interceptors

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// BenchmarkServerStream1000 reads a 1,000-message server stream through
// the bare client and through the interceptors, in one run:
//
//	go test -run '^$' -bench 'Stream' -benchmem -count 10 ./interceptors/ | tee s.txt
//	benchstat -col /client s.txt
func BenchmarkServerStream1000(b *testing.B) {
	for _, client := range []string{"bare", "resilience"} {
		b.Run("client="+client, func(b *testing.B) {
			h := benchHarness(b, client)
			ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
			defer cancel()
			req := &testingv1.ServerStreamRequest{Count: 1000, Message: "m"}
			var resp testingv1.ServerStreamResponse
			b.ReportAllocs()
			for b.Loop() {
				stream, err := h.client.ServerStream(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					if err := stream.RecvMsg(&resp); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
					n++
				}
				if n != 1000 {
					b.Fatalf("received %d messages, want 1000", n)
				}
			}
		})
	}
}

// BenchmarkBidiPingPong measures one message each way on an open bidi
// stream: the per-message cost after commit.
func BenchmarkBidiPingPong(b *testing.B) {
	for _, client := range []string{"bare", "resilience"} {
		b.Run("client="+client, func(b *testing.B) {
			h := benchHarness(b, client)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream, err := h.client.BidiStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			req := &testingv1.BidiStreamRequest{Message: "ping"}
			var resp testingv1.BidiStreamResponse
			b.ReportAllocs()
			for b.Loop() {
				if err := stream.SendMsg(req); err != nil {
					b.Fatal(err)
				}
				if err := stream.RecvMsg(&resp); err != nil {
					b.Fatal(err)
				}
			}
			_ = stream.CloseSend()
			for stream.RecvMsg(&resp) == nil {
			}
		})
	}
}

// benchClient is an EchoService client of resiliencetest's EchoServer in
// memory: bare, or through the interceptors with their defaults.
type benchClient struct{ client testingv1.EchoServiceClient }

func benchHarness(b *testing.B, client string) benchClient {
	b.Helper()
	lis := resiliencetest.ListenMemory()
	serveEcho(b, lis)
	var opts []grpc.DialOption
	switch client {
	case "resilience":
		opts = MustNew().DialOptions()
	case "no-breaker-no-budget":
		opts = MustNew(WithoutBreaker(), WithoutRetryBudget()).DialOptions()
	}
	return benchClient{client: testingv1.NewEchoServiceClient(dialListener(b, lis, opts...))}
}
