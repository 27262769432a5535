package resiliencetest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// ended is how one of several concurrent calls ended, and when.
type ended struct {
	code codes.Code
	msg  string
	took time.Duration
}

// echoAll makes n calls at once, each with ctx's deadline plus nothing,
// started one after the other (so that they reach the server in order),
// and returns how each ended, in order.
func echoAll(t *testing.T, ctx context.Context, c testingv1.EchoServiceClient, n int) []ended {
	t.Helper()
	out := make([]ended, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			_, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "hi"})
			st := status.Convert(err)
			out[i] = ended{st.Code(), st.Message(), time.Since(start)}
		})
		synctest.Wait() // call i is queued at the server before call i+1 starts
	}
	wg.Wait()
	return out
}

func TestCapacityServesWorkersAtOnceAndQueuesTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, mustNewFaults(t), nil)
		c := s.client(t)
		must(t, s.faults.SetCapacity(resiliencetest.AllMethods,
			resiliencetest.Capacity{Workers: 2, Service: 100 * time.Millisecond, Queue: 3}))

		// Two served at once, three queued, the sixth refused at once.
		got := echoAll(t, callCtx(t), c, 6)
		want := []time.Duration{100, 100, 200, 200, 300, 0}
		for i, g := range got {
			wantCode := codes.OK
			if i == 5 {
				wantCode = codes.Unavailable
			}
			if g.code != wantCode || g.took != want[i]*time.Millisecond {
				t.Errorf("call %d: %v after %v, want %v after %v", i, g.code, g.took, wantCode, want[i]*time.Millisecond)
			}
		}
		if got[5].msg != resiliencetest.QueueFullMessage {
			t.Errorf("refused call's message %q, want %q", got[5].msg, resiliencetest.QueueFullMessage)
		}
		if w := s.faults.Work(resiliencetest.AllMethods); w != (resiliencetest.Work{Served: 5, QueueFull: 1}) {
			t.Errorf("Work = %+v, want 5 served, 1 refused", w)
		}
		if w := s.faults.Work(echo); w.Served != 5 {
			t.Errorf("Work(echo) = %+v, want the same 5 served", w)
		}
		if w := s.faults.Work(serverStream); w != (resiliencetest.Work{}) {
			t.Errorf("Work(serverStream) = %+v, want nothing", w)
		}
	})
}

// A queued attempt whose caller has gone is still served, in its turn, and
// counted as late; the caller sees its deadline, the server's work ends
// later.
func TestCapacityDoesTheWorkOfCallersWhoLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{endings: make(chan codes.Code, 3)}
		s := serveMem(t, mustNewFaults(t), rec)
		c := s.client(t)
		must(t, s.faults.SetCapacity(echo, resiliencetest.Capacity{Workers: 1, Service: 100 * time.Millisecond, Queue: 10}))

		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		got := echoAll(t, ctx, c, 3)
		for i, want := range []codes.Code{codes.OK, codes.DeadlineExceeded, codes.DeadlineExceeded} {
			if got[i].code != want {
				t.Errorf("call %d: %v, want %v", i, got[i].code, want)
			}
		}
		if code := <-rec.endings; code != codes.OK {
			t.Errorf("first attempt ended at the server with %v, want OK", code)
		}
		// The callers are gone at 150 ms; the server is still at work.
		if w := s.faults.Work(echo); w != (resiliencetest.Work{Served: 1}) {
			t.Errorf("at %v: Work = %+v, want 1 served (the second in service)", time.Since(start), w)
		}
		for i, want := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
			// The server learns that the caller has gone from its own
			// deadline or from the client's cancel, whichever is first.
			code := <-rec.endings
			if (code != codes.DeadlineExceeded && code != codes.Canceled) || time.Since(start) != want {
				t.Errorf("late attempt %d ended at the server with %v at %v, want DeadlineExceeded or Canceled at %v",
					i, code, time.Since(start), want)
			}
		}
		if w := s.faults.Work(echo); w != (resiliencetest.Work{Served: 3, Late: 2}) {
			t.Errorf("Work = %+v, want 3 served, 2 of them late", w)
		}
	})
}

// The rules of a method replace those of AllMethods, capacity included;
// the methods without rules of their own share one set of workers.
func TestCapacityIsSharedUnderAllMethods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, mustNewFaults(t), nil)
		c := s.client(t)
		must(t, s.faults.SetCapacity(resiliencetest.AllMethods, resiliencetest.Capacity{Workers: 1, Service: time.Second, Queue: 1}))
		ctx := callCtx(t)

		start := time.Now()
		echoDone := asyncEcho(ctx, c)
		synctest.Wait()
		stream, err := c.ServerStream(ctx, &testingv1.ServerStreamRequest{Message: "hi", Count: 1})
		must(t, err)
		if _, err := stream.Recv(); err != nil || time.Since(start) != 2*time.Second {
			t.Errorf("stream behind the echo on one worker: %v at %v, want its message at 2s", err, time.Since(start))
		}
		if code := <-echoDone; code != codes.OK {
			t.Errorf("echo: %v", code)
		}

		// Echo with a rule of its own (here a latency of 0) has no
		// capacity limit: it is served at once, the stream's worker busy.
		must(t, s.faults.SetLatency(echo, 0, 0))
		start = time.Now()
		stream, err = c.ServerStream(ctx, &testingv1.ServerStreamRequest{Message: "hi", Count: 1})
		must(t, err)
		synctest.Wait()
		if code := echoCode(ctx, c); code != codes.OK || time.Since(start) != 0 {
			t.Errorf("echo with rules of its own: %v after %v, want OK at once", code, time.Since(start))
		}
		if _, err := stream.Recv(); err != nil {
			t.Error(err)
		}
		if w := s.faults.Work(resiliencetest.AllMethods); w.Served != 3 {
			t.Errorf("Work = %+v, want 3 served", w)
		}
	})
}

