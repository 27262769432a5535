// Package readme checks README.md as a newcomer uses it: every Go block
// compiles as pasted into a file of its own, in a module outside this
// repository (as examples/copytest builds the examples), and every command
// it shows runs as written from the repository root, in a copy of the
// repository. Slow commands run in a short form unless -readme.full is
// given; a command this test does not know fails it, so that the README
// cannot show one that nobody ran.
//
//	README_COMMANDS=1 go -C examples test -run TestCommandsRun ./readme               # short forms of the slow commands
//	README_COMMANDS=1 go -C examples test -run TestCommandsRun ./readme -readme.full  # every command as written
package readme

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grpc-resilience/resilience/examples/internal/modtest"
)

var full = flag.Bool("readme.full", false, "run the README's slow commands as written, not in their short form")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// repoRoot is the repository root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var fence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")

// goBlocks returns the README's ```go blocks.
func goBlocks(md string) []string {
	var out []string
	for _, m := range fence.FindAllStringSubmatch(md, -1) {
		if m[1] == "go" {
			out = append(out, m[2])
		}
	}
	return out
}

// TestGoBlocksCompile writes every ```go block of the README into a
// package of its own in a new module that requires the library (replaced
// by this repository) and type-checks them all with go vet: a block must
// be a whole file, its imports included.
func TestGoBlocksCompile(t *testing.T) {
	root := repoRoot(t)
	blocks := goBlocks(readme(t))
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d ```go blocks, want at least 5", len(blocks))
	}
	dir := t.TempDir()
	pkgLine := regexp.MustCompile(`(?m)^package (\w+)$`)
	for i, b := range blocks {
		m := pkgLine.FindStringSubmatch(b)
		if m == nil {
			t.Errorf("README.md's ```go block %d has no package clause: it does not compile as pasted:\n%s", i+1, b)
			continue
		}
		name := "main.go"
		if strings.HasSuffix(m[1], "_test") {
			name = "snippet_test.go"
		}
		sub := filepath.Join(dir, fmt.Sprintf("block%02d", i+1))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		modtest.WriteFile(t, filepath.Join(sub, name), b)
	}
	modtest.WriteModule(t, dir, root, "example.com/readme")
	cmd := exec.Command(modtest.GoTool(t), "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the README's Go blocks (blockNN is the NNth ```go block): %v\n%s", err, out)
	}
}

// commands returns the commands README.md shows, in order: every line of a
// ```sh block (comments and continuation comments dropped) and every
// inline code span that starts like a command.
func commands(md string) []string {
	var out []string
	for _, m := range fence.FindAllStringSubmatch(md, -1) {
		if m[1] != "sh" {
			continue
		}
		for _, line := range strings.Split(m[2], "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if i := strings.Index(line, "   #"); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, line)
			}
		}
	}
	prose := fence.ReplaceAllString(md, "")
	inline := regexp.MustCompile("`([^`]+)`")
	looksLike := regexp.MustCompile(`^(go \S+ \S|promtool |benchstat |curl |scripts/\S+\.sh|\.ci/run|[A-Z_]+=\S+ )`)
	for _, m := range inline.FindAllStringSubmatch(prose, -1) {
		c := strings.Join(strings.Fields(m[1]), " ")
		if looksLike.MatchString(c) { // "go run" alone names the command, a go command has arguments
			out = append(out, c)
		}
	}
	return out
}

// how says what the test does with one README command.
type how struct {
	// short, if set, is what runs instead of the command unless
	// -readme.full (or always, with always): the same command with flags
	// that make it quick, or that keep it from writing outside the copy.
	short  string
	always bool
	// serve: the command serves until interrupted; it runs until url
	// answers, then gets SIGINT and must exit cleanly.
	serveURL string
	// skip, if set, says why the command is not run here; check, if set,
	// checks what can be checked instead.
	skip  string
	check func(t *testing.T, root string)
	// needs names a program the command needs on PATH; without it the
	// command is skipped (CI installs them).
	needs string
	// otlp: the command exports to the default OTLP endpoint, which the
	// test serves.
	otlp bool
}

const benchstat = "go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /fallback fallback.txt"

