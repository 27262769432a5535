package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Log messages. Every record carries the attributes named by the Log
// constants; none carries a payload, a metadata value or a status message
// (a server may echo request data in it).
const (
	// MsgBreakerOpened (Warn), MsgBreakerHalfOpen and MsgBreakerClosed
	// (Info) report a breaker's transitions, with LogBreaker and LogFrom.
	MsgBreakerOpened   = "resilience: circuit breaker opened"
	MsgBreakerHalfOpen = "resilience: circuit breaker half-open"
	MsgBreakerClosed   = "resilience: circuit breaker closed"
	// MsgGaveUp (Warn) reports a call that failed after retries: every
	// attempt it was allowed failed.
	MsgGaveUp = "resilience: call failed after retries"
	// MsgStopped (Info) reports a failed call whose retries a policy
	// stopped (LogReason): the retry budget, a breaker's refusal of a
	// retry, or the server's pushback.
	MsgStopped = "resilience: call failed, retries stopped"
	// MsgLimitFell (Warn), MsgLimitMinimum (Warn) and MsgLimitRecovered
	// (Info) report the changes of a concurrency limit worth knowing (see
	// Recorder.LimitLog): it fell to half or less of its highest since the
	// last such record (LogFrom); it reached its least value (LogFrom: the
	// limit before); after either, it rose back to twice its lowest since
	// (LogFrom). They carry LogTarget, LogMethod for limiters keyed by
	// method, and LogLimit.
	MsgLimitFell      = "resilience: concurrency limit fell"
	MsgLimitMinimum   = "resilience: concurrency limit at its minimum"
	MsgLimitRecovered = "resilience: concurrency limit recovered"
)

// Log attribute keys.
const (
	LogMethod     = "method"     // full method name
	LogTarget     = "target"     // the connection's target
	LogAttempts   = "attempts"   // attempts made
	LogCode       = "code"       // status code the call ended with: "UNAVAILABLE"
	LogReason     = "reason"     // why retries stopped: ReasonBudget, ReasonBreaker, ReasonPushback
	LogSuppressed = "suppressed" // records of this target dropped by the rate limit since the last one
	LogBreaker    = "breaker"    // the breaker's key
	LogFrom       = "from"       // the state a breaker left; the limit a concurrency limit moved from
	LogLimit      = "limit"      // a concurrency limit, after its change
)

// Reasons, the values of LogReason.
const (
	ReasonBudget   = "retry budget exhausted"
	ReasonBreaker  = "circuit breaker refused a retry"
	ReasonPushback = "server pushback"
	ReasonLimiter  = "concurrency limit refused a retry"
	ReasonThrottle = "client-side throttling refused a retry"
)

// Call records are rate limited per target: at most logBurst in each
// logWindow; the next one after a window with drops reports their number.
const (
	logBurst      = 5
	logWindow     = 10 * time.Second
	maxLogTargets = 1024 // beyond it, new targets share one limit
)

// reason codes, kept in callLog.reason.
const (
	reasonNone int32 = iota
	reasonBudget
	reasonBreaker
	reasonPushback
	reasonLimiter
	reasonThrottle
)

var reasonText = [...]string{reasonBudget: ReasonBudget, reasonBreaker: ReasonBreaker, reasonPushback: ReasonPushback,
	reasonLimiter: ReasonLimiter, reasonThrottle: ReasonThrottle}

// logger logs for one Recorder.
type logger struct {
	l *slog.Logger

	mu      sync.Mutex
	targets map[string]*logLimit
	ignored map[ignoredKey]struct{} // settings logged by PolicyIgnored
}

// logLimit is the rate limit of one target's call records.
type logLimit struct {
	start      time.Time // of the current window
	n          int       // records in the current window
	suppressed int       // records dropped since the last one logged
}

func newLogger(l *slog.Logger) *logger {
	return &logger{l: l, targets: make(map[string]*logLimit)}
}

