// Package testkit holds the test that the README's "Testing your client's
// resilience" section shows, so that the code users paste is compiled and
// run, and a check that the README shows it verbatim.
package testkit

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestREADMEShowsTheTest checks that the README's section shows
// client_test.go as it is.
func TestREADMEShowsTheTest(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("client_test.go")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "## Testing your client's resilience\n"
	_, section, ok := strings.Cut(string(readme), heading)
	if !ok {
		t.Fatalf("README.md has no %q section", strings.TrimSpace(heading))
	}
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, "```go\n"+string(code)+"```\n") {
		t.Errorf("README.md's %q section does not show examples/testkit/client_test.go verbatim in a ```go block", strings.TrimSpace(heading))
	}
}
