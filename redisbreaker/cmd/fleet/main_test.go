package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A shortened run of the program (2s per scenario, a 500ms ready wait):
// the table is well-formed, and the shared fleet meets what the figures
// claim, over real gRPC connections and a real Redis. With one bad member, the healthy
// members' calls all succeed and their breakers never leave closed, while
// the bad member's breaker opens; a full outage opens every breaker within
// 60 attempts (local: 125), then the fleet probes the dead server a
// handful of times a second; 30% noise opens nothing.
func TestShortRun(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not on PATH (CI is set, so this fails): %v", err)
		}
		t.Skipf("redis-server not on PATH: install Debian package redis-server to run this test (%v)", err)
	}
	rs, err := startRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.stop()

	// A ready wait shorter than the run, so that the connects the bad
	// member finds refused count within it.
	p := Params{Duration: 2 * time.Second, WarmUp: 500 * time.Millisecond, Interval: 100 * time.Millisecond, ReadyWait: 500 * time.Millisecond}
	var log bytes.Buffer
	rows, err := Run(context.Background(), rs.addr, p, Scenarios(), &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out bytes.Buffer
	Print(&out, p, rows)
	t.Logf("\n%s", out.String())

	for _, r := range rows {
		sc, sh, lo := r.Scenario, r.Shared, r.Local
		if sh.Degraded {
			t.Errorf("%s: a Shared ran degraded", sc.Name)
		}
		switch {
		case sc.hasBad():
			if sh.HealthySuccess < 0.99 || sh.HealthyOpen != 0 {
				t.Errorf("%s: healthy members' calls %.1f%% OK, a healthy breaker not closed for %v; want >= 99%% and never",
					sc.Name, 100*sh.HealthySuccess, sh.HealthyOpen)
			}
			if !sh.BadOpened || !lo.BadOpened {
				t.Errorf("%s: the bad member's breaker opened: shared %v, local %v; want both (it protects itself)", sc.Name, sh.BadOpened, lo.BadOpened)
			}
		case sc.Outage:
			if sh.UntilAllOpen > 60 || sh.UntilAllOpen >= lo.UntilAllOpen {
				t.Errorf("%s: every breaker open after %d attempts (local: %d), want <= 60 and fewer", sc.Name, sh.UntilAllOpen, lo.UntilAllOpen)
			}
			if sh.DeadPerSec > 20 || sh.DeadPerSec >= lo.DeadPerSec {
				t.Errorf("%s: %.1f attempts/s at the dead server (local: %.1f), want about 10 and fewer", sc.Name, sh.DeadPerSec, lo.DeadPerSec)
			}
			if sh.FirstSuccess < 0 {
				t.Errorf("%s: no success after healing", sc.Name)
			}
		case sc.Noise > 0:
			if sh.Openings != 0 || lo.Openings != 0 {
				t.Errorf("%s: %d openings shared, %d local; want none", sc.Name, sh.Openings, lo.Openings)
			}
		}
	}
	for _, want := range []string{"healthy members' calls OK", "attempts until all open", "first success after healing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
