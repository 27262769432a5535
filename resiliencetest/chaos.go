package resiliencetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/telemetry"
)

// ChaosEvent is the name of the span event Chaos adds when it acts.
const ChaosEvent = "resilience.chaos"

// Attributes of ChaosEvent.
const (
	// ChaosActionKey is "fault" or "latency".
	ChaosActionKey = attribute.Key("resilience.chaos.action")
	// ChaosCodeKey is the injected status code, as in
	// rpc.response.status_code ("UNAVAILABLE"), on "fault" events.
	ChaosCodeKey = attribute.Key("resilience.chaos.code")
	// ChaosDelayKey is the injected delay in seconds, on "latency" events.
	ChaosDelayKey = attribute.Key("resilience.chaos.delay")
)

// chaosFaultMessage is the status message of a fault Chaos injects.
const chaosFaultMessage = "resiliencetest: chaos fault injected"

// ChaosConfig says what Chaos injects once enabled. The zero ChaosConfig
// injects nothing.
type ChaosConfig struct {
	// Methods restricts Chaos to these full method names
	// ("/pkg.Service/Method"). Empty means every method.
	Methods []string
	// FaultRate is the fraction of calls, in [0, 1], that fail with
	// FaultCode without reaching the network.
	FaultRate float64
	// FaultCode is the code of injected faults. It has no default: it must
	// be set, and not to codes.OK, when FaultRate is above 0.
	FaultCode codes.Code
	// LatencyRate is the fraction of calls, in [0, 1], delayed by Latency
	// before they are sent (and before a fault is drawn).
	LatencyRate float64
	// Latency is the injected delay; it must not be negative, and must be
	// above 0 when LatencyRate is.
	Latency time.Duration
}

// Validate reports every invalid field of c, joined; each error wraps
// ErrInvalidConfig and names its field.
func (c ChaosConfig) Validate() error {
	var errs []error
	for i, m := range c.Methods {
		if m == AllMethods {
			errs = append(errs, invalid("ChaosConfig.Methods[%d]: AllMethods is not a method; leave Methods empty for every method", i))
		} else if err := validMethod("ChaosConfig.Methods["+strconv.Itoa(i)+"]", m); err != nil {
			errs = append(errs, err)
		}
	}
	if err := validFraction("ChaosConfig", "FaultRate", c.FaultRate); err != nil {
		errs = append(errs, err)
	}
	if c.FaultRate > 0 && c.FaultCode == codes.OK {
		errs = append(errs, invalid("ChaosConfig: FaultCode: OK is not a fault (FaultRate is %v)", c.FaultRate))
	}
	if err := validFraction("ChaosConfig", "LatencyRate", c.LatencyRate); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.Latency < 0:
		errs = append(errs, invalid("ChaosConfig: Latency: %v is negative", c.Latency))
	case c.LatencyRate > 0 && c.Latency == 0:
		errs = append(errs, invalid("ChaosConfig: Latency: 0 with LatencyRate %v", c.LatencyRate))
	}
	return errors.Join(errs...)
}

// Chaos is a client interceptor (unary and stream) for staging and game
// days: once enabled it fails a rate of calls with a chosen code, or delays
// them, and records what it did as a ChaosEvent on the span in the call's
// context. It is off when created and until SetEnabled(true); while off it
// passes every call through untouched. Create it with NewChaos; every method
// is safe for concurrent use, and the switch and the configuration can
// change while calls run.
//
// Placed after the resilience interceptors in the dial options (see
// DialOptions), it acts on every attempt and the retries see its faults;
// placed before them, it acts once per call.
type Chaos struct {
	enabled atomic.Bool
	cfg     atomic.Pointer[ChaosConfig] // never nil

	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

// NewChaos returns a Chaos with cfg, switched off. Option: WithSeed.
// It fails if cfg or an option is invalid.
func NewChaos(cfg ChaosConfig, opts ...Option) (*Chaos, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	ch := &Chaos{rng: c.rng()}
	if err := ch.SetConfig(cfg); err != nil {
		return nil, err
	}
	return ch, nil
}

// SetConfig replaces the configuration; calls that start afterwards use it.
// It fails, leaving the configuration as it was, if cfg is invalid.
func (c *Chaos) SetConfig(cfg ChaosConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.Methods = slices.Clone(cfg.Methods)
	c.cfg.Store(&cfg)
	return nil
}

// SetEnabled switches Chaos on or off; calls that start afterwards see the
// switch.
func (c *Chaos) SetEnabled(on bool) { c.enabled.Store(on) }

// Enabled reports whether Chaos is on.
func (c *Chaos) Enabled() bool { return c.enabled.Load() }

// DialOptions returns the dial options that install both interceptors,
// chained after the interceptors of earlier options.
func (c *Chaos) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamClientInterceptor()),
	}
}

// UnaryClientInterceptor returns the unary client interceptor.
func (c *Chaos) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if c.enabled.Load() {
			if err := c.act(ctx, method); err != nil {
				return err
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor returns the stream client interceptor; it acts
// when the stream is created.
func (c *Chaos) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if c.enabled.Load() {
			if err := c.act(ctx, method); err != nil {
				return nil, err
			}
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// act draws and applies the latency and fault of one call.
func (c *Chaos) act(ctx context.Context, method string) error {
	cfg := c.cfg.Load()
	if len(cfg.Methods) > 0 && !slices.Contains(cfg.Methods, method) {
		return nil
	}
	c.mu.Lock()
	delay := cfg.Latency > 0 && draw(c.rng, cfg.LatencyRate)
	fail := draw(c.rng, cfg.FaultRate)
	c.mu.Unlock()
	span := trace.SpanFromContext(ctx)
	if delay {
		span.AddEvent(ChaosEvent, trace.WithAttributes(
			ChaosActionKey.String("latency"), ChaosDelayKey.Float64(cfg.Latency.Seconds())))
		if err := wait(ctx, nil, cfg.Latency); err != nil {
			return err
		}
	}
	if fail {
		span.AddEvent(ChaosEvent, trace.WithAttributes(
			ChaosActionKey.String("fault"), ChaosCodeKey.String(codeName(cfg.FaultCode))))
		return status.Error(cfg.FaultCode, chaosFaultMessage)
	}
	return nil
}

// codeName is the canonical name of a gRPC code, as used for
// rpc.response.status_code ("OK", "UNAVAILABLE", ...).
func codeName(c codes.Code) string { return telemetry.CodeName(c) }
