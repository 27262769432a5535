package resiliencetest

import (
	"context"
	"time"

	"github.com/grpc-resilience/resilience/internal/clock"
)

// FakeClock is a Clock whose time moves only when Advance is called, for
// tests that inject latency without waiting for it. WaitForTimers lets a
// test see that an attempt has started to wait. A FakeClock is safe for
// concurrent use; create it with NewFakeClock. It is the fake clock the
// library's own tests run on.
type FakeClock struct {
	f *clock.Fake
}

var _ Clock = (*FakeClock)(nil)

// NewFakeClock returns a FakeClock set to start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{f: clock.NewFake(start)}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time { return c.f.Now() }

// NewTimer returns a timer that fires when Advance brings the fake time to
// Now()+d. A timer with d <= 0 has fired already.
func (c *FakeClock) NewTimer(d time.Duration) Timer { return c.f.NewTimer(d) }

// Advance moves the fake time forward by d and fires, in deadline order,
// every timer whose deadline has been reached.
func (c *FakeClock) Advance(d time.Duration) { c.f.Advance(d) }

// Timers returns the number of timers that have neither fired nor been
// stopped.
func (c *FakeClock) Timers() int { return len(c.f.Pending()) }

// WaitForTimers blocks until at least n timers are pending, or ctx is done,
// in which case it returns ctx.Err().
func (c *FakeClock) WaitForTimers(ctx context.Context, n int) error {
	if _, ok := c.f.WaitForTimers(ctx.Done(), n); !ok {
		return ctx.Err()
	}
	return nil
}