// A changed limit applies to the queue at once: more workers admit queued
// attempts, which take the service time set when they start; no limit
// (Capacity{}, Clear, Reset) lets them all go on to the handler at once.
// The attempt in service keeps its service time.
func TestCapacityChangesWhileQueued(t *testing.T) {
	for _, change := range []struct {
		name    string
		do      func(*resiliencetest.Faults) error
		queued  time.Duration // when the queued attempts end
		service time.Duration // when the attempt in service ends
		served  int           // Work.Served at the end
	}{
		{"more workers", func(f *resiliencetest.Faults) error {
			return f.SetCapacity(echo, resiliencetest.Capacity{Workers: 4, Service: 2 * time.Second, Queue: 10})
		}, 2500 * time.Millisecond, time.Second, 4},
		{"Capacity{}", func(f *resiliencetest.Faults) error {
			return f.SetCapacity(echo, resiliencetest.Capacity{})
		}, 500 * time.Millisecond, time.Second, 1},
		{"Clear", func(f *resiliencetest.Faults) error { f.Clear(echo); return nil }, 500 * time.Millisecond, time.Second, 1},
		// Reset forgets the work counted so far, and the work in progress.
		{"Reset", func(f *resiliencetest.Faults) error { f.Reset(); return nil }, 500 * time.Millisecond, time.Second, 0},
	} {
		t.Run(change.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := serveMem(t, mustNewFaults(t), nil)
				c := s.client(t)
				must(t, s.faults.SetCapacity(echo, resiliencetest.Capacity{Workers: 1, Service: time.Second, Queue: 10}))
				ctx := callCtx(t)
				start := time.Now()
				type result struct {
					code codes.Code
					at   time.Duration
				}
				results := make([]chan result, 4)
				for i := range results {
					results[i] = make(chan result, 1)
					go func() {
						code := echoCode(ctx, c)
						results[i] <- result{code, time.Since(start)}
					}()
					synctest.Wait()
				}
				time.Sleep(500 * time.Millisecond)
				must(t, change.do(s.faults))
				for i, ch := range results {
					want := change.queued
					if i == 0 {
						want = change.service
					}
					if r := <-ch; r.code != codes.OK || r.at != want {
						t.Errorf("call %d: %v at %v, want OK at %v", i, r.code, r.at, want)
					}
				}
				// Only work done by a worker is counted.
				if w := s.faults.Work(echo); w.Served != change.served {
					t.Errorf("Work = %+v, want %d served", w, change.served)
				}
			})
		})
	}
}

func TestCapacityInvalid(t *testing.T) {
	f := mustNewFaults(t)
	for _, tc := range []struct {
		c    resiliencetest.Capacity
		want []string
	}{
		{resiliencetest.Capacity{Workers: -1}, []string{"SetCapacity: Capacity.Workers: -1 is negative"}},
		{resiliencetest.Capacity{Workers: 2}, []string{"Capacity.Service: must be > 0 with 2 workers, got 0s"}},
		{resiliencetest.Capacity{Workers: 2, Service: -time.Second}, []string{"Capacity.Service"}},
		{resiliencetest.Capacity{Workers: 1, Service: time.Second, Queue: -3}, []string{"Capacity.Queue: -3 is negative"}},
		{resiliencetest.Capacity{Workers: -1, Queue: -1}, []string{"Capacity.Workers", "Capacity.Queue"}},
	} {
		err := f.SetCapacity(echo, tc.c)
		if !errors.Is(err, resiliencetest.ErrInvalidConfig) {
			t.Errorf("SetCapacity(%+v) = %v, want an ErrInvalidConfig", tc.c, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("SetCapacity(%+v) = %v, want it to name %q", tc.c, err, w)
			}
		}
	}
	if err := f.SetCapacity("Echo", resiliencetest.Capacity{}); !errors.Is(err, resiliencetest.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), `SetCapacity: method: "Echo"`) {
		t.Errorf("SetCapacity on a bad method name: %v", err)
	}
	// Nothing invalid was kept: a call is served at once.
	s := serve(t, f, nil)
	if code := echoCode(callCtx(t), s.client(t)); code != codes.OK {
		t.Errorf("call after rejected capacities: %v", code)
	}
	if w := f.Work(resiliencetest.AllMethods); w != (resiliencetest.Work{}) {
		t.Errorf("Work = %+v, want none: no capacity was set", w)
	}
}
