package interceptors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/budget"
	"github.com/grpc-resilience/resilience/internal/engine"
	"github.com/grpc-resilience/resilience/internal/protoduration"
	"github.com/grpc-resilience/resilience/limiter"
	"github.com/grpc-resilience/resilience/throttle"
)

// ExtensionKey is the key of this library's extension in a service config:
// an object in a methodConfig entry (per-method settings gRFC A6 lacks),
// and one at the top level (the Middleware's). grpc-go's own parser
// ignores keys it does not know, so one JSON serves both.
const ExtensionKey = "resilience"

// serviceConfig is a parsed service config: what each methodConfig entry
// sets, indexed by the paths it names, and the retry throttling.
type serviceConfig struct {
	methods  map[string]*methodConfig // "/svc/m", "/svc/" and "" (the default entry)
	throttle *budget.Config           // nil: the Middleware's own budget
	// Middleware-wide settings, read by New only.
	readyWait *time.Duration
	breaker   *breaker.Config // fields that are not zero override WithBreaker's
	limit     *limitSetting   // nil: WithConcurrencyLimit's
	// clientThrottle is the extension's "throttle": client-side
	// throttling on (its config) or off (off set); nil: WithThrottle's.
	clientThrottle *throttleSetting
}

// limitSetting is the extension's "concurrencyLimit": false turns it off,
// an object sets the limiter (over the default) and whether it is kept
// per method.
type limitSetting struct {
	off       bool
	cfg       limiter.Config
	perMethod bool
}

// throttleSetting is the extension's "throttle": false turns it off, an
// object (even an empty one) turns it on with those fields.
type throttleSetting struct {
	off bool
	cfg throttle.Config
}

// methodConfig is what one methodConfig entry sets; nil or false fields
// leave the layer below unchanged.
type methodConfig struct {
	timeout           *time.Duration
	maxAttempts       int // 0: unset
	backoff           *engine.GRPCBackoff
	retryCodes        *engine.CodeSet // nil: unset
	hedge             *engine.Hedge
	perAttemptTimeout *time.Duration
	noBreaker         *bool
}

// patch is mc as the engine's layer of the methods it names; random
// jitters its backoff (nil: math/rand/v2).
func (mc *methodConfig) patch(random func() float64) *engine.Patch {
	pt := &engine.Patch{
		Timeout:           mc.timeout,
		MaxAttempts:       mc.maxAttempts,
		RetryCodes:        mc.retryCodes,
		Hedge:             mc.hedge,
		PerAttemptTimeout: mc.perAttemptTimeout,
		NoBreaker:         mc.noBreaker,
	}
	if mc.backoff != nil { // never a typed nil in the interface
		b := *mc.backoff
		b.Random = random
		pt.Backoff = &b
	}
	return pt
}

// parseServiceConfig parses a gRFC A6 service config with this library's
// extension. Errors name the JSON path and the value.
func parseServiceConfig(js string) (*serviceConfig, error) {
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	var root any
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if d.More() {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("top level: must be an object, got %s", kind(root))
	}
	p := &scParser{}
	sc := &serviceConfig{methods: map[string]*methodConfig{}}
	p.known("", obj, topLevelFields)
	if v, ok := obj["methodConfig"]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			p.fail("methodConfig", "must be an array, got %s", kind(v))
		}
		for i, e := range list {
			p.methodConfig(sc, fmt.Sprintf("methodConfig[%d]", i), e)
		}
	}
	if v, ok := obj["retryThrottling"]; ok && v != nil {
		sc.throttle = p.throttling("retryThrottling", v)
	}
	if v, ok := obj[ExtensionKey]; ok && v != nil {
		p.object(ExtensionKey, v, map[string]func(string, any){
			"readyWait": func(path string, v any) {
				if d, ok := p.duration(path, v); ok {
					sc.readyWait = &d
				}
			},
			"breaker":          func(path string, v any) { sc.breaker = p.breaker(path, v) },
			"concurrencyLimit": func(path string, v any) { sc.limit = p.concurrencyLimit(path, v) },
			"throttle":         func(path string, v any) { sc.clientThrottle = p.clientThrottle(path, v) },
		})
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return sc, nil
}

