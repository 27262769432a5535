package protoduration

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0}, {"1s", time.Second}, {"1.5s", 1500 * time.Millisecond}, {".5s", 500 * time.Millisecond},
		{"1.s", time.Second}, {"0.000000001s", 1}, {"300s", 5 * time.Minute}, {"0.100s", 100 * time.Millisecond},
		{"315576000000s", math.MaxInt64}, {"9223372036.854775807s", math.MaxInt64}, {"9223372036.854775808s", math.MaxInt64},
	} {
		if got, err := Parse(tc.in); err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "s", "1", "1m", "1m30s", "100ms", "1h", "-1s", "+1s", "1e3s", "1.0000000001s",
		"315576000001s", ". s", ".s", "1 s", "1_000s", "0x10s", "1.-5s", "NaNs", "Infs"} {
		if d, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, d)
		}
	}
	if _, err := Parse("-1.5s"); !errors.Is(err, ErrNegative) {
		t.Errorf("Parse(-1.5s): %v, want ErrNegative", err)
	}
	if _, err := Parse("1m"); err == nil || !strings.Contains(err.Error(), `"1.5s"`) {
		t.Errorf("Parse(1m): %v, want an error showing the form wanted", err)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {time.Second, "1s"}, {5 * time.Minute, "300s"}, {1500 * time.Millisecond, "1.500s"},
		{100 * time.Microsecond, "0.000100s"}, {1, "0.000000001s"}, {math.MaxInt64, "9223372036.854775807s"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRoundTrip: whatever Parse accepts, Format writes back to the same
// duration, and Parse reads every non-negative duration Format writes.
//
//	go test -run '^$' -fuzz FuzzRoundTrip -fuzztime 30s ./internal/protoduration/
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"0s", "1.5s", ".5s", "315576000000s", "1.000000001s", "1m", "-1s"} {
		f.Add(s, int64(0))
	}
	f.Add("", int64(math.MaxInt64))
	f.Add("", int64(1))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if d, err := Parse(s); err == nil {
			if d < 0 {
				t.Fatalf("Parse(%q) = %v, negative", s, d)
			}
			if again, err := Parse(Format(d)); err != nil || again != d {
				t.Fatalf("Parse(%q) = %v; Format gives %q, which parses as %v, %v", s, d, Format(d), again, err)
			}
		}
		if n < 0 {
			return
		}
		d := time.Duration(n)
		if got, err := Parse(Format(d)); err != nil || got != d {
			t.Fatalf("Format(%v) = %q parses as %v, %v", d, Format(d), got, err)
		}
	})
}
