package endpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/grpc-resilience/resilience/internal/protoduration"
	"google.golang.org/grpc"
	"google.golang.org/grpc/serviceconfig"
)

// lbConfig is the parsed LoadBalancingConfig: a Config with every default
// filled in and, when it came through DialOption, its hooks.
type lbConfig struct {
	serviceconfig.LoadBalancingConfig
	cfg Config
}

// jsonConfig is the JSON form of Config. Omitted fields mean the default.
type jsonConfig struct {
	Window              string  `json:"window,omitempty"`
	MinRequests         int     `json:"minRequests,omitempty"`
	FailureRatio        float64 `json:"failureRatio,omitempty"`
	ConsecutiveFailures int     `json:"consecutiveFailures,omitempty"`
	BaseEjectionTime    string  `json:"baseEjectionTime,omitempty"`
	MaxEjectionTime     string  `json:"maxEjectionTime,omitempty"`
	MaxEjectedRatio     float64 `json:"maxEjectedRatio,omitempty"`
	Hooks               string  `json:"hooks,omitempty"`
}

// jsonNames names Config fields by their JSON keys in error messages.
func jsonNames(goName string) string {
	return strings.ToLower(goName[:1]) + goName[1:]
}

// durationJSON writes d as a google.protobuf.Duration's JSON ("30s"), the
// form the service config's durations have; zero is omitted.
func durationJSON(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return protoduration.Format(d)
}

// ServiceConfig returns service-config JSON, for grpc.WithDefaultServiceConfig
// or a resolver's service config, that selects this policy with cfg's
// settings; fields left zero are omitted and mean the default, so
// ServiceConfig(Config{}) is
//
//	{"loadBalancingConfig":[{"resilience_endpoint":{}}]}
//
// It returns an error wrapping [ErrInvalidConfig] if cfg is invalid or has
// OnEject set: JSON cannot carry a func, use [DialOption] for that.
func ServiceConfig(cfg Config) (string, error) {
	if cfg.hasFuncs() {
		return "", fmt.Errorf("%w: OnEject cannot be carried by JSON; use DialOption", ErrInvalidConfig)
	}
	return serviceConfig(cfg, "")
}

func serviceConfig(cfg Config, hooks string) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	js, err := json.Marshal(map[string][]map[string]jsonConfig{
		"loadBalancingConfig": {{Name: {
			Window:              durationJSON(cfg.Window),
			MinRequests:         cfg.MinRequests,
			FailureRatio:        cfg.FailureRatio,
			ConsecutiveFailures: cfg.ConsecutiveFailures,
			BaseEjectionTime:    durationJSON(cfg.BaseEjectionTime),
			MaxEjectionTime:     durationJSON(cfg.MaxEjectionTime),
			MaxEjectedRatio:     cfg.MaxEjectedRatio,
			Hooks:               hooks,
		}}},
	})
	if err != nil { // not reached: every field marshals
		return "", err
	}
	return string(js), nil
}

// DialOption returns grpc.WithDefaultServiceConfig with [ServiceConfig]'s
// JSON, so that a channel dialled with it uses this policy with cfg, hooks
// included. It returns an error wrapping [ErrInvalidConfig] if cfg is
// invalid.
//
// A default service config is what grpc-go uses when the resolver supplies
// none: a service config from the resolver (DNS TXT records, xDS, a manual
// resolver's state) replaces it as a whole, so a user's own
// loadBalancingConfig keeps working and wins. To keep this policy under such
// a service config, list {"resilience_endpoint":{...}} first in its
// loadBalancingConfig. grpc-go keeps only the last grpc.WithDefaultServiceConfig
// given; a caller with a default service config of its own should put the
// policy's entry into that one instead of adding this option.
//
// With OnEject set, the JSON carries a process-local handle (the "hooks"
// key) by which the policy finds the func again; the handle lives as long
// as the returned option or a channel dialled with it does.
func DialOption(cfg Config) (grpc.DialOption, error) {
	if !cfg.hasFuncs() {
		js, err := serviceConfig(cfg, "")
		if err != nil {
			return nil, err
		}
		return grpc.WithDefaultServiceConfig(js), nil
	}
	h := &hooks{cfg: cfg}
	js, err := serviceConfig(cfg, registerHooks(h))
	if err != nil {
		return nil, err
	}
	return hookedOption{grpc.WithDefaultServiceConfig(js), h}, nil
}

