package faultserver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// TestGateServesWorkersAtOnceQueuesAndRefuses drives the capacity gate in a
// synctest bubble: 2 workers of 10 ms and a queue of 3 get 8 attempts at
// once; 3 are refused, the others complete in FIFO order at exactly 10 ms,
// 20 ms and 30 ms, and the queued work is done even for a caller that has
// gone, counted as late.
func TestGateServesWorkersAtOnceQueuesAndRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gate
		g.set(Capacity{Workers: 2, Service: 10 * time.Millisecond, Queue: 3})
		start := time.Now()
		gone, cancel := context.WithCancel(context.Background())
		var (
			mu       sync.Mutex
			finished []time.Duration
			refused  int
			wg       sync.WaitGroup
		)
		for i := range 8 {
			ctx := context.Background()
			if i == 4 { // queued; its caller cancels while it waits
				ctx = gone
			}
			wg.Go(func() {
				ok := g.serve(ctx)
				mu.Lock()
				defer mu.Unlock()
				if !ok {
					refused++
					return
				}
				finished = append(finished, time.Since(start))
			})
			synctest.Wait() // attempts arrive in order
		}
		if w := g.snapshot(); w.Rejected != 3 || w.MaxBusy != 2 || w.MaxQueued != 3 {
			t.Fatalf("after 8 arrivals: %+v, want 3 rejected, 2 busy, 3 queued", w)
		}
		cancel()
		wg.Wait()
		want := []time.Duration{10, 10, 20, 20, 30}
		if len(finished) != len(want) || refused != 3 {
			t.Fatalf("finished %v, refused %d; want 5 finished, 3 refused", finished, refused)
		}
		for i, d := range finished {
			if d != want[i]*time.Millisecond {
				t.Errorf("completion %d at %v, want %v", i, d, want[i]*time.Millisecond)
			}
		}
		if w := g.snapshot(); w.Completed != 5 || w.Late != 1 || w.MaxBusy != 2 {
			t.Errorf("work %+v, want 5 completed, 1 late (the cancelled caller's), at most 2 busy", w)
		}
	})
}

// TestGateLateByDeadline checks that work ending after the attempt's
// deadline counts as late, and work ending before it does not.
func TestGateLateByDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gate
		g.set(Capacity{Workers: 1, Service: 10 * time.Millisecond, Queue: 5})
		long, cancel1 := context.WithTimeout(context.Background(), 15*time.Millisecond)
		defer cancel1()
		short, cancel2 := context.WithTimeout(context.Background(), 15*time.Millisecond)
		defer cancel2()
		var wg sync.WaitGroup
		wg.Go(func() { g.serve(long) }) // ends at 10 ms
		synctest.Wait()
		wg.Go(func() { g.serve(short) }) // queued, ends at 20 ms
		wg.Wait()
		if w := g.snapshot(); w.Completed != 2 || w.Late != 1 {
			t.Errorf("work %+v, want 2 completed, 1 late", w)
		}
	})
}

// TestGateCapacityChanges checks that a larger limit admits waiters at
// once and that a slower service applies to work started after the change.
func TestGateCapacityChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gate
		g.set(Capacity{Workers: 1, Service: 10 * time.Millisecond, Queue: 5})
		start := time.Now()
		var (
			mu   sync.Mutex
			ends []time.Duration
			wg   sync.WaitGroup
		)
		for range 3 {
			wg.Go(func() {
				g.serve(context.Background())
				mu.Lock()
				ends = append(ends, time.Since(start))
				mu.Unlock()
			})
			synctest.Wait()
		}
		g.set(Capacity{Workers: 2, Service: 40 * time.Millisecond, Queue: 5})
		wg.Wait()
		// The first started at 0 with 10 ms; the second was admitted at 0
		// by the larger limit, with 40 ms; the third took the first's slot
		// at 10 ms, with 40 ms.
		want := []time.Duration{10, 40, 50}
		for i, d := range ends {
			if d != want[i]*time.Millisecond {
				t.Errorf("completion %d at %v, want %v", i, d, want[i]*time.Millisecond)
			}
		}
		if w := g.snapshot(); w.MaxBusy != 2 {
			t.Errorf("MaxBusy %d, want 2", w.MaxBusy)
		}
	})
}

