package redisbreaker_test

import (
	"log"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/redisbreaker"
	"github.com/redis/go-redis/v9"
)

// One Shared per Set, every instance of the service with the same Prefix.
// The Config goes to interceptors.WithBreaker(cfg) as it is. (Not run: it
// needs a Redis; the package's tests run the same against a real one.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	sh, err := redisbreaker.New(rdb, redisbreaker.Options{
		Prefix: "checkout",
		OnDegraded: func(degraded bool, err error) {
			log.Printf("fleet breakers degraded=%v: %v", degraded, err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sh.Close()

	cfg := breaker.DefaultConfig()
	cfg.Shared = sh
	set, err := breaker.NewSet(cfg) // or interceptors.New(interceptors.WithBreaker(cfg))
	if err != nil {
		log.Fatal(err)
	}
	if done, err := set.Allow("dns:///orders.example:443"); err == nil {
		done(nil) // the attempt's outcome
	}
}
