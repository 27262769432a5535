package modtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// WriteModule writes go.mod and go.sum for module in dir: it requires what
// root's examples module requires, with the library replaced by root. The
// checksums come from the repository's go.sum files, so a build needs no
// network when the module cache is warm.
func WriteModule(t testing.TB, dir, root, module string) {
	t.Helper()
	exMod, err := os.ReadFile(filepath.Join(root, "examples", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var requires []string
	for _, line := range strings.Split(string(exMod), "\n") {
		if !strings.HasPrefix(line, "module ") && !strings.HasPrefix(line, "replace ") {
			requires = append(requires, line)
		}
	}
	WriteFile(t, filepath.Join(dir, "go.mod"), "module "+module+"\n"+strings.Join(requires, "\n")+
		"\nreplace github.com/grpc-resilience/resilience => "+root+"\n")
	var sum []byte
	for _, f := range []string{filepath.Join(root, "go.sum"), filepath.Join(root, "examples", "go.sum")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum = append(sum, b...)
	}
	WriteFile(t, filepath.Join(dir, "go.sum"), string(sum))
}

// WriteFile writes content to name.
func WriteFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// GoToolPath returns the go command of the toolchain running the test, or
// the one on PATH; "" if there is none.
func GoToolPath() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	p, _ := exec.LookPath("go")
	return p
}

// GoTool is GoToolPath, skipping the test if there is no go command.
func GoTool(t testing.TB) string {
	t.Helper()
	p := GoToolPath()
	if p == "" {
		t.Skip("no go command")
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
