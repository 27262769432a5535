package latency

import (
	"math"
	"sync"
	"time"
)

// Histogram is a histogram of recent successful call latencies with
// logarithmic buckets (4 per doubling, from 1 µs), over two rotating
// windows of latencyWindow samples each, so that it follows change.
type Histogram struct {
	mu    sync.Mutex
	cur   [latencyBuckets]uint32
	prev  [latencyBuckets]uint32
	curN  int
	prevN int
}

const (
	latencyBuckets = 4 * 40 // up to 2^40 µs
	latencyWindow  = 1000
	latencyMinimum = 100 // samples before a percentile is trusted
)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log2(us)*4)+1, latencyBuckets-1)
}

// upper returns the upper bound of bucket b.
func upper(b int) time.Duration {
	return time.Duration(math.Exp2(float64(b)/4) * float64(time.Microsecond))
}

// Observe records one latency.
func (l *Histogram) Observe(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur[bucketOf(d)]++
	l.curN++
	if l.curN == latencyWindow {
		l.prev, l.prevN = l.cur, l.curN
		l.cur, l.curN = [latencyBuckets]uint32{}, 0
	}
}

// Percentile returns the p-th percentile (p in (0, 1)) of the recorded
// latencies, as the upper bound of its bucket, or false when fewer than 100
// were recorded.
func (l *Histogram) Percentile(p float64) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.curN + l.prevN
	if n < latencyMinimum {
		return 0, false
	}
	rank := uint32(math.Ceil(p * float64(n)))
	var seen uint32
	for b := range latencyBuckets {
		seen += l.cur[b] + l.prev[b]
		if seen >= rank {
			return upper(b), true
		}
	}
	return upper(latencyBuckets - 1), true
}
