package breaker

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"
)

// maxBuckets bounds Config.Buckets: each bucket costs 8 bytes per key.
const maxBuckets = 1000

// Config configures a [Set]. The zero value of every field means "use the
// default" listed in [DefaultConfig], so Config{} is the default breaker;
// negative, NaN or out-of-range values are rejected by [Config.Validate]
// (and so by [NewSet]) with an error naming the field and the value, never
// silently replaced.
//
// A closed breaker opens when either rule below holds after a failure:
//
//   - window rule: within the rolling Window there were at least MinRequests
//     counted outcomes (successes + failures; excluded outcomes are not
//     counted) and failures/(successes+failures) >= FailureRatio;
//   - consecutive rule: ConsecutiveFailures failures in a row (successes reset
//     the run, excluded outcomes neither extend nor reset it).
//
// Set MinRequests or ConsecutiveFailures to math.MaxUint32 to switch a rule
// off. See the package documentation for why the defaults are what they are.
type Config struct {
	// Window is the span of the rolling window the window rule looks at.
	// Zero means 10s.
	Window time.Duration
	// Buckets is how many steps the window rolls in: outcomes older than
	// Window leave it one bucket (Window/Buckets) at a time, so the rule sees
	// between Window-Window/Buckets and Window of history. Zero means 10;
	// at most 1000.
	Buckets int
	// MinRequests is the least number of counted outcomes in the window
	// before the window rule may trip. Zero means 50.
	MinRequests uint32
	// FailureRatio is the failure share in (0,1] at which the window rule
	// trips. Zero means 0.7.
	FailureRatio float64
	// ConsecutiveFailures trips the breaker after that many failures in a
	// row, whatever the rate. Zero means 25.
	ConsecutiveFailures uint32
	// OpenTimeout is how long a breaker that trips stays open, rejecting
	// attempts, before it turns half-open and lets probes through. Each
	// probe that fails reopens it for OpenMultiplier times longer, up to
	// MaxOpenTimeout, and every open period is shortened at random by up to
	// OpenJitter: the n-th opening since the breaker last closed lasts
	//
	//	d(n) = max(OpenTimeout, min(MaxOpenTimeout, OpenTimeout × OpenMultiplier^(n−1)))
	//
	// shortened by d(n)×OpenJitter×r, r uniform in [0, 1) from Rand. An
	// OpenTimeout above MaxOpenTimeout is therefore a fixed open period.
	// Zero means 25ms. See the package documentation for why.
	OpenTimeout time.Duration
	// MaxOpenTimeout is how long the open period may grow while probes
	// fail. Zero means 100ms.
	MaxOpenTimeout time.Duration
	// OpenMultiplier is the factor by which the open period grows per
	// failed probe. Zero means 2; otherwise it must be a finite number
	// >= 1 (1 keeps every open period at OpenTimeout).
	OpenMultiplier float64
	// OpenJitter is the fraction by which each open period is shortened at
	// random, never lengthened, so that breakers opened together do not
	// probe in lockstep: a period d is drawn from (d×(1−OpenJitter), d].
	// Zero means 0.1; backoff.NoJitter turns jitter off (the same value
	// and meaning as backoff.Config.Jitter); any other value must be in
	// (0, 1].
	OpenJitter float64
	// HalfOpenProbes is how many probe attempts a half-open breaker admits at
	// once once its first probe, which goes alone, has succeeded; that many
	// successes in a row close it, one failure reopens it. A probe whose
	// outcome is excluded frees its slot. Zero means 3.
	HalfOpenProbes uint32
	// MaxKeys caps how many breakers the Set keeps. Zero means 10,000.
	MaxKeys int
	// IdleTimeout is how long a breaker may go unused before it may be
	// evicted. Zero means 10 minutes.
	IdleTimeout time.Duration
	// IsFailure classifies a non-nil, non-excluded outcome: true counts it
	// as a failure, false as a success (the server answered). nil means
	// DefaultIsFailure. It is not called for nil errors (always a success).
	IsFailure func(err error) bool
	// IsExcluded reports whether a non-nil outcome is to be ignored (the
	// caller gave up). It is consulted before IsFailure. nil means
	// DefaultIsExcluded.
	IsExcluded func(err error) bool
	// OnStateChange, if not nil, is told about every state transition of
	// every breaker in the Set, in order, never concurrently with itself,
	// and never under a lock of the Set: it may call back into the Set.
	// See the package documentation.
	OnStateChange func(key string, from, to State)
	// Rand returns numbers in [0, 1) that jitter the open periods. nil
	// means a source of the Set's own, seeded at random when the Set is
	// created (the global source is never used). The Set serialises its
	// calls, so the Float64 method of a seeded *rand.Rand may be given as
	// is; values outside [0, 1) are clamped into [0, 1] (NaN counts as 0).
	Rand func() float64
	// Shared, if not nil, shares the Set's breakers with other Sets (a
	// fleet of processes) through a store such as Redis; NewSet attaches it.
	// nil keeps every breaker local. See [Shared].
	Shared Shared
	// Quorum is, with a Shared, the share of the members that called a key
	// recently that must see it failing for the whole fleet to open: more
	// than Quorum of them, all of them at most (a lone caller is its own
	// quorum). Each member counts once, whatever its call rate; one whose
	// own outcomes trip the rule without a quorum behind it opens only its
	// own breaker. Zero means 0.5, a majority; otherwise it must be in
	// (0, 1]: 1 asks for every member, a value below 1/n for a fleet of n
	// lets any one member open the fleet. Ignored without a Shared. See the
	// package documentation for the rule and why a majority.
	Quorum float64
}

