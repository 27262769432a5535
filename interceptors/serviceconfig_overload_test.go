package interceptors

import (
	"strings"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

// The extension sets the concurrency limit and client-side throttling, and
// the breaker's recovery schedule; bad values are named by their path.
func TestServiceConfigOverloadSettings(t *testing.T) {
	m, err := New(WithServiceConfig(`{"resilience": {
		"concurrencyLimit": {"fixed": 8, "queue": "none", "perMethod": true},
		"throttle": {"k": 1.5, "window": "1s"},
		"breaker": {"maxOpenTimeout": "0.2s", "openMultiplier": 3, "openJitter": 0.2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if l := m.cfg.limiter; l == nil || l.Fixed != 8 || l.Queue != limiter.NoQueue || l.MaxLimit != 0 || !m.cfg.limiterMethod {
		t.Errorf("concurrency limit %+v (per method %v), want a bulkhead of 8 without a queue, per method", l, m.cfg.limiterMethod)
	}
	if th := m.cfg.throttle; th == nil || *th != (throttle.Config{K: 1.5, Window: time.Second}) {
		t.Errorf("throttle %+v, want K 1.5 over 1s", th)
	}
	if b := m.cfg.breaker; b.MaxOpenTimeout != 200*time.Millisecond || b.OpenMultiplier != 3 || b.OpenJitter != 0.2 {
		t.Errorf("breaker %+v, want the schedule from the JSON", b)
	}

	m, err = New(WithThrottle(throttle.Config{}), WithServiceConfig(`{"resilience": {"concurrencyLimit": false, "throttle": false}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.limiter != nil || m.cfg.throttle != nil {
		t.Errorf("limiter %+v, throttle %+v: want both off", m.cfg.limiter, m.cfg.throttle)
	}

	for js, want := range map[string]string{
		`{"resilience": {"concurrencyLimit": {"minLimit": 30, "maxLimit": 20}}}`: "resilience.concurrencyLimit: limiter: invalid config: MinLimit (30) must be <= MaxLimit (20)",
		`{"resilience": {"concurrencyLimit": {"queue": -3}}}`:                    "resilience.concurrencyLimit.queue: must be a non-negative integer",
		`{"resilience": {"concurrencyLimit": {"limit": 3}}}`:                     "resilience.concurrencyLimit.limit: unknown field",
		`{"resilience": {"concurrencyLimit": true}}`:                             "resilience.concurrencyLimit: must be false or an object",
		`{"resilience": {"throttle": {"k": 0.5}}}`:                               "resilience.throttle: throttle: invalid config: K must be >= 1",
		`{"resilience": {"breaker": {"openJitter": 2}}}`:                         "resilience.breaker: breaker: invalid config: OpenJitter",
	} {
		_, err := New(WithServiceConfig(js))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("WithServiceConfig(%s): %v, want an error containing %q", js, err, want)
		}
	}
}

// The extension's Middleware-wide settings are read by New only.
func TestSetServiceConfigKeepsTheOverloadSettings(t *testing.T) {
	m := MustNew(WithServiceConfig(`{"resilience": {"concurrencyLimit": {"fixed": 8}}}`))
	for _, js := range []string{
		`{"resilience": {"concurrencyLimit": {"fixed": 9}}}`,
		`{"resilience": {"concurrencyLimit": {"fixed": 8}, "throttle": {}}}`,
	} {
		if err := m.SetServiceConfig(js); err == nil || !strings.Contains(err.Error(), "set by New only") {
			t.Errorf("SetServiceConfig(%s): %v, want refused: set by New only", js, err)
		}
	}
	if err := m.SetServiceConfig(`{"resilience": {"concurrencyLimit": {"fixed": 8}}, "methodConfig": []}`); err != nil {
		t.Errorf("the same settings: %v", err)
	}
}
