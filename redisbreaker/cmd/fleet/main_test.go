package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A shortened run of the program: 10 clients at 20 calls/s, a short open
// period, one short benchmark pair. The numbers must be well-formed and
// the shared fleet must have stopped after fewer attempts than the local one.
func TestShortRun(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not on PATH (CI is set, so this fails): %v", err)
		}
		t.Skipf("redis-server not on PATH: install Debian package redis-server to run this test (%v)", err)
	}
	if err := flag.Set("test.benchtime", "20ms"); err != nil {
		t.Fatal(err)
	}
	rs, err := startRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.stop()

	p := DefaultParams()
	p.Clients, p.Rate = 10, 20
	p.WarmUp, p.OpenTimeout = 300*time.Millisecond, 300*time.Millisecond
	p.Limit, p.BenchPairs = 20*time.Second, 1
	var log bytes.Buffer
	f, err := Run(context.Background(), rs.addr, p, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out bytes.Buffer
	Print(&out, f)
	t.Logf("\n%s", out.String())

	for name, ph := range map[string]Phase{"local": f.Local, "shared": f.Shared} {
		// Every breaker needs 25 failures in a row, its own (local) or the
		// fleet's (shared).
		if min := map[string]int{"local": 25 * p.Clients, "shared": 25}[name]; ph.AttemptsBeforeOpen < min {
			t.Errorf("%s: %d attempts before every breaker opened, want >= %d", name, ph.AttemptsBeforeOpen, min)
		}
		if ph.OutageToAllOpen <= 0 || ph.FirstToLastOpen < 0 || ph.FirstToLastOpen > ph.OutageToAllOpen {
			t.Errorf("%s: outage to all open %v, first to last opening %v", name, ph.OutageToAllOpen, ph.FirstToLastOpen)
		}
		if ph.Probes < 1 {
			t.Errorf("%s: %d half-open probes, want >= 1", name, ph.Probes)
		}
		if ph.RecoveryToAllClosed < p.OpenTimeout/2 || ph.HalfOpenToAllClosed < 0 || ph.HalfOpenToAllClosed > ph.RecoveryToAllClosed {
			t.Errorf("%s: recovery to all closed %v, first half-open to all closed %v", name, ph.RecoveryToAllClosed, ph.HalfOpenToAllClosed)
		}
		if ph.Calls < ph.AttemptsBeforeOpen {
			t.Errorf("%s: %d calls, fewer than the %d attempts counted", name, ph.Calls, ph.AttemptsBeforeOpen)
		}
	}
	if f.Shared.AttemptsBeforeOpen >= f.Local.AttemptsBeforeOpen {
		t.Errorf("shared fleet opened after %d attempts, local after %d: want shared < local",
			f.Shared.AttemptsBeforeOpen, f.Local.AttemptsBeforeOpen)
	}
	if f.Local.Degraded || f.Shared.Degraded {
		t.Error("a Shared ran degraded")
	}
	if !(f.LocalNs > 0 && f.SharedNs > 0 && f.Ratio > 0 && f.PairRatio > 0) {
		t.Errorf("benchmark: local %v ns, shared %v ns, ratios %v and %v", f.LocalNs, f.SharedNs, f.Ratio, f.PairRatio)
	}
	for _, want := range []string{"attempts at the server before every breaker opened", "half-open probes", "happy-path ratio"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