// DefaultConfig returns the configuration a zero Config stands for. It is the
// one place the defaults live.
func DefaultConfig() Config {
	return Config{
		Window:              10 * time.Second,
		Buckets:             10,
		MinRequests:         50,
		FailureRatio:        0.7,
		ConsecutiveFailures: 25,
		OpenTimeout:         25 * time.Millisecond,
		MaxOpenTimeout:      100 * time.Millisecond,
		OpenMultiplier:      2,
		OpenJitter:          0.1,
		HalfOpenProbes:      3,
		MaxKeys:             10_000,
		IdleTimeout:         10 * time.Minute,
		Quorum:              0.5,
		// IsFailure and IsExcluded stay nil: DefaultIsFailure and
		// DefaultIsExcluded, classified in a single pass.
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Window = cmp.Or(c.Window, d.Window)
	c.Buckets = cmp.Or(c.Buckets, d.Buckets)
	c.MinRequests = cmp.Or(c.MinRequests, d.MinRequests)
	c.FailureRatio = cmp.Or(c.FailureRatio, d.FailureRatio)
	c.ConsecutiveFailures = cmp.Or(c.ConsecutiveFailures, d.ConsecutiveFailures)
	c.OpenTimeout = cmp.Or(c.OpenTimeout, d.OpenTimeout)
	c.MaxOpenTimeout = cmp.Or(c.MaxOpenTimeout, d.MaxOpenTimeout)
	c.OpenMultiplier = cmp.Or(c.OpenMultiplier, d.OpenMultiplier)
	c.OpenJitter = cmp.Or(c.OpenJitter, d.OpenJitter)
	c.HalfOpenProbes = cmp.Or(c.HalfOpenProbes, d.HalfOpenProbes)
	c.MaxKeys = cmp.Or(c.MaxKeys, d.MaxKeys)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, d.IdleTimeout)
	c.Quorum = cmp.Or(c.Quorum, d.Quorum)
	if c.IsFailure == nil {
		c.IsFailure = DefaultIsFailure
	}
	if c.IsExcluded == nil {
		c.IsExcluded = DefaultIsExcluded
	}
	return c
}

// Validate reports every invalid field, joined with errors.Join; each error
// wraps [ErrInvalidConfig] and names the field and the value, e.g.
//
//	breaker: invalid config: FailureRatio must be in (0,1] (0 means default), got 1.5
//
// Zero values are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, invalid(format, args...)) }
	windowOK := c.Window >= 0
	if !windowOK {
		bad("Window must be >= 0 (0 means default), got %v", c.Window)
	}
	bucketsOK := c.Buckets >= 0 && c.Buckets <= maxBuckets
	if !bucketsOK {
		bad("Buckets must be in [0,%d] (0 means default), got %d", maxBuckets, c.Buckets)
	}
	if windowOK && bucketsOK {
		if d := c.withDefaults(); d.Window/time.Duration(d.Buckets) <= 0 {
			bad("Window (%v) must be at least Buckets (%d) nanoseconds", d.Window, d.Buckets)
		}
	}
	if !(c.FailureRatio >= 0 && c.FailureRatio <= 1) { // also NaN
		bad("FailureRatio must be in (0,1] (0 means default), got %v", c.FailureRatio)
	}
	nonNegative := func(field string, d time.Duration) {
		if d < 0 {
			bad("%s must be >= 0 (0 means default), got %v", field, d)
		}
	}
	nonNegative("OpenTimeout", c.OpenTimeout)
	nonNegative("MaxOpenTimeout", c.MaxOpenTimeout)
	if math.IsNaN(c.OpenMultiplier) || math.IsInf(c.OpenMultiplier, 0) || (c.OpenMultiplier != 0 && c.OpenMultiplier < 1) {
		bad("OpenMultiplier must be a finite number >= 1 (0 means default), got %v", c.OpenMultiplier)
	}
	if !(c.OpenJitter >= 0 && c.OpenJitter <= 1) { // also NaN
		bad("OpenJitter must be in [0, 1] (0 means default, backoff.NoJitter none), got %v", c.OpenJitter)
	}
	if c.MaxKeys < 0 {
		bad("MaxKeys must be >= 0 (0 means default), got %d", c.MaxKeys)
	}
	nonNegative("IdleTimeout", c.IdleTimeout)
	if !(c.Quorum >= 0 && c.Quorum <= 1) { // also NaN
		bad("Quorum must be in (0,1] (0 means default), got %v", c.Quorum)
	}
	return errors.Join(errs...)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
