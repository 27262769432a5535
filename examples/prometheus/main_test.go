package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grpc-resilience/resilience/monitoring"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// need returns the path of the Prometheus tool name (prometheus, promtool):
// the test is skipped when it is not installed, unless CI is set, where
// it fails.
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not on PATH and CI is set: .ci/run installs it (apt-get install -y prometheus)", name)
	}
	t.Skipf("%s is not on PATH: install Debian's prometheus package (apt-get install -y prometheus) to run this test", name)
	return ""
}

const monitoringDir = "../../monitoring"

// TestPromtoolRules checks the shipped rule files and runs their promtool
// unit tests on synthetic series.
func TestPromtoolRules(t *testing.T) {
	promtool := need(t, "promtool")
	tests, err := filepath.Glob(filepath.Join(monitoringDir, "tests", "*.test.yml"))
	if err != nil || len(tests) < 2 {
		t.Fatalf("promtool tests %v (%v), want the monitoring/tests files", tests, err)
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(monitoringDir, "resilience.rules.yml"), filepath.Join(monitoringDir, "resilience-grpc.rules.yml")},
		append([]string{"test", "rules"}, tests...),
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startPrometheus runs the prometheus binary with a scrape of target every
// second and rules evaluated every second, storage in a temporary
// directory; it returns the HTTP API's base URL. The process is killed,
// and waited for, at the end of the test.
func startPrometheus(t *testing.T, bin, target string, rules []byte) string {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rulesFile, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: app
    static_configs: [{targets: [%q]}]
`, rulesFile, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 20s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a process we do not control
	}
}

// apiGet reads the data of a GET of Prometheus's HTTP API at path into
// data.
func apiGet(base, path string, data any) error {
	resp, err := http.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	r := struct {
		Status string
		Data   any
	}{Data: data}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return fmt.Errorf("%s: %v: %s", path, err, body)
	}
	return nil
}

// firingAlerts reads the names of the firing alerts from /api/v1/alerts.
func firingAlerts(base string) (map[string]bool, error) {
	var data struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	if err := apiGet(base, "/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out, nil
}

// TestAlertsFireAndResolve runs the example's phases, shortened, under a
// real Prometheus that scrapes it every second with the shipped rules
// rendered for short windows, and reads the alerts back through the HTTP
// API: the shedding alert must fire once the server is saturated and no
// other alert with it (overload is not an outage), each other alert in the
// degraded to outage phases, and all must resolve once the downstream has
// recovered. The overload series the dashboards read must be in what
// Prometheus scraped.
func TestAlertsFireAndResolve(t *testing.T) {
	for _, names := range []string{"resilience", "grpc"} {
		t.Run(names, func(t *testing.T) {
			t.Parallel()
			alertsFireAndResolve(t, names)
		})
	}
}

func alertsFireAndResolve(t *testing.T, names string) {
	bin := need(t, "prometheus")
	const window = 4 * time.Second
	rules := monitoring.Rules(monitoring.RuleParams{
		GRPCNames:      names == "grpc",
		Window:         window,
		BaselineWindow: time.Minute,
		BaselineOffset: 10 * time.Minute, // longer than the run: no baseline, the floor alone
		RatioFor:       2 * time.Second,
		BreakerFor:     3 * time.Second,
		BudgetFor:      2 * time.Second,
		ShedFor:        2 * time.Second,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := startPrometheus(t, bin, lis.Addr().String(), rules)

	cfg := config{
		Names: names, Rate: 100, OpenTimeout: time.Second,
		Healthy: 5 * time.Second, Saturated: 8 * time.Second, SaturatedCapacity: 0.5,
		Degraded: 7 * time.Second, DegradedFailures: 0.3,
		Overloaded: 7 * time.Second, OverloadedFailures: 0.6, Outage: 7 * time.Second,
		Recovered: 0, // until the test is done
	}
	var mu sync.Mutex
	start := time.Now()
	phaseAt := map[string]time.Duration{}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, cfg, lis, io.Discard, io.Discard, func(p string) {
			mu.Lock()
			defer mu.Unlock()
			phaseAt[p] = time.Since(start)
		})
	}()
	defer func() {
		cancel()
		<-ran
	}()
	phase := func(p string) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		d, ok := phaseAt[p]
		return d, ok
	}

	all := []string{monitoring.AlertRetryRatio, monitoring.AlertUnavailable, monitoring.AlertBreakerOpen, monitoring.AlertBudgetThrottle,
		monitoring.AlertShedding}
	fired := map[string]time.Duration{}
	resolved := map[string]time.Duration{}
	deadline := time.Now().Add(62 * time.Second)
	for {
		firing, err := firingAlerts(base)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Since(start)
		for name := range firing {
			if _, ok := fired[name]; !ok {
				fired[name] = now
			}
			delete(resolved, name)
		}
		for name := range fired {
			if _, ok := resolved[name]; !firing[name] && !ok {
				resolved[name] = now
			}
		}
		if _, recovered := phase(PhaseRecovered); recovered && len(fired) == len(all) && len(firing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: fired %v, resolved %v, firing now %v; phases %v", now.Round(time.Second), fired, resolved, firing, phaseAt)
		}
		time.Sleep(250 * time.Millisecond) // polling Prometheus's API
	}

	saturated, _ := phase(PhaseSaturated)
	degraded, _ := phase(PhaseDegraded)
	outage, _ := phase(PhaseOutage)
	recovered, _ := phase(PhaseRecovered)
	var lines []string
	for _, name := range all {
		f, r := fired[name], resolved[name]
		lines = append(lines, fmt.Sprintf("%-32s fired %5.1fs  resolved %5.1fs", name, f.Seconds(), r.Seconds()))
		from, to := degraded, recovered
		if name == monitoring.AlertShedding {
			// Saturation, and nothing else, makes the client shed: the
			// alert fires in that phase, or within the rate window
			// after it, while the window still holds its refusals.
			from, to = saturated, degraded+window
		}
		if f < from || f > to {
			t.Errorf("%s fired at %v, outside its faults (%v to %v)", name, f, from, to)
		}
	}
	// Connection errors and an open breaker last as long as the faults do:
	// their alerts end only with the recovery. (Retries may stop earlier:
	// the budget and the breaker cut them.)
	for _, name := range []string{monitoring.AlertUnavailable, monitoring.AlertBreakerOpen} {
		if r := resolved[name]; r < recovered {
			t.Errorf("%s resolved at %v, before the recovery (%v)", name, r, recovered)
		}
	}
	if f := fired[monitoring.AlertBreakerOpen]; f < outage {
		t.Errorf("%s fired at %v, before the outage (%v)", monitoring.AlertBreakerOpen, f, outage)
	}
	// The gauges are per target; the refusals and waits per call.
	gauge, call := monitoring.LabelTarget, monitoring.LabelServerAddress
	if names == "grpc" {
		gauge, call = monitoring.LabelGRPCTarget, monitoring.LabelGRPCTarget
	}
	for name, label := range map[string]string{
		monitoring.LimiterLimit: gauge, monitoring.LimiterInFlight: gauge, monitoring.LimiterQueued: gauge,
		monitoring.Refusals: call, monitoring.LimiterQueueWait + "_bucket": call,
	} {
		series, err := seriesLabels(base, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) == 0 {
			t.Errorf("Prometheus scraped no %s series", name)
		}
		for _, l := range series {
			if _, ok := l[label]; !ok {
				t.Errorf("%s series %v has no %s label", name, l, label)
			}
		}
	}
	sort.Strings(lines)
	overloaded, _ := phase(PhaseOverloaded)
	t.Logf("phases: saturated %.1fs, degraded %.1fs, overloaded %.1fs, outage %.1fs, recovered %.1fs\n%s",
		saturated.Seconds(), degraded.Seconds(), overloaded.Seconds(), outage.Seconds(), recovered.Seconds(), strings.Join(lines, "\n"))
}

// seriesLabels reads the label sets of the series of metric name from
// /api/v1/series.
func seriesLabels(base, name string) ([]map[string]string, error) {
	var data []map[string]string
	err := apiGet(base, "/api/v1/series?match[]="+url.QueryEscape(name), &data)
	return data, err
}
