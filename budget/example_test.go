package budget_test

import (
	"fmt"

	"github.com/grpc-resilience/resilience/budget"
)

func Example() {
	b, err := budget.New(budget.Config{MaxTokens: 4, TokenRatio: 1})
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
