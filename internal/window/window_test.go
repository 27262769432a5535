package window

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func counts(w *Window) [2]uint32 {
	s, f := w.Counts()
	return [2]uint32{s, f}
}

func TestRolls(t *testing.T) {
	w := New(10, 100, 0) // 10 buckets of 100ns: a 1µs window
	for range 6 {
		w.Add(0, false)
	}
	w.Add(50, true)
	if got := counts(&w); got != [2]uint32{6, 1} {
		t.Fatalf("counts = %v, want [6 1]", got)
	}
	w.Add(950, true) // t=950: bucket 9, the window still holds bucket 0
	if got := counts(&w); got != [2]uint32{6, 2} {
		t.Fatalf("counts at 950 = %v, want [6 2]", got)
	}
	w.Add(1000, true) // bucket 10 replaces bucket 0
	if got := counts(&w); got != [2]uint32{0, 2} {
		t.Fatalf("counts at 1000 = %v, want [0 2] (bucket 0 left)", got)
	}
	w.Add(1999, false) // bucket 19: buckets up to 9 left
	if got := counts(&w); got != [2]uint32{1, 1} {
		t.Fatalf("counts at 1999 = %v, want [1 1]", got)
	}
	w.Add(5000, false) // a whole window later: only the new outcome
	if got := counts(&w); got != [2]uint32{1, 0} {
		t.Fatalf("counts at 5000 = %v, want [1 0]", got)
	}
}

func TestEarlierTimeLandsInNewestBucket(t *testing.T) {
	w := New(2, 100, 1000)
	w.Add(1000, true)
	w.Add(500, true) // before the newest bucket: counted in it
	w.Add(1100, false)
	if got := counts(&w); got != [2]uint32{1, 2} {
		t.Fatalf("counts = %v, want [1 2]", got)
	}
	w.Add(1200, false) // bucket 12 replaces bucket 10, which held both failures
	if got := counts(&w); got != [2]uint32{2, 0} {
		t.Fatalf("counts = %v, want [2 0]", got)
	}
}

func TestResetAndSetWidth(t *testing.T) {
	w := New(10, 100, 0)
	w.Add(10, true)
	w.Reset(20)
	if got := counts(&w); got != [2]uint32{} {
		t.Fatalf("counts after Reset = %v", got)
	}
	w.Add(30, true)
	w.SetWidth(1000, 40)
	if got := counts(&w); got != [2]uint32{} {
		t.Fatalf("counts after SetWidth = %v", got)
	}
	w.Add(9_999, true) // bucket 9 of the new width: still in the window
	w.Add(40, false)   // earlier than the newest bucket: lands in bucket 9
	if got := counts(&w); got != [2]uint32{1, 1} {
		t.Fatalf("counts = %v, want [1 1]", got)
	}
	w.Add(10_000, false) // bucket 10 replaces the empty bucket 0; the others sit in bucket 9
	if got := counts(&w); got != [2]uint32{2, 1} {
		t.Fatalf("counts = %v, want [2 1]", got)
	}
}

func TestNewRejectsBadShape(t *testing.T) {
	for _, tc := range []struct{ n, width int64 }{{0, 1}, {1, 0}, {-1, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d, %d) did not panic", tc.n, tc.width)
				}
			}()
			New(int(tc.n), tc.width, 0)
		}()
	}
}

func TestNoAllocs(t *testing.T) {
	w := New(10, 100, 0)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() { now += 37; w.Add(now, now%3 == 0); w.Counts() }); n != 0 {
		t.Errorf("Add+Counts: %v allocs, want 0", n)
	}
}
