package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPerCall(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `server fails 3x, default (3 attempts)           Unavailable      attempts 3
server fails 3x, MaxAttempts(5)                 OK               attempts 4
server fails 1x, MaxAttempts(1)                 Unavailable      attempts 1
1st attempt hangs, PerAttemptTimeout(50ms)      OK               attempts 2
1st attempt hangs, Hedging(20ms)                OK               attempts 2
server fails 7x, 7 attempts 10ms apart          Unavailable      attempts 7
next call: the breaker is open                  Unavailable      attempts 0, refused by the open breaker
next call, NoBreaker()                          OK               attempts 1
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
