package interceptors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/backoff"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// recvAll reads a server stream to its end and returns the sequence
// numbers received and the final error (nil for a clean end).
func recvAll(stream testingv1.EchoService_ServerStreamClient) ([]int32, error) {
	var got []int32
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, msg.GetSequence())
	}
}

func seq(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestServerStreamRetriedBeforeCommit(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	h.failNext(2, codes.Unavailable)
	var attempts int
	stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 5}, Attempts(&attempts))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream)
	if err != nil {
		t.Fatalf("stream ended with %v, want success after retries", err)
	}
	if !equalInts(got, seq(5)) {
		t.Errorf("received %v, want %v", got, seq(5))
	}
	if n := h.attempts(); n != 3 || attempts != 3 {
		t.Errorf("server saw %d attempts, Attempts %d; want 3 and 3", n, attempts)
	}
}

func TestServerStreamFailureAfterCommitReachesCaller(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), MaxAttempts(5))
	h.failStreamAfter(3, codes.Unavailable)
	var attempts int
	stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 10}, Attempts(&attempts))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable", err)
	}
	if !equalInts(got, seq(3)) {
		t.Errorf("received %v, want exactly %v: no replay after commit", got, seq(3))
	}
	if n := h.attempts(); n != 1 || attempts != 1 {
		t.Errorf("server saw %d attempts, Attempts %d; want 1 and 1", n, attempts)
	}
}

func TestClientStreamReplaysMessagesInOrder(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	// Fail only once everything was received, so that the retry has to
	// replay every message.
	h.failNextAfterReceived(1, 3, codes.Unavailable)
	stream, err := h.client.ClientStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c"}
	for _, m := range want {
		if err := stream.Send(&testingv1.ClientStreamRequest{Message: m}); err != nil {
			t.Fatalf("Send(%s): %v", m, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("CloseAndRecv: %v, want success on the second attempt", err)
	}
	if fmt.Sprint(resp.GetMessages()) != fmt.Sprint(want) {
		t.Errorf("response %v, want %v", resp.GetMessages(), want)
	}
	rec := h.receivedMessages()
	if len(rec) != 2 {
		t.Fatalf("server saw %d stream attempts, want 2", len(rec))
	}
	for i, r := range rec {
		if fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("attempt %d received %v, want %v", i+1, r, want)
		}
	}
}

func TestBidiStreamRetriedBeforeCommitAndNotAfter(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	// Fail before answering, but after the first message arrived, so that
	// the message has to be replayed.
	h.failNextAfterReceived(1, 1, codes.Unavailable)
	stream, err := h.client.BidiStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range []string{"a", "b"} {
		if err := stream.Send(&testingv1.BidiStreamRequest{Message: m}); err != nil {
			t.Fatalf("Send(%s): %v", m, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if resp.GetMessage() != m || resp.GetSequence() != int32(i) {
			t.Errorf("Recv %d = %q #%d, want %q #%d", i, resp.GetMessage(), resp.GetSequence(), m, i)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("final Recv = %v, want io.EOF", err)
	}
	rec := h.receivedMessages()
	if len(rec) != 2 || fmt.Sprint(rec[0]) != "[a]" || fmt.Sprint(rec[1]) != "[a b]" {
		t.Errorf("server attempts received %v, want [[a] [a b]]", rec)
	}

	// After commit, a failure reaches the caller and nothing is replayed.
	h.reset()
	h.failStreamAfter(1, codes.Unavailable)
	stream, err = h.client.BidiStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testingv1.BidiStreamRequest{Message: "x"}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetMessage() != "x" {
		t.Fatalf("Recv = %v, %v; want x", resp, err)
	}
	_ = stream.Send(&testingv1.BidiStreamRequest{Message: "y"})
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Recv after commit = %v, want Unavailable", err)
	}
	if n := h.attempts(); n != 1 {
		t.Errorf("server saw %d attempts after a committed failure, want 1", n)
	}
}

func TestReplayBufferOverflowCommits(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), WithStreamReplayBuffer(8))
	// The failure comes once all three messages arrived: after the second
	// one overflowed the buffer.
	h.failNextAfterReceived(1, 3, codes.Unavailable)
	stream, err := h.client.ClientStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"0123", "4567", "89ab"} { // 6 bytes each on the wire
		if err := stream.Send(&testingv1.ClientStreamRequest{Message: m}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CloseAndRecv = %v, want the Unavailable of the only attempt", err)
	}
	if n := len(h.receivedMessages()); n != 1 {
		t.Errorf("server saw %d attempts, want 1: an overflowed buffer cannot be replayed", n)
	}
}

func TestStreamPerAttemptTimeoutBoundsOnlyTheTimeToCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Backoff(backoff.Constant(0)), PerAttemptTimeout(50*time.Millisecond))
		h.blockFirst(1)
		start := time.Now()
		stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		h.waitAttempts(t, 1) // the first attempt hangs at the server
		first, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v, want the second attempt's first message", err)
		}
		if took := time.Since(start); took != 50*time.Millisecond {
			t.Errorf("first message after %v, want after the 50ms per-attempt timeout", took)
		}
		if n := h.attempts(); n != 2 {
			t.Errorf("server saw %d attempts, want 2", n)
		}
		// Committed: the second attempt's timer was stopped, so however much
		// time passes the stream lives on.
		time.Sleep(time.Hour)
		rest, err := recvAll(stream)
		if err != nil {
			t.Fatalf("committed stream ended with %v after the per-attempt timeout", err)
		}
		if got := append([]int32{first.GetSequence()}, rest...); !equalInts(got, seq(3)) {
			t.Errorf("received %v, want %v", got, seq(3))
		}
	})
}

