// Package copytest checks that the examples compile outside this
// repository, as they do for a user who copies one into a module of their
// own: no example may import an internal package of the library.
package copytest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/grpc-resilience/resilience/examples/internal/modtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestExamplesBuildInAnotherModule copies the main package of every
// example into a new module that requires the library through a replace
// directive pointing at this repository, and builds them there.
func TestExamplesBuildInAnotherModule(t *testing.T) {
	examplesDir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(examplesDir)
	dir := t.TempDir()

	copied := 0
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src := filepath.Join(examplesDir, e.Name())
		if !e.IsDir() || !isMainPackage(t, src) {
			continue
		}
		copyMainFiles(t, src, filepath.Join(dir, e.Name()))
		copied++
	}
	if copied < 2 {
		t.Fatalf("found %d examples to copy in %s", copied, examplesDir)
	}

	// The new module requires what the examples module requires, with the
	// library replaced by this repository.
	modtest.WriteModule(t, dir, root, "example.com/copied")

	cmd := exec.Command(modtest.GoTool(t), "build", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		t.Fatalf("go build ./... in a module outside the repository (%d examples): %v\n%s\ngo.mod:\n%s", copied, err, out, mod)
	}
}

// isMainPackage reports whether dir holds a main package.
func isMainPackage(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte("\npackage main\n"))
}

// copyMainFiles copies the non-test Go files of src into dst, and the
// JSON files they may embed.
func copyMainFiles(t *testing.T, src, dst string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, data...)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		modtest.WriteFile(t, filepath.Join(dst, filepath.Base(f)), string(b))
	}
}
