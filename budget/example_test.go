package budget_test

import (
	"errors"
	"fmt"
	"math"

	"github.com/grpc-resilience/resilience/budget"
)

func Example() {
	// TokenRatio is left zero: the default, 1 token per success.
	b, err := budget.New(budget.Config{MaxTokens: 4})
	if err != nil {
		panic(err)
	}
	b.Failure()
	b.Failure()
	fmt.Println(b.AllowRetry(), b.Tokens()) // at MaxTokens/2: no more retries
	b.Success()
	fmt.Println(b.AllowRetry(), b.Tokens())
	// Output:
	// false 2
	// true 3
}

// A zero field means the default, so Config{} is the default budget.
// Validate reports every bad field at once, naming each.
func ExampleConfig_Validate() {
	fmt.Println(budget.Config{}.Validate())
	b, _ := budget.New(budget.Config{})
	fmt.Println(b.Tokens())

	err := budget.Config{MaxTokens: -1, TokenRatio: math.NaN()}.Validate()
	fmt.Println(errors.Is(err, budget.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// <nil>
	// 100
	// true
	// budget: invalid config: MaxTokens must be in (0, 1000] (0 means default), got -1
	// budget: invalid config: TokenRatio must be in [0.001, MaxTokens] (0 means default), got NaN
}
