package interceptors

import (
	"fmt"
	"strings"
	"time"
)

// String describes p in one line of values, e.g.
//
//	MaxAttempts 3, RetryCodes [DeadlineExceeded Unavailable], Backoff exponential(50ms × 2^(n-1), max 2s, shortened by up to 20%),
//	PerAttemptTimeout none, Timeout 10s, Hedging off, Breaker on, RetryBudget 100 tokens, 1 back per success (retries stop at 50)
//
// so that fmt's %v and %+v print values, not pointers.
func (p ResolvedPolicy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "MaxAttempts %d, RetryCodes %v, Backoff %v, PerAttemptTimeout %s, Timeout %s, Hedging ",
		p.MaxAttempts, p.RetryCodes, p.Backoff, orNone(p.PerAttemptTimeout), orNone(p.Timeout))
	if p.Hedging != nil {
		b.WriteString(p.Hedging.String())
	} else {
		b.WriteString("off")
	}
	b.WriteString(", Breaker ")
	b.WriteString(onOff(p.Breaker))
	b.WriteString(", RetryBudget ")
	if p.RetryBudget != nil {
		b.WriteString(p.RetryBudget.String())
	} else {
		b.WriteString("off")
	}
	return b.String()
}

// String describes h, e.g. "up to 2 in flight, the next after 25ms" or,
// with a Percentile, "up to 3 in flight, the next after p95 (25ms until
// known)".
func (h HedgePolicy) String() string {
	if h.Percentile > 0 {
		return fmt.Sprintf("up to %d in flight, the next after p%g (%v until known)", h.MaxAttempts, h.Percentile*100, h.Delay)
	}
	return fmt.Sprintf("up to %d in flight, the next after %v", h.MaxAttempts, h.Delay)
}

func orNone(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
