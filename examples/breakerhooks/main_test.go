package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBreakerHooks(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `the server fails every attempt:
call 1: Unavailable after 3 attempt(s), 3 reached the server
  [hook] breaker closed -> open
call 2: Unavailable after 2 attempt(s), 2 reached the server; refused by the breaker (state open)
call 3: Unavailable after 0 attempt(s), 0 reached the server; refused by the breaker (state open)
state: open
the server recovers; the breaker stays open for its OpenTimeout:
call 4: Unavailable after 0 attempt(s), 0 reached the server; refused by the breaker (state open)
  [hook] breaker open -> half-open
after the OpenTimeout one probe may pass:
  [hook] breaker half-open -> closed
call 5: OK after 1 attempt(s), 1 reached the server
call 6: OK after 1 attempt(s), 1 reached the server
state: closed
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
