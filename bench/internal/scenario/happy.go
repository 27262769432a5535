package scenario

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// Happy-path modes.
const (
	Sequential = "sequential"
	Parallel   = "parallel"
)

// HappyResult is one happy-path measurement. B/op and allocs/op count the
// whole process, the in-process server included, as testing.B does; the
// server's share is the same for every stack.
type HappyResult struct {
	Stack       string  `json:"stack"`
	Transport   string  `json:"transport"`
	Mode        string  `json:"mode"`
	Goroutines  int     `json:"goroutines"`
	Rounds      int     `json:"rounds"`
	N           int     `json:"n"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// HappyTransports are the transports of the happy path, in table order.
var HappyTransports = []faultserver.Transport{faultserver.Bufconn, faultserver.TCP}

// runHappy measures every stack over every transport, sequentially and in
// parallel. One server per transport serves every stack. To keep warm-up
// and drift from favouring whichever stack runs later, every stack is
// measured Rounds times, round-robin, and the median round is reported.
func runHappy(ctx context.Context, o Options) ([]HappyResult, error) {
	var out []HappyResult
	for _, tr := range HappyTransports {
		srv, err := faultserver.Start(tr)
		if err != nil {
			return nil, err
		}
		for _, mode := range []string{Sequential, Parallel} {
			o.progress("happy %s %s", tr, mode)
			rs, err := happyRounds(ctx, srv, o, mode)
			if err != nil {
				srv.Close()
				return nil, err
			}
			out = append(out, rs...)
		}
		srv.Close()
	}
	return out, nil
}

func happyRounds(ctx context.Context, srv *faultserver.Server, o Options, mode string) ([]HappyResult, error) {
	hp := o.Params.Happy
	goroutines := 1
	if mode == Parallel {
		goroutines = max(1, hp.Parallelism) * runtime.GOMAXPROCS(0)
	}
	ops := make([]func() error, len(o.Stacks))
	for i, st := range o.Stacks {
		op, closeFn, err := HappyCall(srv, st, o.Policy)
		if err != nil {
			return nil, err
		}
		defer closeFn()
		ops[i] = op
	}
	rounds := max(1, hp.Rounds)
	ns := make([]int, len(o.Stacks))
	results := make([][]HappyResult, len(o.Stacks))
	for round := range rounds {
		for i, st := range o.Stacks {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if round == 0 {
				n, err := calibrate(hp.Duration, goroutines, ops[i])
				if err != nil {
					return nil, fmt.Errorf("happy %s %s: %w", st.Name, mode, err)
				}
				ns[i] = n
			}
			m, err := measureN(ns[i], goroutines, ops[i])
			if err != nil {
				return nil, fmt.Errorf("happy %s %s: %w", st.Name, mode, err)
			}
			m.Stack, m.Transport, m.Mode = st.Name, string(srv.Transport()), mode
			results[i] = append(results[i], m)
		}
	}
	out := make([]HappyResult, len(o.Stacks))
	for i, rs := range results {
		out[i] = medianRound(rs)
	}
	return out, nil
}

// medianRound returns rs[0] with each per-op figure replaced by its median
// over the rounds.
func medianRound(rs []HappyResult) HappyResult {
	med := func(f func(HappyResult) float64) float64 {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = f(r)
		}
		slices.Sort(vs)
		if len(vs)%2 == 1 {
			return vs[len(vs)/2]
		}
		return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	out := rs[0]
	out.Rounds = len(rs)
	out.NsPerOp = med(func(r HappyResult) float64 { return r.NsPerOp })
	out.BytesPerOp = med(func(r HappyResult) float64 { return r.BytesPerOp })
	out.AllocsPerOp = med(func(r HappyResult) float64 { return r.AllocsPerOp })
	return out
}

// HappyCall connects stack to srv, warms the connection up and returns
// the operation the happy path measures: one unary call with a caller
// deadline.
func HappyCall(srv *faultserver.Server, st stacks.Stack, p stacks.Policy) (op func() error, closeFn func(), err error) {
	c, err := dial(srv, st, p, false)
	if err != nil {
		return nil, nil, err
	}
	req := newRequest()
	if err := c.warmup(10, req); err != nil {
		c.close()
		return nil, nil, fmt.Errorf("happy %s: %w", st.Name, err)
	}
	// One long-lived caller deadline, as production callers carry one,
	// without a per-call context allocation in the measurement.
	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
	return func() error { return c.call(ctx, req) }, func() { cancel(); c.close() }, nil
}

// calibrate returns how many times op must run, from the given number of
// goroutines, to take about d, growing the count as testing.B does.
func calibrate(d time.Duration, goroutines int, op func() error) (int, error) {
	n := 16
	for {
		el, err := runN(n, goroutines, op)
		if err != nil {
			return 0, err
		}
		if el >= d/8 || n >= 1<<30 {
			return max(1, int(float64(n)*float64(d)/float64(max(el, 1)))), nil
		}
		n *= 4
	}
}

// measureN runs op n times and reports per-op time and allocation.
func measureN(n, goroutines int, op func() error) (HappyResult, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	el, err := runN(n, goroutines, op)
	runtime.ReadMemStats(&after)
	if err != nil {
		return HappyResult{}, err
	}
	return HappyResult{
		Goroutines:  goroutines,
		N:           n,
		NsPerOp:     float64(el.Nanoseconds()) / float64(n),
		BytesPerOp:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		AllocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(n),
	}, nil
}

// runN runs op n times in total from the given number of goroutines and
// returns the wall time, or the first error.
func runN(n, goroutines int, op func() error) (time.Duration, error) {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		failed  atomic.Bool
	)
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && !failed.Load() {
				if err := op(); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}