func TestSetCapacityRejectsBadValues(t *testing.T) {
	srv, _ := startBufconn(t)
	for _, c := range []Capacity{
		{Workers: -1, Service: time.Millisecond},
		{Workers: 2},
		{Workers: 2, Service: -time.Millisecond},
		{Workers: 2, Service: time.Millisecond, Queue: -1},
	} {
		if err := srv.SetCapacity(c); err == nil {
			t.Errorf("SetCapacity(%+v) accepted", c)
		}
	}
	err := srv.SetCapacity(Capacity{Workers: -1, Queue: -1})
	if err == nil || !strings.Contains(err.Error(), "Workers") || !strings.Contains(err.Error(), "Queue") {
		t.Errorf("SetCapacity with two bad fields: %v, want both named", err)
	}
	if err := srv.SetCapacity(Capacity{}); err != nil {
		t.Errorf("SetCapacity(zero) = %v, want nil (no limit)", err)
	}
}

// TestCapacityOverGRPC checks the wiring: a full server answers
// Unavailable with QueueFullMessage, and a free one serves the attempt and
// counts the work.
func TestCapacityOverGRPC(t *testing.T) {
	srv, c := startBufconn(t)
	if err := srv.SetCapacity(Capacity{Workers: 1, Service: time.Millisecond, Queue: 0}); err != nil {
		t.Fatal(err)
	}
	srv.capacity.mu.Lock()
	srv.capacity.busy = 1 // the one worker is taken
	srv.capacity.mu.Unlock()
	err := call(t, c, &testpb.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != QueueFullMessage {
		t.Fatalf("call to a full server: %v, want Unavailable %q", err, QueueFullMessage)
	}
	srv.capacity.mu.Lock()
	srv.capacity.busy = 0
	srv.capacity.mu.Unlock()
	if err := call(t, c, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("call to a free server: %v", err)
	}
	if w := srv.Work(); w.Completed != 1 || w.Rejected != 1 || w.Late != 0 {
		t.Errorf("work %+v, want 1 completed, 1 rejected, 0 late", w)
	}
}

// TestForward checks a two-hop chain: the front forwards to the back with
// the attempt's context, the back's fault reaches the caller, and a fault
// at the front is answered there without forwarding.
func TestForward(t *testing.T) {
	back, next := startBufconn(t)
	front, c := startBufconn(t)
	var deadline bool
	front.SetForward(func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		_, deadline = ctx.Deadline()
		return next.UnaryCall(ctx, req)
	})
	if err := call(t, c, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("healthy chain: %v", err)
	}
	if !deadline {
		t.Error("the forwarded context has no deadline; the caller's should pass on")
	}
	back.SetFaults(outage)
	if st := status.Convert(call(t, c, &testpb.SimpleRequest{})); st.Code() != codes.Unavailable || st.Message() != InjectedMessage {
		t.Fatalf("back in outage: %v, want its Unavailable", st)
	}
	back.SetFaults(Faults{})
	front.SetFaults(outage)
	if got := status.Code(call(t, c, &testpb.SimpleRequest{})); got != codes.Unavailable {
		t.Fatalf("front in outage: %v, want Unavailable", got)
	}
	if front.Hits() != 3 || back.Hits() != 2 {
		t.Errorf("hits front %d, back %d; want 3 and 2 (the front's fault is not forwarded)", front.Hits(), back.Hits())
	}
	front.SetForward(nil)
	front.SetFaults(Faults{})
	if err := call(t, c, &testpb.SimpleRequest{}); err != nil || back.Hits() != 2 {
		t.Errorf("after SetForward(nil): %v, back hits %d; want an answer from the front alone", err, back.Hits())
	}
}

// outage fails every attempt.
var outage = Faults{Outage: true}
