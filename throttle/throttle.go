package throttle

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/grpc-resilience/resilience/internal/outcome"
	"github.com/grpc-resilience/resilience/internal/window"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] and [New]
// return.
var ErrInvalidConfig = errors.New("throttle: invalid config")

// ErrThrottled is matched (errors.Is) by every request a [Throttle]
// refused.
var ErrThrottled = errors.New("throttle: request throttled")

// Refusal is the error of a request a Throttle refused: it matches
// [ErrThrottled] and carries codes.Unavailable.
// It carries outcome.RefusalStatus's detail, so that a service passing it
// on to its caller passes it on as a refusal.
var Refusal = outcome.Refusal("throttle: request throttled: the downstream accepts too few requests", ErrThrottled)

// Config configures a [Throttle]. A zero field means the default listed in
// [DefaultConfig]; a negative, NaN, ±Inf or out-of-range value is rejected
// by [Config.Validate] (and so by [New]) with an error naming the field.
type Config struct {
	// K is how many requests per accepted one the client lets through
	// before it throttles: requests are refused with probability
	// max(0, (requests − K·accepts) / (requests + 1)). At least 1; zero
	// means 2.
	K float64
	// Window is how far back requests and accepts are counted, in 20
	// steps. Zero means 2s; at least 20ns, at most an hour.
	Window time.Duration
	// MaxProbability caps the probability of a refusal, in (0, 1]: however
	// few requests the downstream accepts, at least 1 − MaxProbability of
	// them go, and a downstream that accepts none is left to the circuit
	// breaker, which those requests open. Zero means 0.8 (as Envoy's
	// admission control).
	MaxProbability float64
}

// DefaultConfig returns the configuration a zero Config stands for, as a
// fresh value. It is the one place the defaults live.
func DefaultConfig() Config { return Config{K: 2, Window: 2 * time.Second, MaxProbability: 0.8} }

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.K = cmp.Or(c.K, d.K)
	c.Window = cmp.Or(c.Window, d.Window)
	c.MaxProbability = cmp.Or(c.MaxProbability, d.MaxProbability)
	return c
}

// Validate reports every invalid field, joined with errors.Join; each error
// wraps [ErrInvalidConfig] and names the field and the value. Zero values
// are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	if !(c.K == 0 || c.K >= 1 && !math.IsInf(c.K, 1)) { // also NaN
		bad("K must be >= 1 and finite (0 means default), got %v", c.K)
	}
	if !(c.MaxProbability >= 0 && c.MaxProbability <= 1) { // also NaN
		bad("MaxProbability must be in (0, 1] (0 means default), got %v", c.MaxProbability)
	}
	if c.Window != 0 && (c.Window < buckets || c.Window > time.Hour) {
		bad("Window must be in [%dns, 1h] (0 means default), got %v", buckets, c.Window)
	}
	return errors.Join(errs...)
}

// buckets is how many steps the window rolls in.
const buckets = 20

// Throttle is client-side adaptive throttling for one downstream (the
// Google SRE book's, chapter "Handling Overload"). See the package
// documentation. A Throttle is safe for concurrent use; create one with
// [New].
type Throttle struct {
	k    float64
	maxP float64

	epoch time.Time // the origin of the window's axis

	mu sync.Mutex
	// win counts the window's requests: accepted ones as successes, the
	// others (refused here, or failed) as failures.
	win window.Window
}

// New returns a Throttle configured by c, or an error wrapping
// [ErrInvalidConfig].
func New(c Config) (*Throttle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	return &Throttle{k: c.K, maxP: c.MaxProbability, epoch: time.Now(), win: window.New(buckets, int64(c.Window)/buckets, 0)}, nil
}

// now is the time on the window's axis: monotonic nanoseconds since New.
func (t *Throttle) now() int64 { return int64(time.Since(t.epoch)) }

// Allow reports whether a request may go: it is refused with the
// throttling probability, drawn with r, a number in [0, 1). A refused
// request counts as a request at once; one let through counts when its
// end is known ([Throttle.Done]), so that a burst of requests still in
// flight, answered or not, is not taken for requests not accepted.
func (t *Throttle) Allow(r float64) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.win.Advance(now)
	if r >= t.probabilityLocked() {
		return true
	}
	t.win.Add(now, true)
	return false
}

// Done counts a request that went as accepted (the downstream answered it)
// or not (it failed for the downstream's sake). A request whose end says
// nothing about the downstream (the caller gave up before it answered) is
// not counted at all: do not call Done for it.
func (t *Throttle) Done(accepted bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.win.Add(now, !accepted)
}

// Reset forgets every request and accept: the next request is let
// through. The interceptors reset a target's Throttle when a half-open
// breaker's probe succeeds, and when the target's connection, found down,
// is ready again: the outage the counts describe is over.
func (t *Throttle) Reset() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.win.Reset(now)
}

// Probability returns the probability with which the next request is
// refused.
func (t *Throttle) Probability() float64 {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.win.Advance(now)
	return t.probabilityLocked()
}

func (t *Throttle) probabilityLocked() float64 {
	acc, failed := t.win.Counts()
	requests := float64(acc) + float64(failed)
	return min(t.maxP, max(0, (requests-t.k*float64(acc))/(requests+1)))
}

// invalid is an error wrapping ErrInvalidConfig, as breaker's and
// backoff's.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
