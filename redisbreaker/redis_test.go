package redisbreaker

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pkgRedisMu.Lock()
		if pkgRedis != nil {
			pkgRedis.kill()
		}
		pkgRedisMu.Unlock()
		os.Exit(code)
	}))
}

// redisServer is a real redis-server process on a loopback port, with
// persistence off, that a test may kill, restart, stop and continue.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	cmd  *exec.Cmd
	// args are redis-server's arguments; nil: a plain server on addr with
	// persistence off.
	args []string
}

var (
	pkgRedisMu sync.Mutex
	pkgRedis   *redisServer
)

// sharedRedis returns the package's redis-server, started on first use, for
// tests that do not harm it; tests that kill or stop Redis start their own.
// Each caller flushes nothing: tests keep apart by their key prefixes.
func sharedRedis(t *testing.T) *redisServer {
	t.Helper()
	pkgRedisMu.Lock()
	defer pkgRedisMu.Unlock()
	if pkgRedis == nil {
		dir, err := os.MkdirTemp("", "redisbreaker-test-")
		if err != nil {
			t.Fatal(err)
		}
		pkgRedis = startRedisIn(t, dir)
	}
	return pkgRedis
}

func benchRedis(b *testing.B) *redisServer {
	b.Helper()
	pkgRedisMu.Lock()
	defer pkgRedisMu.Unlock()
	if pkgRedis == nil {
		dir, err := os.MkdirTemp("", "redisbreaker-bench-")
		if err != nil {
			b.Fatal(err)
		}
		pkgRedis = startRedisIn(b, dir)
	}
	return pkgRedis
}

// startRedis starts a private redis-server that the test stops at its end.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := startRedisIn(t, t.TempDir())
	t.Cleanup(r.kill)
	return r
}

func startRedisIn(t testing.TB, dir string) *redisServer {
	t.Helper()
	return startRedisWith(t, dir, freeAddr(t), nil)
}

// startRedisWith starts redis-server in dir with args (nil: a plain server
// on addr) and waits until it answers on addr. Without redis-server on
// PATH the test skips, unless CI is set: then it fails.
func startRedisWith(t testing.TB, dir, addr string, args []string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not on PATH (CI is set, so this fails): %v", err)
		}
		t.Skipf("redis-server not on PATH: install Debian package redis-server to run this test (%v)", err)
	}
	r := &redisServer{t: t, addr: addr, dir: dir, args: args}
	r.start()
	return r
}

// handedOut holds the ports freeAddr returned: the kernel may offer a port
// again once its listener is closed, before the server meant to take it
// has.
var handedOut sync.Map

// freeAddr returns a loopback address with a port free at the time, never
// the same twice in one test binary.
func freeAddr(t testing.TB) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

func (r *redisServer) start() {
	r.t.Helper()
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer log.Close()
	args := r.args
	if args == nil {
		args = []string{"--port", port(r.addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir}
	}
	r.cmd = exec.Command("redis-server", args...)
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s not answering after 10s: %v; its log:\n%s", r.addr, err, out)
		}
		time.Sleep(10 * time.Millisecond) // polling for the process to come up
	}
}

// kill ends the process (its data goes with it: no persistence).
func (r *redisServer) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *redisServer) signal(sig syscall.Signal) {
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// client returns a client of its own, closed when the test ends, with
// context deadlines honoured (so Options.Timeout bounds a round).
func (r *redisServer) client(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  r.addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialTimeout:           200 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// dial is client as fleets take it.
func (r *redisServer) dial(t *testing.T) redis.UniversalClient { return r.client(t) }

var prefixes sync.Map

// prefix returns a key prefix of the test's own.
func prefix(t *testing.T) string {
	n, _ := prefixes.LoadOrStore(t.Name(), strconv.FormatInt(time.Now().UnixNano(), 36))
	return fmt.Sprintf("test-%s-%s", filepath.Base(t.Name()), n)
}

// eventually polls cond every few milliseconds until it holds or d passes.
// synced waits until every member's first round with Redis succeeded.
func synced(t testing.TB, members ...*Shared) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for _, m := range members {
		select {
		case <-m.synced:
		case <-timeout.C:
			t.Fatal("no first round with Redis within 5s")
		}
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}