// scParser collects every error of one service config.
type scParser struct{ errs []error }

func (p *scParser) fail(path, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func kind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return strconv.Quote(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%T", v)
}

// object walks the fields of an object with the handlers given; unknown
// fields are errors (strict: used for our extension only).
func (p *scParser) object(path string, v any, fields map[string]func(path string, v any)) {
	obj, ok := v.(map[string]any)
	if !ok {
		p.fail(path, "must be an object, got %s", kind(v))
		return
	}
	for k, fv := range obj {
		f, ok := fields[k]
		if !ok {
			p.fail(path+"."+k, "unknown field")
			continue
		}
		f(path+"."+k, fv)
	}
}

func (p *scParser) methodConfig(sc *serviceConfig, path string, v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		p.fail(path, "must be an object, got %s", kind(v))
		return
	}
	p.known(path, obj, methodConfigFields)
	p.grpcOnly(path, obj)
	mc := &methodConfig{}
	if t, ok := obj["timeout"]; ok && t != nil {
		if d, ok := p.duration(path+".timeout", t); ok {
			mc.timeout = &d
		}
	}
	rp, hasRetry := obj["retryPolicy"]
	hp, hasHedge := obj["hedgingPolicy"]
	hasRetry, hasHedge = hasRetry && rp != nil, hasHedge && hp != nil
	if hasRetry && hasHedge {
		p.fail(path, "retryPolicy and hedgingPolicy are mutually exclusive")
	}
	if hasRetry {
		p.retryPolicy(mc, path+".retryPolicy", rp)
	}
	if hasHedge {
		p.hedgingPolicy(mc, path+".hedgingPolicy", hp)
	}
	if !hasRetry && !hasHedge {
		// As in gRFC A6, an entry is the whole retry policy of the methods
		// it names: without a retryPolicy or hedgingPolicy they are not
		// retried.
		mc.maxAttempts = 1
	}
	if ext, ok := obj[ExtensionKey]; ok && ext != nil {
		p.object(path+"."+ExtensionKey, ext, map[string]func(string, any){
			"perAttemptTimeout": func(path string, v any) {
				if d, ok := p.duration(path, v); ok {
					mc.perAttemptTimeout = &d
				}
			},
			"hedgingPercentile": func(path string, v any) {
				f, ok := p.number(path, v)
				switch {
				case !ok:
				case !(f > 0 && f < 1):
					p.fail(path, "must be in (0, 1), got %v", f)
				case mc.hedge == nil:
					p.fail(path, "needs a hedgingPolicy in the same entry")
				default:
					mc.hedge.Percentile = f
				}
			},
			"breaker": func(path string, v any) {
				b, ok := v.(bool)
				if !ok {
					p.fail(path, "must be a boolean, got %s", kind(v))
					return
				}
				off := !b
				mc.noBreaker = &off
			},
		})
	}
	if mc.timeout != nil && mc.perAttemptTimeout != nil && *mc.timeout > 0 && *mc.perAttemptTimeout >= *mc.timeout {
		p.fail(path+"."+ExtensionKey+".perAttemptTimeout", "must be shorter than timeout (%v), got %v: a per-attempt timeout that long could never fire",
			*mc.timeout, *mc.perAttemptTimeout)
	}
	names, ok := obj["name"]
	if !ok || names == nil {
		return // grpc-go skips an entry without names
	}
	list, ok := names.([]any)
	if !ok {
		p.fail(path+".name", "must be an array, got %s", kind(names))
		return
	}
	for i, n := range list {
		np := fmt.Sprintf("%s.name[%d]", path, i)
		key, ok := p.name(np, n)
		if !ok {
			continue
		}
		if _, dup := sc.methods[key]; dup {
			p.fail(np, "duplicate name %q", key)
			continue
		}
		sc.methods[key] = mc
	}
}

