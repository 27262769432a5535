package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestProgressSaysWhatHappened runs a short timeline, whose breaker
// probes every 25 to 100 ms through the outage (the library's default),
// and checks the progress it prints: each second's row comes after its own
// phase's header, repeated failed probes are summarised instead of printed
// two lines each, and the table tells answers by the server and from stale
// copies apart.
func TestProgressSaysWhatHappened(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-duration=10s", "-rate=50"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("output:\n%s", out)

	// Rows follow their phase's header: a row labelled p is printed after
	// the header of p and before the next phase's.
	header := regexp.MustCompile(`^\s*\d+\.\d+s  -- (noise|slow|overload|outage|restart): `)
	row := regexp.MustCompile(`^\s*(\d+)s  (\w+)\s`)
	current := ""
	for _, line := range strings.Split(out, "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && m[2] != current {
			t.Errorf("the row %q (phase %s) is printed under the %s header", strings.TrimSpace(line), m[2], current)
		}
	}

	// The outage lasts 2 s: 20 or more failed probes, summarised in a
	// line or two.
	lines := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "-- resilient breaker") {
			lines++
		}
	}
	if lines > 8 || !strings.Contains(out, "more probes failed") {
		t.Errorf("%d breaker lines, want repeated probing summarised (a \"more probes failed\" line, at most 8 lines)", lines)
	}

	// JSON and table: by the server and stale apart, adding up to ok.
	var res results
	stdout.Reset()
	if err := run(t.Context(), []string{"-duration=2s", "-rate=50", "-json"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if r.Server+r.Stale != r.OK {
			t.Errorf("%s %s: by server %d + stale %d != answered %d", r.Phase, r.Client, r.Server, r.Stale, r.OK)
		}
	}
	var table bytes.Buffer
	if err := writeTable(&table, &res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "by server  server %  stale  answered %  attempts  refused: breaker  limiter  late work") {
		t.Errorf("the table does not show answers by the server and stale ones apart:\n%s", table.String())
	}
}
