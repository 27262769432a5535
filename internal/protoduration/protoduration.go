package protoduration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxSeconds is the largest google.protobuf.Duration, in seconds.
const maxSeconds = 315_576_000_000

// ErrNegative is wrapped by Parse's error for a negative duration: no
// duration of the library's configs may be negative.
var ErrNegative = errors.New("must be >= 0")

// Parse reads s, a non-negative google.protobuf.Duration in its JSON form:
// whole seconds and up to nine decimals, then "s". A duration beyond what
// time.Duration holds (about 292 years) but within the proto's range is
// math.MaxInt64: forever.
func Parse(s string) (time.Duration, error) {
	num, ok := strings.CutSuffix(s, "s")
	if !ok {
		return 0, fmt.Errorf("malformed duration %q: want seconds such as \"1.5s\"", s)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("%w, got %q", ErrNegative, s)
	}
	whole, frac, _ := strings.Cut(num, ".")
	const notDigits = "+-.eE _" // rejected here, with the grammar in the message
	if (whole == "" && frac == "") || strings.ContainsAny(whole, notDigits) || strings.ContainsAny(frac, notDigits) {
		return 0, fmt.Errorf("malformed duration %q: want seconds such as \"1.5s\"", s)
	}
	var sec, ns int64
	var err error
	if whole != "" {
		if sec, err = strconv.ParseInt(whole, 10, 64); err != nil || sec > maxSeconds {
			return 0, fmt.Errorf("malformed or out-of-range duration %q", s)
		}
	}
	if frac != "" {
		if len(frac) > 9 {
			return 0, fmt.Errorf("malformed duration %q: more than 9 decimals", s)
		}
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return 0, fmt.Errorf("malformed duration %q", s)
		}
		for range 9 - len(frac) {
			ns *= 10
		}
	}
	if sec > (math.MaxInt64-ns)/int64(time.Second) {
		return math.MaxInt64, nil
	}
	return time.Duration(sec)*time.Second + time.Duration(ns), nil
}

// Format writes d, which must not be negative, in the JSON form Parse
// reads, with 0, 3, 6 or 9 decimals as protobuf's JSON encoding does:
// "300s", "1.500s", "0.000100s".
func Format(d time.Duration) string {
	sec, ns := int64(d/time.Second), int64(d%time.Second)
	switch {
	case ns == 0:
		return fmt.Sprintf("%ds", sec)
	case ns%1_000_000 == 0:
		return fmt.Sprintf("%d.%03ds", sec, ns/1_000_000)
	case ns%1_000 == 0:
		return fmt.Sprintf("%d.%06ds", sec, ns/1_000)
	}
	return fmt.Sprintf("%d.%09ds", sec, ns)
}
