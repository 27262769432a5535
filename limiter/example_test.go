package limiter_test

import (
	"context"
	"fmt"

	"github.com/grpc-resilience/resilience/limiter"
)

// OnLimitChange is told each change of the limit. Here three attempts time
// out (Overloaded); with no round trip measured yet, each cuts the limit
// by a tenth at once.
func ExampleConfig_onLimitChange() {
	l, err := limiter.New(limiter.Config{
		InitialLimit: 10,
		OnLimitChange: func(from, to int) {
			fmt.Printf("limit %d → %d\n", from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	for range 3 {
		p, err := l.Acquire(context.Background())
		if err != nil {
			panic(err)
		}
		p.Done(limiter.Overloaded)
	}
	fmt.Println("limit now", l.Limit())
	// Output:
	// limit 10 → 9
	// limit 9 → 8
	// limit 8 → 7
	// limit now 7
}
