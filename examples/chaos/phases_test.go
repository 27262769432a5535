package main

import (
	"context"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// TestEachPhaseSetsItsOwnFaults applies the phases in order to a server's
// faults and checks that each does what it says and nothing the previous
// one did: every attempt fails in the noise phase (-noise=1), takes an
// hour in the slow one (-tail=1), takes the service time in the overload
// and fails again in the outage, which keeps the overload's queue. The
// attempts go through the interceptor itself, in a testing/synctest
// bubble, so times are exact.
func TestEachPhaseSetsItsOwnFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const service = 10 * time.Millisecond
		d := &demo{
			cfg: config{Noise: 1, Tail: 1, TailLatency: time.Hour, Workers: 1, Service: service, Queue: 1},
			out: &lockedWriter{w: io.Discard},
		}
		faults, err := resiliencetest.NewFaults()
		if err != nil {
			t.Fatal(err)
		}
		srv := &server{faults: faults}
		intercept := faults.UnaryServerInterceptor()
		info := &grpc.UnaryServerInfo{FullMethod: testingv1.EchoService_Echo_FullMethodName}
		echo := func(ctx context.Context, _ any) (any, error) { return &testingv1.EchoResponse{}, nil }
		type result struct {
			code codes.Code
			took time.Duration
		}
		attempt := func() <-chan result {
			out := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				start := time.Now()
				_, err := intercept(ctx, &testingv1.EchoRequest{}, info, echo)
				out <- result{status.Code(err), time.Since(start)}
			}()
			synctest.Wait() // at the server: in service, queued or done
			return out
		}
		apply := func(p int) {
			t.Helper()
			if err := d.applyPhase(p, []*server{srv}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(phase string, got result, want result) {
			t.Helper()
			if got != want {
				t.Errorf("%s: attempt %v after %v, want %v after %v", phase, got.code, got.took, want.code, want.took)
			}
		}

		apply(0)
		check("noise", <-attempt(), result{codes.Unavailable, 0})
		apply(1)
		check("slow", <-attempt(), result{codes.DeadlineExceeded, time.Second}) // an hour's tail
		apply(overloadPhase)
		check("overload", <-attempt(), result{codes.OK, service}) // the service time, no tail

		// One attempt in service and one queued when the outage begins:
		// the queue is worked off at the server's pace, not dropped, while
		// new attempts fail at once without taking a worker.
		inService, queued := attempt(), attempt()
		apply(overloadPhase + 1)
		check("outage", <-attempt(), result{codes.Unavailable, 0})
		check("in service at the outage", <-inService, result{codes.OK, service})
		check("queued at the outage", <-queued, result{codes.OK, 2 * service})
		if w := faults.Work(resiliencetest.AllMethods); w.Served != 3 {
			t.Errorf("Work = %+v, want the overload's three attempts served", w)
		}
	})
}
