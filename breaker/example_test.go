package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
)

// One attempt: ask the breaker, run the attempt, report how it ended.
func ExampleSet_Allow() {
	set, err := breaker.NewSet(breaker.DefaultConfig())
	if err != nil {
		panic(err)
	}
	const target = "dns:///orders.example:443"

	done, err := set.Allow(target)
	if err != nil {
		fmt.Println("rejected:", err) // fail the attempt without touching the network
		return
	}
	var attemptErr error // the attempt's outcome; nil here
	done(attemptErr)

	fmt.Println(set.State(target))
	// Output: closed
}

// A full outage opens the breaker after 25 failed attempts; from then on
// attempts fail fast with Unavailable and ErrOpen.
func ExampleSet_outage() {
	set, err := breaker.NewSet(breaker.Config{
		OnStateChange: func(key string, from, to breaker.State) {
			fmt.Printf("%s: %s -> %s\n", key, from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	const target = "dns:///orders.example:443"
	failed := 0
	for set.State(target) == breaker.StateClosed {
		done, err := set.Allow(target)
		if err != nil {
			panic(err)
		}
		done(status.Error(codes.Unavailable, "connection refused"))
		failed++
	}
	fmt.Println("failed attempts:", failed)

	_, err = set.Allow(target)
	fmt.Println(err)
	fmt.Println(errors.Is(err, breaker.ErrOpen), status.Code(err))
	// Output:
	// dns:///orders.example:443: closed -> open
	// failed attempts: 25
	// breaker: circuit open for "dns:///orders.example:443" (state open)
	// true Unavailable
}

// How the default classification treats attempt outcomes.
func ExampleDefaultIsFailure() {
	for _, o := range []struct {
		name string
		err  error
	}{
		{"nil", nil},
		{"status Unavailable", status.Error(codes.Unavailable, "")},
		{"status DeadlineExceeded", status.Error(codes.DeadlineExceeded, "")},
		{"status NotFound", status.Error(codes.NotFound, "")},
		{"io.EOF", io.EOF},
		{"status Canceled", status.Error(codes.Canceled, "")},
		{"context.DeadlineExceeded", context.DeadlineExceeded},
	} {
		fmt.Printf("%-24s failure=%-5v excluded=%v\n", o.name, breaker.DefaultIsFailure(o.err), breaker.DefaultIsExcluded(o.err))
	}
	// Output:
	// nil                      failure=false excluded=false
	// status Unavailable       failure=true  excluded=false
	// status DeadlineExceeded  failure=true  excluded=false
	// status NotFound          failure=false excluded=false
	// io.EOF                   failure=false excluded=false
	// status Canceled          failure=false excluded=true
	// context.DeadlineExceeded failure=false excluded=true
}

// Zero fields mean the default, so Config{} is valid; Validate reports every
// bad field at once, naming each.
func ExampleConfig_Validate() {
	fmt.Println(breaker.Config{}.Validate())
	err := breaker.Config{FailureRatio: 1.5, OpenTimeout: -time.Second}.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, breaker.ErrInvalidConfig))
	// Output:
	// <nil>
	// breaker: invalid config: FailureRatio must be in (0,1] (0 means default), got 1.5
	// breaker: invalid config: OpenTimeout must be >= 0 (0 means default), got -1s
	// true
}