// name returns the lookup key of a name: "/service/method", "/service/" or
// "" for the default entry.
func (p *scParser) name(path string, v any) (string, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		p.fail(path, "must be an object, got %s", kind(v))
		return "", false
	}
	if !p.known(path, obj, nameFields) {
		return "", false
	}
	str := func(k string) (string, bool) {
		x, ok := obj[k]
		if !ok || x == nil {
			return "", true
		}
		s, ok := x.(string)
		if !ok {
			p.fail(path+"."+k, "must be a string, got %s", kind(x))
		}
		return s, ok
	}
	svc, ok1 := str("service")
	m, ok2 := str("method")
	switch {
	case !ok1 || !ok2:
		return "", false
	case svc == "" && m != "":
		p.fail(path, "method %q needs a service", m)
		return "", false
	case svc == "":
		return "", true
	case m == "":
		return "/" + svc + "/", true
	}
	return "/" + svc + "/" + m, true
}

// policyObject reads the object of a retryPolicy or hedgingPolicy, whose
// fields must be among fields, and its maxAttempts, which A6 wants >= 2 in
// both.
func (p *scParser) policyObject(path string, v any, fields []string) (obj map[string]any, maxAttempts int, okN, ok bool) {
	if obj, ok = v.(map[string]any); !ok {
		p.fail(path, "must be an object, got %s", kind(v))
		return nil, 0, false, false
	}
	p.known(path, obj, fields)
	n, okN := p.intField(path, obj, "maxAttempts")
	if okN && n < 2 {
		p.fail(path+".maxAttempts", "must be >= 2, got %d", n)
		okN = false
	}
	return obj, n, okN, true
}

func (p *scParser) retryPolicy(mc *methodConfig, path string, v any) {
	obj, n, okN, ok := p.policyObject(path, v, retryPolicyFields)
	if !ok {
		return
	}
	ib, okI := p.positiveDuration(path, obj, "initialBackoff")
	mb, okM := p.positiveDuration(path, obj, "maxBackoff")
	mult, okMu := p.required(path, obj, "backoffMultiplier")
	var m float64
	if okMu {
		if m, okMu = p.number(path+".backoffMultiplier", mult); okMu && !(m > 0) {
			p.fail(path+".backoffMultiplier", "must be > 0, got %v", mult)
			okMu = false
		}
	}
	cs, okC := p.codes(path+".retryableStatusCodes", obj["retryableStatusCodes"], true)
	if okN && okI && okM && okMu && okC {
		mc.maxAttempts = n
		mc.backoff = &engine.GRPCBackoff{Initial: ib, Max: mb, Multiplier: m}
		mc.retryCodes = &cs
	}
}

func (p *scParser) hedgingPolicy(mc *methodConfig, path string, v any) {
	obj, n, okN, ok := p.policyObject(path, v, hedgingPolicyFields)
	if !ok {
		return
	}
	var delay time.Duration
	okD := true
	if dv, ok := obj["hedgingDelay"]; ok && dv != nil {
		delay, okD = p.duration(path+".hedgingDelay", dv)
	}
	cs, okC := engine.CodeSet(0), true
	if cv, ok := obj["nonFatalStatusCodes"]; ok && cv != nil {
		cs, okC = p.codes(path+".nonFatalStatusCodes", cv, false)
	}
	if okN && okD && okC {
		mc.maxAttempts = n
		mc.hedge = &engine.Hedge{Delay: delay, MaxInFlight: n}
		// Non-fatal codes are what a hedged call may try again on; none
		// listed means every failure is fatal, as in gRFC A6.
		mc.retryCodes = &cs
	}
}

func (p *scParser) throttling(path string, v any) *budget.Config {
	obj, ok := v.(map[string]any)
	if !ok {
		p.fail(path, "must be an object, got %s", kind(v))
		return nil
	}
	p.known(path, obj, throttlingFields)
	var c budget.Config
	ok = true
	if mt, okF := p.required(path, obj, "maxTokens"); okF {
		if f, okN := p.number(path+".maxTokens", mt); !okN || !(f > 0 && f <= 1000) {
			if okN {
				p.fail(path+".maxTokens", "must be in (0, 1000], got %v", mt)
			}
			ok = false
		} else {
			c.MaxTokens = f
		}
	} else {
		ok = false
	}
	if tr, okF := p.required(path, obj, "tokenRatio"); okF {
		if f, okN := p.number(path+".tokenRatio", tr); !okN || !(f > 0) || math.IsInf(f, 0) {
			if okN {
				p.fail(path+".tokenRatio", "must be > 0, got %v", tr)
			}
			ok = false
		} else {
			c.TokenRatio = f
		}
	} else {
		ok = false
	}
	if !ok {
		return nil
	}
	// A6 keeps 3 decimals of tokenRatio; a ratio above maxTokens only
	// refills the bucket at once.
	c.TokenRatio = min(max(math.Round(c.TokenRatio*1000)/1000, 0.001), c.MaxTokens)
	if err := c.Validate(); err != nil {
		p.fail(path, "%v", err)
		return nil
	}
	return &c
}

