package backoff_test

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/grpc-resilience/resilience/backoff"
)

// A fixed random source makes the jittered delays deterministic; real code
// leaves the default source in place.
func ExampleNewExponential() {
	p, err := backoff.NewExponential(backoff.DefaultConfig(),
		backoff.WithRandom(func() float64 { return 0.5 }))
	if err != nil {
		panic(err)
	}
	// Jitter 0.2 with r = 0.5 shortens every delay by 10%.
	for retry := 1; retry <= 8; retry++ {
		fmt.Printf("retry %d: %v\n", retry, p.Delay(retry))
	}
	fmt.Println("retry MaxInt:", p.Delay(math.MaxInt))
	// Output:
	// retry 1: 45ms
	// retry 2: 90ms
	// retry 3: 180ms
	// retry 4: 360ms
	// retry 5: 720ms
	// retry 6: 1.44s
	// retry 7: 1.8s
	// retry 8: 1.8s
	// retry MaxInt: 1.8s
}

// With Jitter 1 ("full jitter") a delay is uniform in (0, d(n)]; r = 0.25
// keeps three quarters of it.
func ExampleExponential_Delay() {
	p := backoff.MustExponential(backoff.Config{
		BaseDelay:  100 * time.Millisecond,
		Multiplier: 3,
		MaxDelay:   time.Second,
		Jitter:     1,
	}, backoff.WithRandom(func() float64 { return 0.25 }))
	for retry := 0; retry <= 4; retry++ {
		fmt.Printf("retry %d: %v\n", retry, p.Delay(retry))
	}
	// Output:
	// retry 0: 75ms
	// retry 1: 75ms
	// retry 2: 225ms
	// retry 3: 675ms
	// retry 4: 750ms
}

func ExampleConfig_Validate() {
	cfg := backoff.DefaultConfig()
	cfg.Multiplier = 0
	cfg.Jitter = 1.5
	err := cfg.Validate()
	fmt.Println(errors.Is(err, backoff.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// true
	// backoff: invalid config: Multiplier must be >= 1, got 0
	// backoff: invalid config: Jitter must be in [0, 1], got 1.5
}

func ExampleConstant() {
	var p backoff.Policy = backoff.Constant(250 * time.Millisecond)
	fmt.Println(p.Delay(1), p.Delay(10))
	fmt.Println(backoff.Constant(-time.Second).Delay(1))
	// Output:
	// 250ms 250ms
	// 0s
}