// allow reports whether a call record of target may be logged now, and
// how many were dropped since the last one.
func (g *logger) allow(target string) (ok bool, suppressed int) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	lim := g.targets[target]
	if lim == nil {
		if len(g.targets) >= maxLogTargets {
			target = ""
			lim = g.targets[target]
		}
		if lim == nil {
			lim = &logLimit{start: now}
			g.targets[target] = lim
		}
	}
	if now.Sub(lim.start) >= logWindow {
		lim.start, lim.n = now, 0
	}
	if lim.n >= logBurst {
		lim.suppressed++
		return false, 0
	}
	lim.n++
	suppressed, lim.suppressed = lim.suppressed, 0
	return true, suppressed
}

// breakerTransition logs a breaker's transition; they are not rate limited:
// a breaker opens at most once per open timeout.
func (g *logger) breakerTransition(key string, from, to int) {
	level, msg := slog.LevelInfo, MsgBreakerClosed
	switch to {
	case BreakerOpen:
		level, msg = slog.LevelWarn, MsgBreakerOpened
	case BreakerHalfOpen:
		msg = MsgBreakerHalfOpen
	}
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	g.l.LogAttrs(ctx, level, msg, slog.String(LogBreaker, key), slog.String(LogFrom, breakerStateName(from)))
}

func breakerStateName(state int) string {
	switch state {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// callLog is what logging keeps of a call. It is held by value in Call,
// so logging a call costs no allocation; its counters are updated
// atomically, since a Call's hooks may run on the attempts' goroutines.
type callLog struct {
	lg             *logger // nil: logging off
	ctx            context.Context
	method, target string
	attempts       int32 // highest attempt number started
	reason         int32
}

// attempt notes that attempt n started.
func (l *callLog) attempt(n int) {
	if l.lg == nil {
		return
	}
	for {
		cur := atomic.LoadInt32(&l.attempts)
		if int32(n) <= cur || atomic.CompareAndSwapInt32(&l.attempts, cur, int32(n)) {
			return
		}
	}
}

// stopped notes why the call's retries stopped.
func (l *callLog) stopped(reason int32) {
	if l.lg != nil {
		atomic.StoreInt32(&l.reason, reason)
	}
}

// end logs a call that ended with err, if it is worth a record: it failed
// after retries (Warn), or a policy stopped its retries (Info). A failure
// of a single attempt with nothing stopping retries (a code that is not
// retried, MaxAttempts 1), a breaker refusing the first attempt (the
// breaker's opening was logged) and calls the caller cancelled are not
// logged: the caller has the error, and the metrics count them.
func (l *callLog) end(err error) {
	code := status.Code(err)
	if code == codes.Canceled {
		return
	}
	attempts := int(atomic.LoadInt32(&l.attempts))
	reason := atomic.LoadInt32(&l.reason)
	if attempts == 0 {
		// Refused before its first attempt.
		return
	}
	level, msg := slog.LevelInfo, MsgStopped
	switch {
	case reason != reasonNone:
	case attempts > 1:
		level, msg = slog.LevelWarn, MsgGaveUp
	default:
		return
	}
	l.lg.logLimited(l.ctx, l.target, level, msg, func(attrs []slog.Attr) []slog.Attr {
		attrs = append(attrs,
			slog.String(LogMethod, l.method),
			slog.String(LogTarget, l.target),
			slog.Int(LogAttempts, attempts),
			slog.String(LogCode, codeString(code)),
		)
		if reason != reasonNone {
			attrs = append(attrs, slog.String(LogReason, reasonText[reason]))
		}
		return attrs
	})
}

// logLimited logs msg at level unless the logger's rate limit for key
// drops it; attrs appends the record's attributes, and is called only for
// a record that is logged. The count of records dropped since the last
// one goes last (LogSuppressed).
func (g *logger) logLimited(ctx context.Context, key string, level slog.Level, msg string, attrs func([]slog.Attr) []slog.Attr) {
	if !g.l.Enabled(ctx, level) {
		return
	}
	ok, suppressed := g.allow(key)
	if !ok {
		return
	}
	a := attrs(make([]slog.Attr, 0, 6))
	if suppressed > 0 {
		a = append(a, slog.Int(LogSuppressed, suppressed))
	}
	g.l.LogAttrs(ctx, level, msg, a...)
}
