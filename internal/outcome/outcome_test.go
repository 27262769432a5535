package outcome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOfCodes(t *testing.T) {
	want := map[codes.Code]Kind{
		codes.OK:                 Success,
		codes.Canceled:           CallerGone,
		codes.Unknown:            ServerFailure,
		codes.InvalidArgument:    RequestFault,
		codes.DeadlineExceeded:   ServerFailure,
		codes.NotFound:           RequestFault,
		codes.AlreadyExists:      RequestFault,
		codes.PermissionDenied:   RequestFault,
		codes.ResourceExhausted:  ServerFailure,
		codes.FailedPrecondition: RequestFault,
		codes.Aborted:            RequestFault,
		codes.OutOfRange:         RequestFault,
		codes.Unimplemented:      RequestFault,
		codes.Internal:           ServerFailure,
		codes.Unavailable:        ServerFailure,
		codes.DataLoss:           ServerFailure,
		codes.Unauthenticated:    RequestFault,
		codes.Code(99):           RequestFault, // a code grpc-go does not know: the server answered
	}
	for c, k := range want {
		err := status.Error(c, "x")
		if got := Of(err); got != k {
			t.Errorf("Of(status %v) = %v, want %v", c, got, k)
		}
		if c == codes.OK { // status.Error(OK, ...) is nil
			continue
		}
		if got := Of(fmt.Errorf("attempt 2: %w", err)); got != k {
			t.Errorf("Of(wrapped status %v) = %v, want %v", c, got, k)
		}
		if got := Of(errors.Join(errors.New("first"), err)); got != k {
			t.Errorf("Of(joined status %v) = %v, want %v", c, got, k)
		}
	}
}

// okStatus is an error whose status is OK: the server answered.
type okStatus struct{}

func (okStatus) Error() string              { return "ok" }
func (okStatus) GRPCStatus() *status.Status { return nil }

func TestOfOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, Success},
		{"io.EOF", io.EOF, Success},
		{"wrapped io.EOF", fmt.Errorf("recv: %w", io.EOF), Success},
		{"nil status", okStatus{}, Success},
		{"context.Canceled", context.Canceled, CallerGone},
		{"context.DeadlineExceeded", context.DeadlineExceeded, CallerGone},
		{"wrapped context error", fmt.Errorf("caller gave up: %w", context.DeadlineExceeded), CallerGone},
		{"status from context error", status.FromContextError(context.Canceled).Err(), CallerGone},
		{"no status", errors.New("dial tcp: connection refused"), ServerFailure},
		{"wrapped no status", fmt.Errorf("attempt: %w", errors.New("boom")), ServerFailure},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestOfNeverRefuses(t *testing.T) {
	// An Unavailable status that is not marked (MarkDownstream) is a
	// server failure, whatever its message says.
	if got := Of(status.Error(codes.Unavailable, "breaker: circuit open")); got != ServerFailure {
		t.Errorf("Of(refusal-like status) = %v, want server failure", got)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		Success: "success", ServerFailure: "server failure", RequestFault: "request fault",
		CallerGone: "caller gone", Refused: "refused", Kind(42): "Kind(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// TestOfAllocs: the classification allocates nothing, on the fast path (a
// bare status, a plain context error) or off it (a wrapped status).
func TestOfAllocs(t *testing.T) {
	for _, err := range []error{
		nil,
		status.Error(codes.Unavailable, "down"),
		context.Canceled,
		fmt.Errorf("attempt 2: %w", status.Error(codes.NotFound, "")),
		io.EOF,
	} {
		if n := testing.AllocsPerRun(100, func() { _ = Of(err) }); n != 0 {
			t.Errorf("Of(%v): %v allocs, want 0", err, n)
		}
	}
}

func BenchmarkOf(b *testing.B) {
	for _, bc := range []struct {
		name string
		err  error
	}{
		{"status", status.Error(codes.Unavailable, "down")},
		{"wrapped", fmt.Errorf("attempt 2: %w", status.Error(codes.Unavailable, "down"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if Of(bc.err) != ServerFailure {
					b.Fatal("not a server failure")
				}
			}
		})
	}
}

func ExampleOf() {
	for _, err := range []error{
		nil,
		status.Error(codes.Unavailable, "connection refused"),
		status.Error(codes.NotFound, "no such order"),
		context.Canceled,
	} {
		fmt.Println(Of(err))
	}
	// Output:
	// success
	// server failure
	// request fault
	// caller gone
}

func TestOfMarkedDownstream(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{RefusalStatus("refused").Err(), Refused},
		{MarkDownstream(status.New(codes.DeadlineExceeded, "timed out downstream")).Err(), Refused},
		{fmt.Errorf("wrapped: %w", RefusalStatus("refused").Err()), Refused},
		// A request fault stays one, whatever it carries.
		{MarkDownstream(status.New(codes.NotFound, "")).Err(), RequestFault},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("Of(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestMarkDownstream(t *testing.T) {
	st := status.New(codes.Unavailable, "down")
	m := MarkDownstream(st)
	if !IsDownstream(m) || IsDownstream(st) {
		t.Fatalf("marked %v (%v), original %v (%v)", m, IsDownstream(m), st, IsDownstream(st))
	}
	if m.Code() != st.Code() || m.Message() != st.Message() {
		t.Errorf("marking changed the status: %v, want %v", m, st)
	}
	if again := MarkDownstream(m); len(again.Details()) != 1 {
		t.Errorf("marked twice: %d details, want 1", len(again.Details()))
	}
	if ok := MarkDownstream(status.New(codes.OK, "")); IsDownstream(ok) {
		t.Error("an OK status was marked")
	}
}
