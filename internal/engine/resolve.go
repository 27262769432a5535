package engine

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/backoff"
)

// Layers are what a call's policy is resolved from, in order, each over
// the one before: Base (the defaults), Settings (given to New, checked by
// CheckSetting), the service config entry of the method (Config), the
// method layers whose Match holds (in order), and the call's own settings. A Middleware hands the engine a
// new Layers value whenever its service config changes; calls keep the
// version they started with.
type Layers struct {
	Base     Policy
	Settings []Setting
	// Config holds the service config's entries by name: "/svc/method",
	// "/svc/" and "" (the default entry). A method uses the exact entry,
	// else its service's, else the default (grpc-go's precedence).
	Config  map[string]*Patch
	Methods []MethodLayer
}

// MethodLayer applies Settings to the methods Match accepts.
type MethodLayer struct {
	Match    func(fullMethod string) bool
	Settings []Setting // checked by CheckSetting
}

// Patch is one service config entry: the fields it sets; nil (or 0 for
// MaxAttempts) leaves the layer below unchanged.
type Patch struct {
	Timeout           *time.Duration
	MaxAttempts       int
	Backoff           backoff.Policy
	RetryCodes        *CodeSet
	Hedge             *Hedge
	PerAttemptTimeout *time.Duration
	NoBreaker         *bool
}

// apply writes the fields pt sets into p. An entry with maxAttempts is a
// whole retry or hedging policy: a hedge from a lower layer is dropped.
func (pt *Patch) apply(p *Policy) {
	if pt == nil {
		return
	}
	if pt.Timeout != nil {
		p.CallTimeout = *pt.Timeout
	}
	if pt.MaxAttempts > 0 {
		p.MaxAttempts = pt.MaxAttempts
		p.Hedge = nil
	}
	if pt.Backoff != nil {
		p.Backoff = pt.Backoff
	}
	if pt.RetryCodes != nil {
		p.RetryCodes = *pt.RetryCodes
	}
	if pt.Hedge != nil {
		p.Hedge = pt.Hedge
	}
	if pt.PerAttemptTimeout != nil {
		p.PerAttemptTimeout = *pt.PerAttemptTimeout
	}
	if pt.NoBreaker != nil {
		p.NoBreaker = *pt.NoBreaker
	}
}

// policies is one version of the layers, with the policy of each method
// resolved from them once.
type policies struct {
	l     Layers
	mu    sync.Mutex                         // serializes writers of cache
	cache atomic.Pointer[map[string]*Policy] // copy on write
}

// maxCachedMethods bounds the resolved-policy cache. Beyond it, a method's
// policy is resolved on each call: correct, only slower.
const maxCachedMethods = 1024

// SetLayers makes l the layers of every call that starts from now on.
func (e *Engine) SetLayers(l Layers) { e.layers.Store(&policies{l: l}) }

// MethodPolicy returns the policy of fullMethod under the current layers,
// before any call's own settings.
func (e *Engine) MethodPolicy(fullMethod string) Policy {
	return *e.layers.Load().forMethod(fullMethod)
}

// forMethod returns the policy of method. The caller must not modify it.
func (ps *policies) forMethod(method string) *Policy {
	if m := ps.cache.Load(); m != nil {
		if p, ok := (*m)[method]; ok {
			return p
		}
	}
	p := ps.resolve(method)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var old map[string]*Policy
	if m := ps.cache.Load(); m != nil {
		old = *m
	}
	if cached, ok := old[method]; ok {
		return cached
	}
	if len(old) < maxCachedMethods {
		m := make(map[string]*Policy, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[method] = p
		ps.cache.Store(&m)
	}
	return p
}

// Resolve returns the policy of method under l, before any call's own
// settings, without installing l: what New checks a configuration with.
func (l Layers) Resolve(method string) Policy { return *(&policies{l: l}).resolve(method) }

// CheckTimeouts reports a per-attempt timeout that can never fire: one
// not shorter than the call timeout of the same policy, which is then the
// deadline of the whole call (for calls whose context has none). The
// interceptors apply it to every layer they are given and to the resolved
// policies of the methods they can name; resolveCall to a call that sets
// both.
func CheckTimeouts(p Policy) error {
	if p.PerAttemptTimeout > 0 && p.CallTimeout > 0 && p.PerAttemptTimeout >= p.CallTimeout {
		return fmt.Errorf("PerAttemptTimeout (%v) must be shorter than Timeout (%v): a per-attempt timeout that long could never fire", p.PerAttemptTimeout, p.CallTimeout)
	}
	return nil
}

// errHedgedStream is the error of a stream call passed Hedging.
var errHedgedStream = errors.New("Hedging: streams are never hedged; pass it with unary calls only")

// resolve computes the policy of method from the layers.
func (ps *policies) resolve(method string) *Policy {
	p := new(Policy)
	*p = ps.l.Base
	for _, s := range ps.l.Settings {
		s.applyLayer(p)
	}
	ps.configEntry(method).apply(p)
	for _, ml := range ps.l.Methods {
		if ml.Match(method) {
			for _, s := range ml.Settings {
				s.applyLayer(p)
			}
		}
	}
	return p
}

// configEntry returns the service config entry of method: the exact
// method, else the service, else the default entry; nil if none applies.
func (ps *policies) configEntry(method string) *Patch {
	c := ps.l.Config
	if c == nil {
		return nil
	}
	if pt, ok := c[method]; ok {
		return pt
	}
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		if pt, ok := c[method[:i+1]]; ok {
			return pt
		}
	}
	return c[""]
}

// resolveCall fills p, the zero Policy of a new call, for a call of method
// with the caller's opts, and returns opts without the policy settings and
// grpc.OnFinish (whose functions go to p.OnFinish: they run once per call,
// while opts go to every attempt). It allocates only when opts holds some.
//
// A stream call that passes Hedging fails (streams are never hedged), and
// so does a call that passes both Timeout and PerAttemptTimeout when the
// latter could never fire (CheckTimeouts).
func (e *Engine) resolveCall(p *Policy, method string, opts []grpc.CallOption, stream bool) []grpc.CallOption {
	base := e.layers.Load().forMethod(method)
	*p = *base
	removed := 0
	for _, o := range opts {
		switch co := o.(type) {
		case settingOption:
			removed++
			co.setting().applyCall(p)
		case grpc.OnFinishCallOption:
			removed++
			p.OnFinish = append(p.OnFinish, co.OnFinish)
		case *grpc.OnFinishCallOption:
			removed++
			p.OnFinish = append(p.OnFinish, co.OnFinish)
		}
	}
	if removed == 0 {
		return opts
	}
	switch {
	case p.Err != nil:
	case stream && p.Hedge != base.Hedge && p.Hedge != nil:
		p.Err = errHedgedStream
	case p.CallTimeout != base.CallTimeout && p.PerAttemptTimeout != base.PerAttemptTimeout:
		// The call set both: they must make sense together.
		p.Err = CheckTimeouts(*p)
	}
	rest := make([]grpc.CallOption, 0, len(opts)-removed)
	for _, o := range opts {
		switch o.(type) {
		case settingOption, grpc.OnFinishCallOption, *grpc.OnFinishCallOption:
		default:
			rest = append(rest, o)
		}
	}
	return rest
}
