package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestChaining(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `Echo, the server fails twice:
  attempt Echo finished call: Unavailable
  attempt Echo finished call: Unavailable  (resilience-attempt: 2)
  attempt Echo finished call: OK  (resilience-attempt: 3)
  call    Echo finished call: OK
selector: resilience for every method but ClientStream; each fails twice:
  ServerStream  OK           3 attempt(s) reached the server
  ClientStream  Unavailable  1 attempt(s) reached the server
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
