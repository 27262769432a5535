package resiliencetest_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/resiliencetest"
)

func nan() float64 { return math.NaN() }

func TestFakeClock(t *testing.T) {
	start := time.Unix(100, 0)
	c := resiliencetest.NewFakeClock(start)
	late := c.NewTimer(2 * time.Second)
	early := c.NewTimer(time.Second)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop of a pending timer: want true once, then false")
	}
	if n := c.Timers(); n != 2 {
		t.Errorf("Timers = %d, want 2", n)
	}
	c.Advance(time.Second)
	select {
	case at := <-early.C():
		if !at.Equal(start.Add(time.Second)) {
			t.Errorf("fired at %v", at)
		}
	default:
		t.Error("the 1s timer did not fire after Advance(1s)")
	}
	select {
	case <-late.C():
		t.Error("the 2s timer fired after 1s")
	default:
	}
	c.Advance(time.Second)
	<-late.C()
	if late.Stop() {
		t.Error("Stop of a fired timer reported true")
	}
	select {
	case <-c.NewTimer(0).C():
	default:
		t.Error("a timer of 0 has not fired")
	}
	if !c.Now().Equal(start.Add(2 * time.Second)) {
		t.Errorf("Now = %v", c.Now())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.WaitForTimers(ctx, 1); err != context.Canceled {
		t.Errorf("WaitForTimers on a cancelled context: %v", err)
	}
}