// breaker parses the extension's breaker settings; each is optional.
func (p *scParser) breaker(path string, v any) *breaker.Config {
	c := &breaker.Config{}
	dur := func(f *time.Duration) func(string, any) {
		return func(path string, v any) {
			if d, ok := p.duration(path, v); ok {
				*f = d
			}
		}
	}
	count := func(f *uint32) func(string, any) {
		return func(path string, v any) {
			n, ok := v.(json.Number)
			i, err := strconv.ParseUint(n.String(), 10, 32)
			if !ok || err != nil || i == 0 {
				p.fail(path, "must be a positive 32-bit integer, got %s", kind(v))
				return
			}
			*f = uint32(i)
		}
	}
	p.object(path, v, map[string]func(string, any){
		"window":         dur(&c.Window),
		"openTimeout":    dur(&c.OpenTimeout),
		"maxOpenTimeout": dur(&c.MaxOpenTimeout),
		"openMultiplier": func(path string, v any) {
			if f, ok := p.number(path, v); ok {
				c.OpenMultiplier = f
			}
		},
		"openJitter": func(path string, v any) {
			if f, ok := p.number(path, v); ok {
				c.OpenJitter = f
			}
		},
		"minRequests":         count(&c.MinRequests),
		"consecutiveFailures": count(&c.ConsecutiveFailures),
		"halfOpenProbes":      count(&c.HalfOpenProbes),
		"failureRatio": func(path string, v any) {
			if f, ok := p.number(path, v); ok {
				if !(f > 0 && f <= 1) {
					p.fail(path, "must be in (0, 1], got %v", f)
					return
				}
				c.FailureRatio = f
			}
		},
	})
	if err := c.Validate(); err != nil {
		p.fail(path, "%v", err)
	}
	return c
}

// concurrencyLimit reads the extension's "concurrencyLimit": false, or an
// object of limiter.Config's fields (fixed, initialLimit, minLimit,
// maxLimit, queue: a count or "none") and perMethod. The limiter validates
// the values; its errors are reported at the path.
func (p *scParser) concurrencyLimit(path string, v any) *limitSetting {
	if b, ok := v.(bool); ok {
		if b {
			p.fail(path, "must be false or an object, got true (an empty object is the default limiter)")
			return nil
		}
		return &limitSetting{off: true}
	}
	s := &limitSetting{}
	count := func(f *int) func(string, any) {
		return func(path string, v any) {
			n, ok := v.(json.Number)
			i, err := strconv.ParseInt(n.String(), 10, 32)
			if !ok || err != nil || i < 0 {
				p.fail(path, "must be a non-negative integer, got %s", kind(v))
				return
			}
			*f = int(i)
		}
	}
	p.object(path, v, map[string]func(string, any){
		"fixed":        count(&s.cfg.Fixed),
		"initialLimit": count(&s.cfg.InitialLimit),
		"minLimit":     count(&s.cfg.MinLimit),
		"maxLimit":     count(&s.cfg.MaxLimit),
		"queue": func(path string, v any) {
			if str, ok := v.(string); ok && str == "none" {
				s.cfg.Queue = limiter.NoQueue
				return
			}
			count(&s.cfg.Queue)(path, v)
		},
		"perMethod": func(path string, v any) {
			b, ok := v.(bool)
			if !ok {
				p.fail(path, "must be a boolean, got %s", kind(v))
				return
			}
			s.perMethod = b
		},
	})
	if err := s.cfg.Validate(); err != nil {
		p.fail(path, "%v", err)
	}
	return s
}

