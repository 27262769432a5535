package scenario

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grpc-resilience/resilience/bench/internal/faultserver"
	"github.com/grpc-resilience/resilience/bench/internal/stacks"
)

// defaultWarmupTimeout bounds each warm-up call.
const defaultWarmupTimeout = 5 * time.Second

// LoadResult is the outcome of an open-loop load with faults.
type LoadResult struct {
	Stack string `json:"stack"`
	// Calls started, and how many succeeded.
	Calls int `json:"calls"`
	OK    int `json:"ok"`
	// ClientAttempts are the attempts the client started (stats.Begin);
	// ServerAttempts those that reached the server.
	ClientAttempts int64 `json:"client_attempts"`
	ServerAttempts int64 `json:"server_attempts"`
	// Window is how long calls were being started.
	Window time.Duration `json:"window_ns"`
	// Latency of all calls, and of failed calls only.
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	FailedP50 time.Duration `json:"failed_p50_ns"`
	FailedP99 time.Duration `json:"failed_p99_ns"`
	// Derived.
	SuccessRate           float64 `json:"success_rate"`
	AttemptsPerCall       float64 `json:"attempts_per_call"`
	ServerAttemptsPerCall float64 `json:"server_attempts_per_call"`
	ServerAttemptsPerSec  float64 `json:"server_attempts_per_sec"`
}

// RestartResult is the outcome of a stop and restart under load.
type RestartResult struct {
	Stack          string `json:"stack"`
	Calls          int    `json:"calls"`
	Failed         int    `json:"failed"`
	FailedWhenDown int    `json:"failed_started_while_down"`
	FailedAfter    int    `json:"failed_started_after_restart"`
	ClientAttempts int64  `json:"client_attempts"`
	ServerAttempts int64  `json:"server_attempts"`
	// Down is how long the server was actually down.
	Down time.Duration `json:"down_ns"`
	// Recovered reports whether a call succeeded after the restart;
	// TimeToFirstSuccess is from the restart (the new listener accepting)
	// to the end of the first successful call.
	Recovered          bool          `json:"recovered"`
	TimeToFirstSuccess time.Duration `json:"time_to_first_success_ns"`
	AttemptsPerCall    float64       `json:"attempts_per_call"`
}

// callRecord is one call of an open-loop load; times are offsets from the
// start of the load.
type callRecord struct {
	start, end time.Duration
	ok         bool
}

// openLoop starts one call at each offset of at (from t0, in order), each
// in its own goroutine, and waits for all of them. A launch that falls
// behind schedule starts at once.
func openLoop(t0 time.Time, at []time.Duration, call func() bool) []callRecord {
	records := make([]callRecord, len(at))
	var wg sync.WaitGroup
	for i, off := range at {
		if d := time.Until(t0.Add(off)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			s := time.Since(t0)
			ok := call()
			records[i] = callRecord{start: s, end: time.Since(t0), ok: ok}
		})
	}
	wg.Wait()
	return records
}

// uniform returns the offsets of n calls at a fixed rate per second.
func uniform(n int, rate float64) []time.Duration {
	at := make([]time.Duration, n)
	interval := time.Duration(float64(time.Second) / rate)
	for i := range at {
		at[i] = time.Duration(i) * interval
	}
	return at
}

// LoadOnce runs one open-loop load with faults against a fresh loopback
// TCP server.
func LoadOnce(st stacks.Stack, p stacks.Policy, lp LoadParams, callTimeout time.Duration, warmup int) (LoadResult, error) {
	srv, err := faultserver.Start(faultserver.TCP)
	if err != nil {
		return LoadResult{}, err
	}
	defer srv.Close()
	c, err := dial(srv, st, p, true)
	if err != nil {
		return LoadResult{}, err
	}
	defer c.close()
	req := newRequest()
	if err := c.warmup(warmup, req); err != nil {
		return LoadResult{}, fmt.Errorf("stack %s: %w", st.Name, err)
	}
	srv.SetFaults(lp.Faults)
	client0, server0 := c.attempts.load(), srv.Hits()
	records := openLoop(time.Now(), uniform(lp.Calls(), lp.Rate), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return c.call(ctx, req) == nil
	})
	srv.SetFaults(faultserver.Faults{})
	r := LoadResult{
		Stack:          st.Name,
		Calls:          len(records),
		ClientAttempts: c.attempts.load() - client0,
		ServerAttempts: srv.Hits() - server0,
		Window:         lp.Duration,
	}
	var all, failed []time.Duration
	for _, rec := range records {
		d := rec.end - rec.start
		all = append(all, d)
		if rec.ok {
			r.OK++
		} else {
			failed = append(failed, d)
		}
	}
	r.P50, r.P99, r.P999 = percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999)
	r.FailedP50, r.FailedP99 = percentile(failed, 0.50), percentile(failed, 0.99)
	r.SuccessRate = float64(r.OK) / float64(r.Calls)
	r.AttemptsPerCall = float64(r.ClientAttempts) / float64(r.Calls)
	r.ServerAttemptsPerCall = float64(r.ServerAttempts) / float64(r.Calls)
	r.ServerAttemptsPerSec = float64(r.ServerAttempts) / lp.Duration.Seconds()
	return r, nil
}

// RestartOnce runs the restart scenario for one stack against a fresh
// loopback TCP server.
func RestartOnce(st stacks.Stack, p stacks.Policy, rp RestartParams, callTimeout time.Duration, warmup int) (RestartResult, error) {
	srv, err := faultserver.Start(faultserver.TCP)
	if err != nil {
		return RestartResult{}, err
	}
	defer srv.Close()
	c, err := dial(srv, st, p, true)
	if err != nil {
		return RestartResult{}, err
	}
	defer c.close()
	req := newRequest()
	if err := c.warmup(warmup, req); err != nil {
		return RestartResult{}, fmt.Errorf("stack %s: %w", st.Name, err)
	}
	client0, server0 := c.attempts.load(), srv.Hits()

	total := rp.Before + rp.Down + rp.After
	n := max(1, int(rp.Rate*total.Seconds()))
	// The chaos runs beside the load, on the same clock.
	t0 := time.Now()
	type marks struct {
		stopAt, restartAt time.Duration
		err               error
	}
	done := make(chan marks, 1)
	go func() {
		var m marks
		time.Sleep(time.Until(t0.Add(rp.Before)))
		srv.Stop()
		m.stopAt = time.Since(t0)
		time.Sleep(time.Until(t0.Add(rp.Before + rp.Down)))
		m.err = srv.Restart()
		m.restartAt = time.Since(t0)
		done <- m
	}()
	records := openLoop(t0, uniform(n, rp.Rate), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return c.call(ctx, req) == nil
	})
	m := <-done
	if m.err != nil {
		return RestartResult{}, fmt.Errorf("restart: %w", m.err)
	}
	r := RestartResult{
		Stack:          st.Name,
		Calls:          len(records),
		ClientAttempts: c.attempts.load() - client0,
		ServerAttempts: srv.Hits() - server0,
		Down:           m.restartAt - m.stopAt,
	}
	for _, rec := range records {
		if rec.ok {
			continue
		}
		r.Failed++
		switch {
		case rec.start >= m.restartAt:
			r.FailedAfter++
		case rec.start >= m.stopAt:
			r.FailedWhenDown++
		}
	}
	r.TimeToFirstSuccess, r.Recovered = firstSuccessAfter(records, m.restartAt)
	r.AttemptsPerCall = float64(r.ClientAttempts) / float64(r.Calls)
	return r, nil
}

// percentile returns the nearest-rank q-quantile of ds (sorting it), or 0
// for an empty slice.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
