package endpoint

import (
	"context"
	"testing"

	"google.golang.org/grpc/balancer"
)

type fixedPicker struct{}

func (fixedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, nil
}

func benchPicker(b *testing.B) *picker {
	det := newDetector("bench", Config{})
	p := &picker{det: det}
	for range 5 {
		p.ready = append(p.ready, readyEndpoint{fixedPicker{}, det.add("addr")})
	}
	return p
}

// BenchmarkPick is a pick and its Done(nil) without a call record, and with
// a record as the interceptors' first attempt of a call would have it.
func BenchmarkPick(b *testing.B) {
	p := benchPicker(b)
	ctx := context.Background()
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, _ := p.Pick(balancer.PickInfo{Ctx: ctx})
			res.Done(balancer.DoneInfo{})
		}
	})
	b.Run("call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call := NewCall(ctx)
			res, _ := p.Pick(balancer.PickInfo{Ctx: call})
			res.Done(balancer.DoneInfo{})
		}
	})
}
