package fallback_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/fallback"
)

func TestFallbackFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, fallback.Config{})
		ctx := context.Background()
		down := status.Error(codes.Unavailable, "connection refused")
		save := s.Saver()
		answer := s.Fallback()

		r := reply("mine")
		info, err := answer(ctx, method, req("k"), r, down)
		if !errors.Is(err, fallback.ErrNoCopy) || !errors.Is(err, down) || status.Code(err) != codes.Unavailable {
			t.Errorf("miss = %v (code %v), want it to wrap ErrNoCopy and the original Unavailable", err, status.Code(err))
		}
		if info != (fallback.Info{}) || r.Message != "mine" {
			t.Errorf("miss gave %+v, reply %q; want Info{} and reply untouched", info, r.Message)
		}

		save(method, req("k"), reply("cached"))
		save(method, "not a message", reply("x")) // skipped, no panic
		time.Sleep(3 * time.Second)
		info, err = answer(ctx, method, req("k"), r, down)
		if err != nil || r.Message != "cached" {
			t.Fatalf("hit = %v, reply %q; want nil and the cached copy", err, r.Message)
		}
		if want := (fallback.Info{Used: true, Stale: true, Age: 3 * time.Second}); info != want {
			t.Errorf("hit Info = %+v, want %+v", info, want)
		}

		_, err = answer(ctx, method, "not a message", r, down)
		if !errors.Is(err, fallback.ErrInvalidArgument) || !errors.Is(err, down) {
			t.Errorf("non-proto request = %v, want ErrInvalidArgument wrapping the original", err)
		}
	})
}
