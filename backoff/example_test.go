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
	// Config{} is the default backoff (see DefaultConfig).
	p, err := backoff.NewExponential(backoff.Config{},
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

// A zero field means the default, so Config{} is the default backoff and a
// Config names only what it changes. Jitter 0 is the default 0.2, so no
// jitter is spelled NoJitter.
func ExampleConfig() {
	fmt.Println(backoff.MustExponential(backoff.Config{}).Config() == backoff.DefaultConfig())

	p := backoff.MustExponential(backoff.Config{MaxDelay: 300 * time.Millisecond, Jitter: backoff.NoJitter})
	for retry := 1; retry <= 5; retry++ {
		fmt.Printf("retry %d: %v\n", retry, p.Delay(retry))
	}
	// Output:
	// true
	// retry 1: 50ms
	// retry 2: 100ms
	// retry 3: 200ms
	// retry 4: 300ms
	// retry 5: 300ms
}

// Validate reports every bad field at once, each naming the field and the
// value; zero fields are not errors.
func ExampleConfig_Validate() {
	err := backoff.Config{
		BaseDelay:  -time.Second,
		Multiplier: 0.5,
		Jitter:     math.NaN(),
	}.Validate()
	fmt.Println(errors.Is(err, backoff.ErrInvalidConfig))
	fmt.Println(err)
	fmt.Println(backoff.Config{}.Validate())
	// Output:
	// true
	// backoff: invalid config: BaseDelay must be >= 0 (0 means default), got -1s
	// backoff: invalid config: Multiplier must be a finite number >= 1 (0 means default), got 0.5
	// backoff: invalid config: Jitter must be in [0, 1] (0 means default, NoJitter none), got NaN
	// <nil>
}

func ExampleConstant() {
	var p backoff.Policy = backoff.Constant(250 * time.Millisecond)
	fmt.Println(p.Delay(1), p.Delay(10))
	fmt.Println(backoff.Constant(-time.Second).Delay(1))
	// Output:
	// 250ms 250ms
	// 0s
}
