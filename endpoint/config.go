package endpoint

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate],
// [ServiceConfig], [DialOption] and the policy's JSON parser return.
var ErrInvalidConfig = errors.New("endpoint: invalid config")

// buckets is how many steps the rolling window of the failure-ratio rule
// rolls in; each costs 8 bytes per endpoint.
const buckets = 10

// minWindow bounds Config.Window from below so that every bucket spans at
// least 100µs.
const minWindow = time.Millisecond

// Config configures the policy. The zero value of every field means "use the
// default" listed in [DefaultConfig]; negative, NaN or out-of-range values
// are rejected by [Config.Validate] (and so by [ServiceConfig] and
// [DialOption]), never silently replaced.
//
// An endpoint in service is ejected when, after one of its attempts failed,
// either rule holds and the share of ejected endpoints allows it:
//
//   - failure-ratio rule: within the rolling Window the endpoint had at least
//     MinRequests counted outcomes and failures/(successes+failures) >=
//     FailureRatio;
//   - consecutive rule: ConsecutiveFailures failures in a row (a success
//     resets the run; excluded outcomes neither extend nor reset it).
//
// Set MinRequests or ConsecutiveFailures to math.MaxInt32 to switch a rule
// off. See the package documentation for why the defaults are what they are.
type Config struct {
	// Window is the span of the rolling window the failure-ratio rule looks
	// at; it rolls in 10 steps of Window/10. Zero means 10s; at least 1ms.
	Window time.Duration
	// MinRequests is the least number of counted outcomes of one endpoint
	// within the window before the failure-ratio rule may eject it. Zero
	// means 50; at most math.MaxInt32.
	MinRequests int
	// FailureRatio is the failure share in (0,1] at which the failure-ratio
	// rule ejects. Zero means 0.7.
	FailureRatio float64
	// ConsecutiveFailures ejects an endpoint after that many failures in a
	// row, whatever the rate. Zero means 20; at most math.MaxInt32.
	ConsecutiveFailures int
	// BaseEjectionTime is how long the first ejection of an endpoint lasts;
	// the k-th ejection in a row lasts k x BaseEjectionTime, at most
	// MaxEjectionTime. The count k drops by one for every BaseEjectionTime
	// the endpoint spends in service. Zero means 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps one ejection. Zero means 5 minutes; it must not be
	// below BaseEjectionTime (after defaults are applied).
	MaxEjectionTime time.Duration
	// MaxEjectedRatio is the largest share in (0,1] of a target's endpoints
	// that may be ejected at once: at most floor(n x MaxEjectedRatio) of n
	// endpoints, but at least one when n >= 2 (and none when n == 1, since
	// there would be nowhere else to send the call). Zero means 0.2.
	MaxEjectedRatio float64
	// OnEject, if not nil, is told about every ejection (ejected == true) and
	// every return to service (ejected == false) of every endpoint of every
	// channel using this configuration: target is the channel's canonical
	// target (as grpc.ClientConn.CanonicalTarget reports it, e.g.
	// "dns:///orders:8443"), addr the endpoint's address (its addresses
	// joined by "," when it has several). An endpoint removed by the
	// resolver, or left when the channel closes, while ejected reports
	// ejected == false. Calls for one channel are made in order, never
	// concurrently with each other and never under a lock of the policy.
	// OnEject reaches the policy only through [DialOption]: JSON cannot
	// carry a func.
	OnEject func(target, addr string, ejected bool)

	// onBuild is told about every balancer built with this configuration;
	// tests set it to reach the balancer.
	onBuild func(*lbBalancer)
}

// hasFuncs reports whether c holds funcs, which JSON cannot carry: they
// reach the policy through DialOption's process-local handle.
func (c Config) hasFuncs() bool { return c.OnEject != nil || c.onBuild != nil }

// DefaultConfig returns the configuration a zero Config stands for, as a
// fresh value. It is the one place the defaults live.
func DefaultConfig() Config {
	return Config{
		Window:              10 * time.Second,
		MinRequests:         50,
		FailureRatio:        0.7,
		ConsecutiveFailures: 20,
		BaseEjectionTime:    30 * time.Second,
		MaxEjectionTime:     5 * time.Minute,
		MaxEjectedRatio:     0.2,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Window = cmp.Or(c.Window, d.Window)
	c.MinRequests = cmp.Or(c.MinRequests, d.MinRequests)
	c.FailureRatio = cmp.Or(c.FailureRatio, d.FailureRatio)
	c.ConsecutiveFailures = cmp.Or(c.ConsecutiveFailures, d.ConsecutiveFailures)
	c.BaseEjectionTime = cmp.Or(c.BaseEjectionTime, d.BaseEjectionTime)
	c.MaxEjectionTime = cmp.Or(c.MaxEjectionTime, d.MaxEjectionTime)
	c.MaxEjectedRatio = cmp.Or(c.MaxEjectedRatio, d.MaxEjectedRatio)
	return c
}

// fieldNames maps a Config field to its name in one notation: the Go field
// name for Validate, the JSON key for the policy's JSON parser.
type fieldNames func(goName string) string

func goNames(n string) string { return n }

// Validate reports every invalid field, joined with errors.Join; each error
// wraps [ErrInvalidConfig] and names the field, e.g.
//
//	endpoint: invalid config: FailureRatio must be in (0,1] (0 means default), got 1.5
//
// Zero values are valid (they mean the default).
func (c Config) Validate() error { return c.validate(goNames) }

func (c Config) validate(name fieldNames) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalidConfig, name(field)}, args...)...))
	}
	if c.Window < 0 || (c.Window > 0 && c.Window < minWindow) {
		bad("Window", "must be 0 (default) or at least %v, got %v", minWindow, c.Window)
	}
	if c.MinRequests < 0 || c.MinRequests > math.MaxInt32 {
		bad("MinRequests", "must be in [0,%d] (0 means default), got %d", math.MaxInt32, c.MinRequests)
	}
	if math.IsNaN(c.FailureRatio) || c.FailureRatio < 0 || c.FailureRatio > 1 {
		bad("FailureRatio", "must be in (0,1] (0 means default), got %v", c.FailureRatio)
	}
	if c.ConsecutiveFailures < 0 || c.ConsecutiveFailures > math.MaxInt32 {
		bad("ConsecutiveFailures", "must be in [0,%d] (0 means default), got %d", math.MaxInt32, c.ConsecutiveFailures)
	}
	baseOK, maxOK := c.BaseEjectionTime >= 0, c.MaxEjectionTime >= 0
	if !baseOK {
		bad("BaseEjectionTime", "must be >= 0 (0 means default), got %v", c.BaseEjectionTime)
	}
	if !maxOK {
		bad("MaxEjectionTime", "must be >= 0 (0 means default), got %v", c.MaxEjectionTime)
	}
	if baseOK && maxOK {
		if d := c.withDefaults(); d.MaxEjectionTime < d.BaseEjectionTime {
			bad("MaxEjectionTime", "(%v) must be >= %s (%v)", d.MaxEjectionTime, name("BaseEjectionTime"), d.BaseEjectionTime)
		}
	}
	if math.IsNaN(c.MaxEjectedRatio) || c.MaxEjectedRatio < 0 || c.MaxEjectedRatio > 1 {
		bad("MaxEjectedRatio", "must be in (0,1] (0 means default), got %v", c.MaxEjectedRatio)
	}
	return errors.Join(errs...)
}
