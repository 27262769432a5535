package scenario

import (
	"fmt"
	"testing"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// BenchmarkHappyPath is the happy path of cmd/compare as standard Go
// benchmarks, for benchstat:
//
//	go -C bench test -run '^$' -bench HappyPath -benchmem -count 10 ./internal/scenario | tee new.txt
//	benchstat -col /stack new.txt
//
// B/op and allocs/op include the in-process server's share, the same for
// every stack.
func BenchmarkHappyPath(b *testing.B) {
	p := stacks.DefaultPolicy()
	for _, tr := range HappyTransports {
		srv, err := faultserver.Start(tr)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{Sequential, Parallel} {
			for _, st := range stacks.All() {
				b.Run(fmt.Sprintf("transport=%s/mode=%s/stack=%s", tr, mode, st.Name), func(b *testing.B) {
					op, closeFn, err := HappyCall(srv, st, p)
					if err != nil {
						b.Fatal(err)
					}
					defer closeFn()
					b.ReportAllocs()
					if mode == Sequential {
						for b.Loop() {
							if err := op(); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := op(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
		srv.Close()
	}
}