// known are the README's commands and how each runs here.
var known = map[string]how{
	"go get github.com/grpc-resilience/resilience@v0.1.0": {skip: "the module is not published yet", check: func(t *testing.T, root string) {
		changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
		if err != nil || !bytes.Contains(changelog, []byte("## [0.1.0]")) {
			t.Errorf("the README tells users to go get v0.1.0, which CHANGELOG.md does not describe (%v)", err)
		}
	}},
	"go -C examples run ./chaos":                         {short: "go -C examples run ./chaos -duration 2s -rate 20"},
	"go -C examples run ./chaos -plot ../docs/chaos.svg": {short: "go -C examples run ./chaos -duration 2s -rate 20 -plot ../docs/chaos.svg"},
	"go -C examples run ./chaos -h":                      {},
	"scripts/test.sh":                                    {skip: "it runs this test", check: executable("scripts/test.sh")},
	".ci/run":                                            {skip: "it installs Debian packages and runs this test", check: executable(".ci/run")},
	"scripts/jaeger.sh":                                  {skip: "it builds Jaeger from source (~5 min); .ci/run runs it, and examples/tracing's Jaeger test uses its binary", check: executable("scripts/jaeger.sh")},
	`"$(scripts/jaeger.sh)" &`:                           {skip: "it builds and starts Jaeger; examples/tracing's Jaeger test runs the same with JAEGER_BIN", check: executable("scripts/jaeger.sh")},
	"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 go -C examples run ./chaos": {otlp: true,
		short: "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 go -C examples run ./chaos -duration 2s -rate 20"},
	"curl -s 'http://127.0.0.1:16686/api/traces?service=chaos-client&operation=chaos%20resilient&limit=5'": {skip: "it reads Jaeger's query API, which the Jaeger test of examples/tracing reads"},
	"go -C examples run ./serviceconfig":                                            {},
	"go -C examples run ./serviceconfig -config serviceconfig/service.json":         {},
	"go -C examples test -run TestREADMEServiceConfigUnderNoise -v ./serviceconfig": {short: "go -C examples test -short -run TestREADMEServiceConfigUnderNoise ./serviceconfig"},
	"go test -run '^$' -bench BenchmarkFallbackHappyPath -benchmem -count 10 ./interceptors/ > fallback.txt": {
		short: "go test -run '^$' -bench BenchmarkFallbackHappyPath -benchmem -count 2 -benchtime 200x ./interceptors/ > fallback.txt"},
	benchstat: {},
	"go install golang.org/x/perf/cmd/benchstat@latest": {always: true, // not into the user's GOPATH/bin
		short: `GOBIN="$PWD/bin" go install golang.org/x/perf/cmd/benchstat@latest && bin/benchstat -h 2>&1 | grep -qi usage`},
	"go -C examples run ./tracing":                                 {otlp: true},
	"go -C examples run ./prometheus":                              {serveURL: "http://127.0.0.1:9464/metrics"},
	"promtool test rules monitoring/tests/*.test.yml":              {needs: "promtool"},
	"go -C examples run ./beyond":                                  {short: "go -C examples run ./beyond -quick"},
	"go -C examples run ./quickstart":                              {},
	"go -C examples run ./methodpolicy":                            {},
	"go -C examples run ./percall":                                 {},
	"go -C examples run ./breakerhooks":                            {},
	"go -C examples run ./otelgrpc":                                {},
	"go -C examples run ./chaining":                                {},
	"go -C examples test ./testkit":                                {},
	"go -C redisbreaker run ./cmd/fleet":                           {needs: "redis-server", short: "go -C redisbreaker run ./cmd/fleet -duration 2s -warmup 500ms"},
	"go -C bench run ./cmd/overload":                               {short: "go -C bench run ./cmd/overload -quick -q -stacks bare,ours -scenarios chain"},
	"go -C redisbreaker test -run '^$' -bench AllowDone -benchmem": {short: "go -C redisbreaker test -run '^$' -bench AllowDone -benchmem -benchtime 1000x"},
	"scripts/generate.sh --check":                                  {needs: "git"},
	"scripts/generate.sh":                                          {skip: "it rewrites the generated code; scripts/generate.sh --check runs the same steps", check: executable("scripts/generate.sh")},
	"scripts/apicheck.sh":                                          {needs: "git"},
}

func executable(rel string) func(t *testing.T, root string) {
	return func(t *testing.T, root string) {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: not an executable file (%v)", rel, err)
		}
	}
}

