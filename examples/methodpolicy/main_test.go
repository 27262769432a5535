package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMethodPolicy(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `method        policy      failures injected  caller got   attempts at the server
Echo          5 attempts  3                  OK           4
ClientStream  no retry    1                  Unavailable  1
ServerStream  default: 3  3                  Unavailable  3
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