// clientThrottle reads the extension's "throttle": false, or an object of
// throttle.Config's fields (k, window) that turns throttling on.
func (p *scParser) clientThrottle(path string, v any) *throttleSetting {
	if b, ok := v.(bool); ok {
		if b {
			p.fail(path, "must be false or an object, got true (an empty object is the default throttle)")
			return nil
		}
		return &throttleSetting{off: true}
	}
	s := &throttleSetting{}
	p.object(path, v, map[string]func(string, any){
		"k": func(path string, v any) {
			if f, ok := p.number(path, v); ok {
				s.cfg.K = f
			}
		},
		"window": func(path string, v any) {
			if d, ok := p.duration(path, v); ok {
				s.cfg.Window = d
			}
		},
	})
	if err := s.cfg.Validate(); err != nil {
		p.fail(path, "%v", err)
	}
	return s
}

func (p *scParser) required(path string, obj map[string]any, k string) (any, bool) {
	v, ok := obj[k]
	if !ok || v == nil {
		p.fail(path+"."+k, "required")
		return nil, false
	}
	return v, true
}

func (p *scParser) number(path string, v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		p.fail(path, "must be a number, got %s", kind(v))
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(path, "must be a finite number, got %s", n)
		return 0, false
	}
	return f, true
}

func (p *scParser) intField(path string, obj map[string]any, k string) (int, bool) {
	v, ok := p.required(path, obj, k)
	if !ok {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		p.fail(path+"."+k, "must be an integer, got %s", kind(v))
		return 0, false
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		p.fail(path+"."+k, "must be a 32-bit integer, got %s", n)
		return 0, false
	}
	return int(i), true
}

func (p *scParser) positiveDuration(path string, obj map[string]any, k string) (time.Duration, bool) {
	v, ok := p.required(path, obj, k)
	if !ok {
		return 0, false
	}
	d, ok := p.duration(path+"."+k, v)
	if ok && d <= 0 {
		p.fail(path+"."+k, "must be > 0, got %s", kind(v))
		return 0, false
	}
	return d, ok
}

// duration parses a google.protobuf.Duration in its JSON form ("1.5s"),
// which must not be negative (package protoduration).
func (p *scParser) duration(path string, v any) (time.Duration, bool) {
	s, ok := v.(string)
	if !ok {
		p.fail(path, "must be a duration string such as \"1.5s\", got %s", kind(v))
		return 0, false
	}
	d, err := protoduration.Parse(s)
	if err != nil {
		p.fail(path, "%v", err)
		return 0, false
	}
	return d, true
}

// codes parses a list of status codes given by name ("UNAVAILABLE") or by
// number; required lists must not be empty. OK is never valid.
func (p *scParser) codes(path string, v any, required bool) (engine.CodeSet, bool) {
	list, ok := v.([]any)
	if !ok {
		if v == nil && required {
			p.fail(path, "required")
		} else {
			p.fail(path, "must be an array of status codes, got %s", kind(v))
		}
		return 0, false
	}
	if len(list) == 0 && required {
		p.fail(path, "must not be empty")
		return 0, false
	}
	var set engine.CodeSet
	ok = true
	for i, e := range list {
		c, good := codeOf(e)
		if !good {
			p.fail(fmt.Sprintf("%s[%d]", path, i), "not a status code: %s", kind(e))
			ok = false
			continue
		}
		if c == codes.OK {
			p.fail(fmt.Sprintf("%s[%d]", path, i), "OK is not a failure")
			ok = false
			continue
		}
		set |= engine.NewCodeSet(c)
	}
	return set, ok
}

func codeOf(v any) (codes.Code, bool) {
	switch v := v.(type) {
	case string:
		var c codes.Code
		if err := c.UnmarshalJSON(append(append([]byte{'"'}, v...), '"')); err != nil || bytes.ContainsAny([]byte(v), "\"\\") {
			return 0, false
		}
		return c, true
	case json.Number:
		i, err := strconv.ParseInt(v.String(), 10, 32)
		if err != nil || i < 0 || i > int64(codes.Unauthenticated) {
			return 0, false
		}
		return codes.Code(i), true
	}
	return 0, false
}
