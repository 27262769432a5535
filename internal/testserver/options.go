package testserver

import (
	"math/rand/v2"

	"google.golang.org/grpc"
)

// Option configures a Server at construction. Options are applied in order.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	serverOpts []grpc.ServerOption
	rand       rand.Source
}

// defaultConfig holds every default in one place.
func defaultConfig() config {
	return config{rand: rand.NewPCG(0, 0)}
}

// WithServerOptions adds options to every grpc.Server the Server creates (a
// new one is created by ListenBufconn, ListenTCP and each Restart), for
// example grpc.StatsHandler(otelgrpc.NewServerHandler()). The Server always
// appends grpc.WaitForHandlers(true) so that Stop and Close wait for running
// handlers.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return optionFunc(func(c *config) {
		c.serverOpts = append(c.serverOpts, opts...)
	})
}

// WithSeed makes the fractions of FailFraction and SetTailLatency draw from a
// PCG source seeded with seed, so that a run can be reproduced. The default
// seed is 0.
func WithSeed(seed uint64) Option {
	return optionFunc(func(c *config) {
		c.rand = rand.NewPCG(seed, seed)
	})
}

// WithRandSource makes the fractions of FailFraction and SetTailLatency draw
// from src. The Server serializes its use of src, so src need not be safe for
// concurrent use. New panics if src is nil.
func WithRandSource(src rand.Source) Option {
	return optionFunc(func(c *config) {
		if src == nil {
			panic("testserver: WithRandSource: nil source")
		}
		c.rand = src
	})
}
