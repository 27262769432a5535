package telemetry

import (
	"context"
	"log/slog"
)

// limitStep is the least move of a concurrency limit that is worth a
// record, besides the factor of two: at a limit of a few, one step of the
// limiter halves or doubles it.
const limitStep = 4

// LimitLog returns the limiter.Config.OnLimitChange hook of the
// concurrency limiter of target (and method, for limiters keyed by
// method; "" otherwise), whose least limit is min: it logs the changes
// worth knowing, and nil is returned when logging is off. They are:
//
//   - MsgLimitFell (Warn): the limit fell to half or less of its highest
//     since the last record (or since it started), and by limitStep or
//     more: the downstream takes longer the more this client sends it —
//     it is saturated or slowing down;
//   - MsgLimitMinimum (Warn): the limit reached min: attempts that time
//     out, or a downstream that serves little more than one at a time,
//     drive it there;
//   - MsgLimitRecovered (Info): after either, the limit rose back to twice
//     its lowest since, and by limitStep or more.
//
// A limit that drifts by small steps is not logged, and a limit that is
// not used does not rise (see package limiter), so a downstream that
// recovered while this client's demand stayed low is not reported as
// recovered. Records are rate limited per limiter as call records are per
// target. The hook keeps its state unguarded: the limiter calls it one
// change at a time.
func (t *Recorder) LimitLog(target, method string, min int) func(from, to int) {
	if t.s == nil || t.s.log == nil {
		return nil
	}
	l := &limitLog{lg: t.s.log, target: target, method: method, min: min, key: "limiter " + target + " " + method}
	return l.change
}

// limitLog is what LimitLog's hook keeps of one limiter.
type limitLog struct {
	lg             *logger
	target, method string
	key            string // of the rate limit
	min            int
	// fell: a fall was recorded, and no recovery since. ref is, while
	// fell, the lowest limit since that record, else the highest since
	// the last record (0 until the first change: the initial limit).
	fell bool
	ref  int
}

func (l *limitLog) change(from, to int) {
	if l.ref == 0 {
		l.ref = from
	}
	switch {
	case to <= l.min && from > l.min && !(l.fell && l.ref <= l.min): // not back at a minimum already reported
		l.log(slog.LevelWarn, MsgLimitMinimum, to, from)
		l.fell, l.ref = true, to
	case !l.fell && to > l.ref:
		l.ref = to
	case !l.fell && 2*to <= l.ref && l.ref-to >= limitStep:
		l.log(slog.LevelWarn, MsgLimitFell, to, l.ref)
		l.fell, l.ref = true, to
	case l.fell && to < l.ref:
		l.ref = to
	case l.fell && to >= 2*l.ref && to-l.ref >= limitStep:
		l.log(slog.LevelInfo, MsgLimitRecovered, to, l.ref)
		l.fell, l.ref = false, to
	}
}

func (l *limitLog) log(level slog.Level, msg string, limit, from int) {
	l.lg.logLimited(context.Background(), l.key, level, msg, func(attrs []slog.Attr) []slog.Attr {
		attrs = append(attrs, slog.String(LogTarget, l.target))
		if l.method != "" {
			attrs = append(attrs, slog.String(LogMethod, l.method))
		}
		return append(attrs, slog.Int(LogLimit, limit), slog.Int(LogFrom, from))
	})
}
