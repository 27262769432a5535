package outcome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{nil, Success},
		{io.EOF, Success},
		{fmt.Errorf("wrapped: %w", io.EOF), Success},
		{context.Canceled, CallerGone},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), CallerGone},
		{status.Error(codes.Canceled, ""), CallerGone},
		{status.Error(codes.Unavailable, ""), ServerFailure},
		{status.Error(codes.DeadlineExceeded, ""), ServerFailure},
		{status.Error(codes.ResourceExhausted, ""), ServerFailure},
		{status.Error(codes.Internal, ""), ServerFailure},
		{status.Error(codes.Unknown, ""), ServerFailure},
		{status.Error(codes.DataLoss, ""), ServerFailure},
		{errors.New("no status"), ServerFailure},
		{status.Error(codes.NotFound, ""), RequestFault},
		{status.Error(codes.InvalidArgument, ""), RequestFault},
		{status.Error(codes.PermissionDenied, ""), RequestFault},
		{status.Error(codes.Unimplemented, ""), RequestFault},
		{fmt.Errorf("wrapped: %w", status.Error(codes.Aborted, "")), RequestFault},
		{RefusalStatus("refused").Err(), Refused},
		{MarkDownstream(status.New(codes.DeadlineExceeded, "timed out downstream")).Err(), Refused},
		{fmt.Errorf("wrapped: %w", RefusalStatus("refused").Err()), Refused},
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
	// A request fault stays one, whatever it carries.
	if k := OfStatus(MarkDownstream(status.New(codes.NotFound, ""))); k != RequestFault {
		t.Errorf("a marked NotFound is %v, want a request fault", k)
	}
}

func TestOfDoesNotAllocateForAnswers(t *testing.T) {
	errs := []error{nil, status.Error(codes.NotFound, "x"), status.Error(codes.Canceled, "x"), context.Canceled}
	if n := testing.AllocsPerRun(100, func() {
		for _, err := range errs {
			Of(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}