func TestStreamCancelMidStream(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := h.client.BidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testingv1.BidiStreamRequest{Message: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel = %v, want Canceled", err)
	}
	if n := h.attempts(); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
	if err := stream.Context().Err(); err == nil {
		t.Error("stream context still alive after cancel")
	}
}

func TestStreamCancelledBeforeCommitIsNotRetried(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)))
	release := h.blockCalls()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := h.client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv = %v, want Canceled", err)
	}
	if n := h.attempts(); n > 1 {
		t.Errorf("server saw %d attempts after the caller cancelled, want at most 1", n)
	}
}

func TestAbandonedStreamsLeakNothing(t *testing.T) {
	// goleak in TestMain checks that nothing outlives the test.
	h := newHarness(t, Backoff(backoff.Constant(0)))
	for range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := h.client.ServerStream(ctx, &testingv1.ServerStreamRequest{Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel() // abandon without draining
	}
}

func TestStreamSoakNoDuplicatesNoLosses(t *testing.T) {
	h := newHarness(t, Backoff(backoff.Constant(0)), MaxAttempts(4))
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	h.streamFault = func() (bool, int) {
		mu.Lock()
		defer mu.Unlock()
		switch r := rng.Float64(); {
		case r < 0.3:
			return true, 0 // before commit: retried
		case r < 0.4:
			return false, 1 + rng.IntN(19) // after commit: reaches the caller
		}
		return false, 0
	}
	const streams, count = 200, 20
	var wg sync.WaitGroup
	var okN, failN, dup, lost int
	var resMu sync.Mutex
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := h.client.ServerStream(context.Background(), &testingv1.ServerStreamRequest{Count: count, Message: fmt.Sprint(i)})
			var got []int32
			if err == nil {
				got, err = recvAll(stream)
			}
			resMu.Lock()
			defer resMu.Unlock()
			// Whatever arrived must be a prefix of 0..count-1: any repeat
			// is a duplicate, any gap a loss.
			for j, s := range got {
				if s != int32(j) {
					if s < int32(j) {
						dup++
					} else {
						lost++
					}
				}
			}
			if err == nil {
				okN++
				if len(got) != count {
					lost += count - len(got)
				}
			} else {
				failN++
				var ie *Error
				if !errors.As(err, &ie) && status.Code(err) != codes.Unavailable {
					t.Errorf("stream %d failed with %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	if dup != 0 || lost != 0 {
		t.Errorf("duplicates %d, losses %d; want 0 and 0", dup, lost)
	}
	if okN == 0 || failN == 0 {
		t.Errorf("%d streams succeeded and %d failed; the fault mix should produce both", okN, failN)
	}
	t.Logf("%d streams ok, %d failed, %d attempts", okN, failN, h.attempts())
}
