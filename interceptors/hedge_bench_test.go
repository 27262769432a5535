package interceptors

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// BenchmarkHedgedTail measures what hedging buys on a slow tail and what it
// costs when it is not needed, over loopback TCP: calls start at 2000/s
// (open loop: every client is offered the same load, whatever it does
// with it), 5 % of attempts are delayed by 100 ms at the server, every
// call has a 1 s deadline. Each op is one call; p50 and p99 are over the run's calls,
// attempts/call counts what reached the server. Clients, in one run:
//
//   - bare: grpc.NewClient with nothing added;
//   - plain: our interceptors, no hedging;
//   - hedged: hedging after a fixed 5 ms, at most 2 attempts in flight.
//
// Run, and compare the clients' medians with benchstat:
//
//	go test -run '^$' -bench BenchmarkHedgedTail -benchtime 4000x -count 6 ./interceptors/ | tee hedge.txt
//	benchstat -col /client hedge.txt
func BenchmarkHedgedTail(b *testing.B) {
	const rate = 2000 // calls per second
	for _, client := range []string{"bare", "plain", "hedged"} {
		b.Run("client="+client, func(b *testing.B) {
			lis, err := resiliencetest.Listen()
			if err != nil {
				b.Fatal(err)
			}
			faults := newFaults(b, resiliencetest.WithSeed(1))
			serveEcho(b, lis, faults.ServerOptions()...)
			var opts []Option
			if client == "hedged" {
				opts = append(opts, hedging(5*time.Millisecond, 2))
			}
			m := MustNew(opts...)
			dial := m.DialOptions()
			if client == "bare" {
				dial = nil
			}
			c := testingv1.NewEchoServiceClient(dialListener(b, lis, dial...))
			req := &testingv1.EchoRequest{Message: "tail"}
			// Warm up: connect; the tail and the server's draws begin after.
			for range 20 {
				_, _ = c.Echo(context.Background(), req)
			}
			faults.Reset()
			must(b, faults.SetLatency(allMethods, 0.05, 100*time.Millisecond))

			// Open loop: calls start at a fixed rate whatever the client
			// does with them, so every client is offered the same load.
			lat := make([]time.Duration, b.N)
			errs := make(chan error, b.N)
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range b.N {
				<-tick.C
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					start := time.Now()
					_, err := c.Echo(ctx, req)
					lat[i] = time.Since(start)
					if err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			all := lat
			slices.Sort(all)
			q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(float64(faults.Attempts(allMethods))/float64(len(all)), "attempts/call")
		})
	}
}