// TestEveryCommandIsKnown: the test runs (or checks) every command the
// README shows, so every one must be in known; and known lists no command
// the README no longer shows.
func TestEveryCommandIsKnown(t *testing.T) {
	cmds := commands(readme(t))
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[c] = true
		if _, ok := known[c]; !ok {
			t.Errorf("README.md shows the command %q, which this test does not run: add it to known", c)
		}
	}
	for c := range known {
		if !seen[c] {
			t.Errorf("known lists %q, which README.md no longer shows", c)
		}
	}
}

// TestCommandsRun runs the README's commands, in order, from the root of a
// copy of the repository (so that what they write stays there).
func TestCommandsRun(t *testing.T) {
	if os.Getenv("README_COMMANDS") == "" {
		// It builds and runs every example: alone, so that it slows no
		// timing-sensitive test of another package down.
		t.Skip("set README_COMMANDS=1 to run the README's commands (scripts/test.sh does, on its own)")
	}
	root := repoRoot(t)
	copyRoot := copyRepo(t, root)
	ran := map[string]bool{}
	for _, c := range commands(readme(t)) {
		h, ok := known[c]
		if !ok || ran[c] {
			continue // unknown: TestEveryCommandIsKnown reports it; shown twice: run once
		}
		ran[c] = true
		t.Run(strings.ReplaceAll(c, "/", "_"), func(t *testing.T) {
			if h.check != nil {
				h.check(t, copyRoot)
			}
			if h.skip != "" {
				t.Skip(h.skip)
			}
			if h.needs != "" {
				if _, err := exec.LookPath(h.needs); err != nil {
					t.Skipf("needs %s on PATH (.ci/run installs it)", h.needs)
				}
			}
			run := c
			if h.short != "" && (!*full || h.always) {
				run = h.short
			}
			if h.otlp {
				if !serveOTLP(t) {
					t.Skip("127.0.0.1:4317 is taken: cannot stand in for the OTLP collector")
				}
			}
			if h.serveURL != "" {
				serve(t, copyRoot, run, h.serveURL)
				return
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			cmd := shell(ctx, copyRoot, run)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", run, err, tail(out))
			}
			t.Logf("%s:\n%s", run, tail(out))
		})
	}
}

// shell returns bash running line in dir, in a process group of its own.
func shell(ctx context.Context, dir, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "PATH="+filepath.Dir(modtest.GoToolPath())+string(os.PathListSeparator)+os.Getenv("PATH"))
	setGroup(cmd)
	return cmd
}

// serve runs line until url answers 200, then interrupts it; it must exit
// without an error.
func serve(t *testing.T, dir, line, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := shell(ctx, dir, line)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			t.Fatalf("%s exited before %s answered: %v\n%s", line, url, err, tail(out.Bytes()))
		case <-ctx.Done():
			interrupt(cmd)
			<-done
			t.Fatalf("%s: %s did not answer in time\n%s", line, url, tail(out.Bytes()))
		case <-tick.C:
		}
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
	}
	interrupt(cmd)
	select {
	case err := <-done:
		// go run itself exits with status 1 after an interrupt, whatever
		// the program did: judge the program by what it printed.
		if err != nil && (bytes.Contains(out.Bytes(), []byte("panic:")) || !interruptedGoRun(err)) {
			t.Errorf("%s after an interrupt: %v\n%s", line, err, tail(out.Bytes()))
		}
	case <-time.After(time.Minute):
		killGroup(cmd)
		<-done
		t.Errorf("%s did not exit within a minute of an interrupt", line)
	}
}

// interruptedGoRun reports whether err is the exit status go run ends with
// when interrupted.
func interruptedGoRun(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 1
}

// copyRepo copies the repository's files (those git tracks, or all but
// .git) into a new directory and returns it.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	var files []string
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			files = append(files, f)
		}
	} else {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	// Some scripts (apicheck) read the history: give the copy one.
	if _, err := exec.LookPath("git"); err == nil {
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=readme", "-c", "user.email=readme@example.com", "commit", "-qm", "copy"}} {
			cmd := exec.Command("git", args...)
			cmd.Dir = dst
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v in the copy: %v\n%s", args, err, out)
			}
		}
	}
	return dst
}

// serveOTLP serves a stand-in OTLP/gRPC collector on 127.0.0.1:4317 for
// the rest of the test; false if the port is taken.
func serveOTLP(t *testing.T) bool {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:4317")
	if err != nil {
		return false
	}
	stop := startCollector(lis)
	t.Cleanup(stop)
	return true
}

func tail(b []byte) string {
	const max = 4000
	if len(b) > max {
		return "…" + string(b[len(b)-max:])
	}
	return string(b)
}
