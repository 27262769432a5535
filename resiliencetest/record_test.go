package resiliencetest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func TestRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := s.client(t)
		must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Unavailable)))
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "tenant", "a"), time.Second)
		defer cancel()
		start := time.Now()
		echoCode(ctx, c)
		echoCode(metadata.AppendToOutgoingContext(ctx, resiliencetest.AttemptMetadataKey, "2"), c)
		stream, err := c.ServerStream(t.Context(), &testingv1.ServerStreamRequest{Count: 1})
		must(t, err)
		for err == nil {
			_, err = stream.Recv()
		}

		got := s.faults.Records(echo)
		if len(got) != 2 {
			t.Fatalf("Records(Echo): %d records, want 2", len(got))
		}
		for i, want := range []struct {
			number int
			code   codes.Code
		}{{1, codes.Unavailable}, {2, codes.OK}} {
			r := got[i]
			if r.Method != echo || r.Number != want.number || !r.Done || r.Code != want.code {
				t.Errorf("record %d: %s #%d done %v %v, want %s #%d done %v", i, r.Method, r.Number, r.Done, r.Code, echo, want.number, want.code)
			}
			if v := r.Metadata.Get("tenant"); len(v) != 1 || v[0] != "a" {
				t.Errorf("record %d: tenant %q, want [a]", i, v)
			}
			if !r.Arrived.Equal(start) || r.Deadline.Sub(r.Arrived) != time.Second {
				t.Errorf("record %d: arrived %v after the call, with %v left; want at once, with the caller's 1s",
					i, r.Arrived.Sub(start), r.Deadline.Sub(r.Arrived))
			}
		}
		// A copy: changing it changes nothing kept.
		got[0].Metadata.Set("tenant", "b")
		if v := s.faults.Records(echo)[0].Metadata.Get("tenant"); v[0] != "a" {
			t.Errorf("a caller changed a kept record's metadata to %q", v)
		}
		all := s.faults.Records(resiliencetest.AllMethods)
		if len(all) != 3 || all[2].Method != serverStream || all[2].Code != codes.OK || !all[2].Deadline.IsZero() {
			t.Errorf("Records(AllMethods) = %+v, want the two Echo records, then the stream's, without deadline", all)
		}

		// A running attempt, then Reset.
		must(t, s.faults.InjectNext(echo, 1, resiliencetest.Hang()))
		done := asyncEcho(callCtx(t), c)
		must(t, s.faults.WaitAttempts(callCtx(t), echo, 3))
		synctest.Wait() // counted; now hanging, its fault taken
		if r := s.faults.Records(echo)[2]; r.Done {
			t.Errorf("a hung attempt's record says done (%v)", r.Code)
		}
		s.faults.Reset()
		if n := len(s.faults.Records(resiliencetest.AllMethods)); n != 0 {
			t.Errorf("%d records after Reset, want 0", n)
		}
		if code := <-done; code != codes.DeadlineExceeded {
			t.Errorf("hung call: %v, want its deadline", code)
		}
	})
}

func TestRecordsKeepTheLatest1000(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := s.client(t)
		const n = 2345
		for i := range n {
			echoCode(metadata.AppendToOutgoingContext(t.Context(), "i", fmt.Sprint(i)), c)
		}
		got := s.faults.Records(echo)
		if len(got) != 1000 || got[0].Metadata.Get("i")[0] != fmt.Sprint(n-1000) || got[999].Metadata.Get("i")[0] != fmt.Sprint(n-1) {
			t.Fatalf("%d records from %q to %q, want the latest 1000", len(got), got[0].Metadata.Get("i"), got[len(got)-1].Metadata.Get("i"))
		}
		if a := s.faults.Attempts(echo); a != n {
			t.Errorf("Attempts = %d, want all %d counted", a, n)
		}
	})
}

func TestWaitAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := fastClient(t, s) // 3 attempts, 1ms apart
		must(t, s.faults.InjectNext(echo, 2, resiliencetest.Fail(codes.Unavailable)))
		start := time.Now()
		done := asyncEcho(callCtx(t), c)
		must(t, s.faults.WaitAttempts(callCtx(t), resiliencetest.AllMethods, 3))
		if took := time.Since(start); took != 2*time.Millisecond {
			t.Errorf("the third attempt arrived after %v, want after two 1ms backoffs", took)
		}
		if code := <-done; code != codes.OK {
			t.Errorf("call: %v", code)
		}
		must(t, s.faults.WaitAttempts(t.Context(), echo, 0))

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err := s.faults.WaitAttempts(ctx, echo, 4)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 of 4 attempts") || time.Since(start) != time.Minute+2*time.Millisecond {
			t.Errorf("WaitAttempts for an attempt that never comes: %v after %v, want the context's error after its minute", err, time.Since(start))
		}
	})
}

func TestPauseHoldsAttemptsUntilResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := s.client(t)
		must(t, s.faults.Pause(resiliencetest.AllMethods))
		done := asyncEcho(t.Context(), c) // no deadline
		must(t, s.faults.WaitAttempts(callCtx(t), echo, 1))
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case code := <-done:
			t.Fatalf("a paused attempt ended (%v)", code)
		default:
		}
		must(t, s.faults.Pause(resiliencetest.AllMethods)) // no effect
		s.faults.Resume(resiliencetest.AllMethods)
		if code := <-done; code != codes.OK {
			t.Errorf("resumed attempt: %v, want OK", code)
		}
		if code := echoCode(callCtx(t), c); code != codes.OK {
			t.Errorf("after Resume: %v, want OK", code)
		}

		// A held attempt whose context ends, ends.
		must(t, s.faults.Pause(echo))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if code := echoCode(ctx, c); code != codes.DeadlineExceeded || time.Since(start) != 50*time.Millisecond {
			t.Errorf("paused call with a 50ms deadline: %v after %v, want DeadlineExceeded after 50ms", code, time.Since(start))
		}
		// Clear and Reset let held attempts go on, as Resume does.
		for _, release := range []func(){func() { s.faults.Clear(echo) }, s.faults.Reset} {
			must(t, s.faults.Pause(echo))
			done := asyncEcho(callCtx(t), c)
			synctest.Wait()
			release()
			if code := <-done; code != codes.OK {
				t.Errorf("released call: %v, want OK", code)
			}
		}
	})
}

func TestWithDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := serveMem(t, nil, nil)
		c := s.client(t)
		must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Internal).WithDelay(30*time.Millisecond)))
		start := time.Now()
		if code := echoCode(callCtx(t), c); code != codes.Internal || time.Since(start) != 30*time.Millisecond {
			t.Errorf("delayed failure: %v after %v, want Internal after 30ms", code, time.Since(start))
		}
		start = time.Now()
		if code := echoCode(callCtx(t), c); code != codes.OK || time.Since(start) != 0 {
			t.Errorf("next call: %v after %v, want OK at once", code, time.Since(start))
		}

		// A stream fault waits before the handler runs.
		must(t, s.faults.InjectNext(serverStream, 1, resiliencetest.FailAfterSent(1, codes.Aborted).WithDelay(time.Second)))
		start = time.Now()
		stream, err := c.ServerStream(callCtx(t), &testingv1.ServerStreamRequest{Count: 3})
		must(t, err)
		if _, err := stream.Recv(); err != nil || time.Since(start) != time.Second {
			t.Errorf("first message: %v after %v, want it after the 1s delay", err, time.Since(start))
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Aborted {
			t.Errorf("second Recv: %v, want Aborted", err)
		}

		// The caller's deadline ends the wait.
		must(t, s.faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Internal).WithDelay(time.Hour)))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		if code := echoCode(ctx, c); code != codes.DeadlineExceeded {
			t.Errorf("delay past the deadline: %v, want DeadlineExceeded", code)
		}
		synctest.Wait()
		if r := s.faults.Records(echo); !r[len(r)-1].Done || (r[len(r)-1].Code != codes.DeadlineExceeded && r[len(r)-1].Code != codes.Canceled) {
			t.Errorf("the server's record of it: %+v, want ended by its context", r[len(r)-1])
		}
	})
}
