package interceptors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/grpc-resilience/resilience/internal/engine"
)

// checkResolved checks the policies that cfg and sc resolve to, where a
// method would get a per-attempt timeout that can never fire
// (engine.CheckTimeouts): New's PolicyOptions on their own, and the
// resolved policy of every method or service the configuration names (the
// service config's entries, the names given to MatchMethods) and of the
// methods nothing names. Each layer on its own is checked where it is
// given (WithMethodPolicy, the service config parser); a call's own
// settings, by the engine when it resolves them.
func checkResolved(cfg *config, sc *serviceConfig) error {
	if err := engine.CheckTimeouts(engine.Layers{Settings: cfg.defaults}.Resolve("")); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	l := layers(cfg, sc)
	names := []string{""}
	if sc != nil {
		for k := range sc.methods {
			names = append(names, k)
		}
	}
	names = append(names, cfg.methodNames...)
	seen := map[string]bool{}
	var errs []error
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := engine.CheckTimeouts(l.Resolve(name)); err != nil {
			errs = append(errs, fmt.Errorf("%w: the policy of %s: %v", ErrInvalidConfig, describeKey(name), err))
		}
	}
	return errors.Join(errs...)
}

// describeKey names the methods a lookup key stands for.
func describeKey(key string) string {
	switch {
	case key == "":
		return "the methods nothing else names"
	case strings.HasSuffix(key, "/"):
		return "the methods of " + strings.Trim(key, "/")
	}
	return key
}
