package interceptors

import (
	"google.golang.org/grpc"

	"github.com/grpc-resilience/resilience/endpoint"
)

// WithEndpointEjection turns on per-endpoint outlier ejection (package
// endpoint) with cfg: DialOptions then also installs the
// "resilience_endpoint" load-balancing policy as the channel's default
// service config, and every call gets a call record (endpoint.NewCall) that
// all its attempts share, so that a retry or a hedge goes to a ready
// endpoint the call has not tried yet.
//
// The circuit breaker (WithBreaker) stays per target: it is for outages,
// when every endpoint fails. Ejection is for one bad endpoint among good
// ones (a bad pod behind a headless service), on which the breaker must not
// trip and which plain round_robin keeps sending a share of first attempts
// to.
//
// Ejections and returns to service are counted on the
// resilience.client.endpoint.ejected UpDownCounter (by target) and, for an
// attempt whose failure ejected its endpoint, recorded as a
// resilience.endpoint.ejected event (with the endpoint's address) on the
// attempt span, or on the call span when attempt spans are off.
// cfg.OnEject, if set, is called too, after the metric.
//
// The policy is installed with grpc.WithDefaultServiceConfig, which grpc-go
// uses only when the resolver supplies no service config, and of which it
// keeps the last one given. A user's own loadBalancingConfig therefore
// keeps working: one from the resolver (DNS TXT, a manual resolver's
// state), or a grpc.WithDefaultServiceConfig passed after DialOptions,
// replaces the policy. To keep the policy under such a service config, list
// {"resilience_endpoint":{}} first in its loadBalancingConfig (the JSON
// keys are in package endpoint's documentation; endpoint.ServiceConfig
// returns them for a Config). The call records are made either way, and
// cost nothing to other policies beyond their allocation. A policy
// configured from JSON cannot carry a func: its ejections reach neither
// cfg.OnEject nor the counter (the attempt events still show them).
//
// When such a service config picks another policy, ejection is off for
// that channel. The Middleware finds out from the calls (a successful
// attempt that the policy did not pick): it logs a Warn record
// (LogPolicyIgnored, setting "endpoint ejection") once per method and
// target, and counts the calls it found so on the
// resilience.client.policy.ignored counter. The calls of a connection are
// checked until one succeeds, then one call in 256.
//
// Without this option calls get no record and cost no allocation for it.
// An invalid cfg is rejected by New with an error naming this option and
// the field. Default: off.
func WithEndpointEjection(cfg endpoint.Config) Option {
	return optionFunc(func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return invalid("WithEndpointEjection", "%v", err)
		}
		c.endpoint = &cfg
		return nil
	})
}

// endpointDialOption builds the dial option of the policy for cfg, with
// OnEject chained after the metric of m's telemetry.
func (m *Middleware) endpointDialOption(cfg endpoint.Config) (grpc.DialOption, error) {
	user := cfg.OnEject
	tel := m.tel
	cfg.OnEject = func(target, addr string, ejected bool) {
		tel.EndpointEjection(target, ejected)
		if user != nil {
			user(target, addr, ejected)
		}
	}
	return endpoint.DialOption(cfg)
}
