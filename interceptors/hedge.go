package interceptors

import (
	"fmt"
	"time"

	"github.com/grpc-resilience/resilience/internal/engine"
)

// HedgePolicy makes a unary method hedged: if an attempt has not answered
// after a delay, another one is sent while the first keeps running, up to
// MaxAttempts in flight; the first usable answer (a success or a
// non-retryable error) wins and the others are cancelled.
//
// Hedges follow the same rules as retries, decided in one place: a hedge
// that fails with a retryable code starts the next one at once; server
// pushback delays the next hedge (>= 0 ms) or stops further ones
// (negative), while the attempts in flight go on; a hedge refused by a
// breaker or the retry budget is not fatal — the attempts in flight go on
// and the call ends with the best outcome. A hedge that waits for a
// connection or a half-open breaker waits on its own goroutine, never
// delaying the others' results. A call answered before the delay costs
// what an unhedged call costs: no goroutine is started.
//
// Hedge only methods that are safe to run more than once. Each hedge gets
// its own reply message and its own grpc.Header, grpc.Trailer and
// grpc.Peer outputs: only the winner's reach the caller. Hedges draw on
// the retry budget. Streams are never hedged, and neither are calls whose
// reply is not a proto.Message (they are retried instead). Hedging given
// for a streaming method (to New, WithMethodPolicy or in the service
// config) leaves its streams unhedged, and the Middleware says so: a Warn
// record once per method and target (LogPolicyIgnored, with WithLogger)
// and the resilience.client.policy.ignored counter. Hedging passed with a
// stream call is an invalid call option: the call fails with
// InvalidArgument.
type HedgePolicy struct {
	// Delay is the wait before each hedge; it must be > 0. With
	// Percentile set, it is the wait until enough latencies of the method
	// have been observed.
	Delay time.Duration
	// Percentile, if in (0, 1), hedges after that percentile of the
	// method's observed successful latencies (for example 0.95), once 100
	// of them have been seen. 0 means a fixed Delay.
	Percentile float64
	// MaxAttempts is the number of attempts that may be in flight at once,
	// counting the first; at least 2. The call's MaxAttempts, raised to it
	// if lower, bounds the total. Memory per call grows with the attempts
	// actually in flight, never with this number.
	MaxAttempts int
}

func (h HedgePolicy) validate() error {
	switch {
	case h.Delay <= 0:
		return fmt.Errorf("Delay must be > 0, got %v", h.Delay)
	case !(h.Percentile >= 0 && h.Percentile < 1):
		return fmt.Errorf("Percentile must be in [0, 1), got %v", h.Percentile)
	case h.MaxAttempts < 2:
		return fmt.Errorf("MaxAttempts must be >= 2, got %d", h.MaxAttempts)
	}
	return nil
}

// Hedging hedges calls according to p (see PolicyOption for where it may
// be given). Their MaxAttempts is raised to p.MaxAttempts if it is lower.
func Hedging(p HedgePolicy) PolicyOption {
	err := p.validate()
	h := &engine.Hedge{Delay: p.Delay, Percentile: p.Percentile, MaxInFlight: p.MaxAttempts}
	return policyOption("Hedging", func(pol *policy) error {
		if err != nil {
			return err
		}
		pol.Hedge = h
		return nil
	})
}