// hookedOption keeps the hooks its JSON refers to alive until the channel
// has parsed them (grpc-go parses a default service config once, when the
// channel is created, and keeps the parsed value).
type hookedOption struct {
	grpc.DialOption
	hooks *hooks
}

// hooks carries the func fields of a Config from DialOption to the parser.
type hooks struct{ cfg Config }

var (
	hookSeq      atomic.Uint64
	hookRegistry sync.Map // string -> weak.Pointer[hooks]
)

func registerHooks(h *hooks) string {
	id := "h" + strconv.FormatUint(hookSeq.Add(1), 10)
	hookRegistry.Store(id, weak.Make(h))
	runtime.AddCleanup(h, func(id string) { hookRegistry.Delete(id) }, id)
	return id
}

func lookupHooks(id string) *hooks {
	v, ok := hookRegistry.Load(id)
	if !ok {
		return nil
	}
	return v.(weak.Pointer[hooks]).Value()
}

// parseConfig parses the policy's JSON LoadBalancingConfig. Every error
// wraps ErrInvalidConfig and names the JSON key; all of them are reported,
// joined.
func parseConfig(js json.RawMessage) (*lbConfig, error) {
	js = bytes.Trim(js, " \t\r\n") // JSON's white space, no other
	var raw map[string]json.RawMessage
	if len(js) > 0 && string(js) != "null" {
		if err := json.Unmarshal(js, &raw); err != nil {
			return nil, fmt.Errorf("%w: %s config must be a JSON object: %v", ErrInvalidConfig, Name, err)
		}
	}
	var (
		c    Config
		errs []error
	)
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalidConfig, key}, args...)...))
	}
	duration := func(key string, v json.RawMessage) time.Duration {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			bad(key, "must be a duration string such as \"1.5s\", got %s", v)
			return 0
		}
		d, err := protoduration.Parse(s)
		if err != nil {
			bad(key, "is invalid: %v", err)
			return 0
		}
		return d
	}
	number := func(key string, v json.RawMessage) float64 {
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			bad(key, "must be a number, got %s", v)
			return 0
		}
		return f
	}
	integer := func(key string, v json.RawMessage) int {
		f := number(key, v)
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			bad(key, "must be an integer in [0,%d], got %s", math.MaxInt32, v)
			return 0
		}
		return int(f)
	}
	var h *hooks
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		v := raw[key]
		switch key {
		case "window":
			c.Window = duration(key, v)
		case "minRequests":
			c.MinRequests = integer(key, v)
		case "failureRatio":
			c.FailureRatio = number(key, v)
		case "consecutiveFailures":
			c.ConsecutiveFailures = integer(key, v)
		case "baseEjectionTime":
			c.BaseEjectionTime = duration(key, v)
		case "maxEjectionTime":
			c.MaxEjectionTime = duration(key, v)
		case "maxEjectedRatio":
			c.MaxEjectedRatio = number(key, v)
		case "hooks":
			var id string
			if err := json.Unmarshal(v, &id); err != nil {
				bad(key, "must be a string, got %s", v)
			} else if h = lookupHooks(id); h == nil {
				bad(key, "%q is not known in this process (hooks reach the policy only through endpoint.DialOption)", id)
			}
		default:
			bad(key, "is not a field of the %s config", Name)
		}
	}
	if err := c.validate(jsonNames); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if h != nil {
		c.OnEject, c.onBuild = h.cfg.OnEject, h.cfg.onBuild
	}
	return &lbConfig{cfg: c.withDefaults()}, nil
}
