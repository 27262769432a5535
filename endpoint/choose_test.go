package endpoint

import (
	"math"
	"testing"
)

// TestSkippedPicksSpreadEvenly: the picks that would have gone to an
// ejected endpoint go to the others in turn, each as often, whatever the
// number of endpoints and ejected ones (a choice keyed on the start alone
// would send them all to one endpoint when the counts share a factor).
func TestSkippedPicksSpreadEvenly(t *testing.T) {
	for _, tc := range []struct {
		n       int
		ejected []int
	}{
		{5, []int{2}},
		{4, []int{0, 2}},
		{6, []int{1, 3, 5}},
	} {
		det := newDetector("spread", Config{})
		p := &picker{det: det}
		for range tc.n {
			p.ready = append(p.ready, readyEndpoint{fixedPicker{}, det.add("addr")})
		}
		out := map[int]bool{}
		for _, i := range tc.ejected {
			p.ready[i].ep.until.Store(math.MaxInt64)
			out[i] = true
		}
		in := tc.n - len(tc.ejected)
		laps := 4 * in // every in-service endpoint gets the same share of the skipped picks
		got := make([]int, tc.n)
		for start := range uint32(tc.n * laps) {
			i, _ := p.choose(start, nil)
			got[i]++
		}
		want := laps * tc.n / in
		for i, g := range got {
			if out[i] && g != 0 {
				t.Errorf("n=%d ejected %v: ejected endpoint %d picked %d times", tc.n, tc.ejected, i, g)
			}
			if !out[i] && g != want {
				t.Errorf("n=%d ejected %v: endpoint %d picked %d times, want %d (all picks: %v)", tc.n, tc.ejected, i, g, want, got)
			}
		}
	}
}
