package latency

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPercentile(t *testing.T) {
	var l Histogram
	if _, ok := l.Percentile(0.95); ok {
		t.Error("percentile reported with no samples")
	}
	for i := range 1000 {
		d := time.Millisecond
		if i%20 == 0 {
			d = 100 * time.Millisecond // 5 % slow
		}
		l.Observe(d)
	}
	p90, _ := l.Percentile(0.90)
	if p90 < time.Millisecond || p90 > 1300*time.Microsecond {
		t.Errorf("p90 = %v, want about 1ms", p90)
	}
	p99, _ := l.Percentile(0.99)
	if p99 < 100*time.Millisecond || p99 > 130*time.Millisecond {
		t.Errorf("p99 = %v, want about 100ms", p99)
	}
}

func TestFollowsChange(t *testing.T) {
	var l Histogram
	for range 1000 {
		l.Observe(100 * time.Millisecond)
	}
	for range 2000 {
		l.Observe(time.Millisecond)
	}
	if p, _ := l.Percentile(0.99); p > 1300*time.Microsecond {
		t.Errorf("p99 after 2000 fast samples = %v, want the old slow ones rotated out", p)
	}
}
