package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	collmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestShortRun runs the whole timeline in 15 s and checks what the demo
// is for, through relations between the two clients that hold however
// slow or busy the machine is, never through counts that depend on
// timing. The spike is 3 times the server's capacity (the demo's 40 s run
// uses 2), so that in a 0.75 s spike the plain client's queue at the server
// still grows past its 1 s deadline.
func TestShortRun(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "") // no exporter, whatever the environment
	var stdout, stderr bytes.Buffer
	svg := filepath.Join(t.TempDir(), "chaos.svg")
	err := run(t.Context(), []string{"-duration=15s", "-spike=3", "-json", "-plot", svg}, &stdout, &stderr)
	t.Logf("progress:\n%s", stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("decoding -json output: %v\n%s", err, stdout.String())
	}
	get := func(phase, client string) row {
		t.Helper()
		for _, r := range res.Rows {
			if r.Phase == phase && r.Client == client {
				return r
			}
		}
		t.Fatalf("no row for phase %s, client %s in %+v", phase, client, res.Rows)
		return row{}
	}
	late := func(r row) int64 {
		t.Helper()
		if r.LateWork == nil {
			t.Fatalf("%s %s: no late work measured", r.Phase, r.Client)
		}
		return *r.LateWork
	}

	for _, p := range append(phaseNames[:], "all") {
		plain, resilient := get(p, "plain"), get(p, "resilient")
		if plain.Calls != resilient.Calls || plain.Calls == 0 {
			t.Errorf("%s: %d plain calls, %d resilient calls; want the same schedule for both", p, plain.Calls, resilient.Calls)
		}
		if plain.RefusedBreaker != 0 || plain.RefusedLimiter != 0 || plain.Stale != 0 {
			t.Errorf("%s: the plain client has no breaker, limiter or fallback but shows %d, %d refusals and %d stale answers",
				p, plain.RefusedBreaker, plain.RefusedLimiter, plain.Stale)
		}
		if resilient.Server+resilient.Stale != resilient.OK {
			t.Errorf("%s: by server %d + stale %d != answered %d", p, resilient.Server, resilient.Stale, resilient.OK)
		}
		if (p == "overload" || p == "outage" || p == "all") != (plain.LateWork != nil) {
			t.Errorf("%s: late work %v; want it measured where the server has a capacity limit, and only there", p, plain.LateWork)
		}
	}
	// The breaker is for a server that is gone: neither noise nor
	// overload opens it.
	for _, p := range []string{"noise", "slow", "overload"} {
		if r := get(p, "resilient"); r.RefusedBreaker != 0 {
			t.Errorf("%s: the breaker refused %d calls; want none", p, r.RefusedBreaker)
		}
	}

	plain, resilient := get("noise", "plain"), get("noise", "resilient")
	if resilient.OK <= plain.OK {
		t.Errorf("noise: resilient client %d ok, plain %d ok (of %d); want the resilient one strictly ahead",
			resilient.OK, plain.OK, plain.Calls)
	}
	if plain.OK == plain.Calls {
		t.Errorf("noise: the plain client succeeded in all %d calls; the noise did not reach it", plain.Calls)
	}

	// Overload: the plain client's queue at the server outgrows its
	// deadline, and the server works for callers who have gone (until it
	// has worked off its queue, in the outage); the resilient client's
	// limiter refuses the excess instead, so its server answers in a
	// fraction of the time and hardly ever works for nobody.
	plain, resilient = get("overload", "plain"), get("overload", "resilient")
	plainLate := late(plain) + late(get("outage", "plain"))
	resilientLate := late(resilient) + late(get("outage", "resilient"))
	if plainLate == 0 || 4*resilientLate > plainLate {
		t.Errorf("overload: the server worked for %d plain callers and %d resilient callers who had gone; "+
			"want the plain client's waste, and at most a quarter of it for the resilient client", plainLate, resilientLate)
	}
	if resilient.RefusedLimiter == 0 {
		t.Errorf("overload: the limiter refused no call")
	}
	if resilient.Server == 0 || plain.Server == 0 || 2*resilient.P50MS > plain.P50MS {
		t.Errorf("overload: median latency of answers by the server: resilient %vms (%d answers), plain %vms (%d); "+
			"want the resilient client's at most half the plain one's", resilient.P50MS, resilient.Server, plain.P50MS, plain.Server)
	}
	if resilient.OK < plain.OK {
		t.Errorf("overload: resilient client %d answered, plain %d; want at least as many", resilient.OK, plain.OK)
	}

	plain, resilient = get("outage", "plain"), get("outage", "resilient")
	if plain.Attempts == 0 || 2*resilient.Attempts >= plain.Attempts {
		t.Errorf("outage: the resilient client sent %d attempts to the server, the plain one %d; want fewer than half",
			resilient.Attempts, plain.Attempts)
	}
	if resilient.RefusedBreaker == 0 {
		t.Errorf("outage: no call was refused by the breaker")
	}

	// The restart: calls wait for the server instead of failing at once.
	plain, resilient = get("restart", "plain"), get("restart", "resilient")
	if resilient.Server < plain.Server {
		t.Errorf("restart: the server answered %d resilient calls, %d plain ones; want at least as many", resilient.Server, plain.Server)
	}

	// Echo's stale-answer fallback answers the calls the downstream cannot,
	// for requests answered before; each such answer is counted. (The
	// default 40 s timeline answers all of them; the margin is for busy CI
	// machines.)
	// In the restart, calls that can wait for the server are answered by
	// it once it is back, so stale answers are not required there.
	for _, p := range []string{"outage", "restart"} {
		resilient := get(p, "resilient")
		if float64(resilient.OK) < 0.95*float64(resilient.Calls) || (p == "outage" && resilient.Stale == 0) {
			t.Errorf("%s: resilient client %d ok of %d, %d from stale copies; want >= 95 %% answered, stale ones counted",
				p, resilient.OK, resilient.Calls, resilient.Stale)
		}
	}

	checkSVG(t, svg)

	// The table renders every phase and both clients from the same figures.
	var table bytes.Buffer
	if err := writeTable(&table, &res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"noise     plain", "overload  plain", "restart   plain", "resilient", "by server", "stale",
		"answered %", "refused: breaker", "limiter", "late work", "p99"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// checkSVG parses the picture of TestShortRun as XML and checks that it
// has every panel, series and phase, drawn with more than a few elements.
func checkSVG(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("-plot wrote no file: %v", err)
	}
	var texts []string
	elements, paths := 0, 0
	dec := xml.NewDecoder(bytes.NewReader(b))
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", name, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			elements++
			if elements == 1 && tok.Name.Local != "svg" {
				t.Fatalf("%s: root element <%s>, want <svg>", name, tok.Name.Local)
			}
			if tok.Name.Local == "path" {
				paths++
			}
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"calls answered (%)", "attempts at the server (/s)", "p99 of answers (ms)", "refused, resilient (/s)", "breaker (resilient)",
		"plain: answered", "resilient: answered", "resilient: answered by the server",
		"resilient: answered from a stale copy", "plain: p99 of answers by the server", "resilient: p99 of answers by the server",
		"calls scheduled, per client", "plain: attempts", "resilient: attempts",
		"plain: served after the caller left", "resilient: served after the caller left",
		"resilient: refused by the breaker", "resilient: refused by the limiter", "resilient: breaker state",
		"noise", "slow", "overload", "outage", "restart", "open", "half-open", "closed",
	} {
		if !slices.Contains(texts, want) {
			t.Errorf("%s has no text %q; texts:\n%s", name, want, all)
		}
	}
	if paths < 30 || len(b) > 300<<10 {
		t.Errorf("%s: %d elements, %d paths, %d bytes; want a real picture (>= 30 paths) of at most 300 KB",
			name, elements, paths, len(b))
	}
}

func TestPlotPNG(t *testing.T) {
	name := filepath.Join(t.TempDir(), "chaos.png")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-duration=1s", "-rate=20", "-json", "-plot=" + name}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatalf("-plot wrote no file: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
		t.Errorf("%s is %v, want at least 500x300", name, b)
	}
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-rate=0"}, {"-noise=1.5"}, {"-duration=100ms"}, {"-concurrency=0"}, {"-down=20s"}, {"extra"},
		{"-workers=0"}, {"-service=0s"}, {"-queue=-1"}, {"-spike=0"}, {"-spike=NaN"}, {"-hedge=-1ms"},
		{"-hedge-percentile=1"}, {"-hedge-percentile=NaN"}, {"-spike=50", "-workers=1000", "-service=1ms"},
		{"-plot=" + filepath.Join(dir, "chaos.pdf")}, {"-plot=" + filepath.Join(dir, "chaos")},
		{"-plot=" + filepath.Join(dir, "missing", "chaos.svg")},
	} {
		var stderr bytes.Buffer
		err := run(t.Context(), args, &bytes.Buffer{}, &stderr)
		if err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
			continue
		}
		if name, _, _ := strings.Cut(args[0], "="); name != "extra" && !strings.Contains(err.Error(), name) {
			t.Errorf("run(%q) = %v, want an error naming %s", args, err, name)
		}
	}
}

// collector is an OTLP/gRPC endpoint that keeps what it receives.
type collector struct {
	colltracepb.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   map[string]map[string]int // service -> span name -> count
	metrics map[string]int            // metric name -> data points batches
}

func (c *collector) Export(_ context.Context, req *colltracepb.ExportTraceServiceRequest) (*colltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		if c.spans[service] == nil {
			c.spans[service] = map[string]int{}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans[service][s.GetName()]++
			}
		}
	}
	return &colltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	collmetricpb.UnimplementedMetricsServiceServer
	c *collector
}

func (m metricsService) Export(_ context.Context, req *collmetricpb.ExportMetricsServiceRequest) (*collmetricpb.ExportMetricsServiceResponse, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, x := range sm.GetMetrics() {
				m.c.metrics[x.GetName()]++
			}
		}
	}
	return &collmetricpb.ExportMetricsServiceResponse{}, nil
}

// startCollector serves a collector on loopback; withMetrics false makes
// it answer metric exports with Unimplemented, as Jaeger does.
func startCollector(t *testing.T, withMetrics bool) *collector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{spans: map[string]map[string]int{}, metrics: map[string]int{}}
	gs := grpc.NewServer()
	colltracepb.RegisterTraceServiceServer(gs, c)
	if withMetrics {
		collmetricpb.RegisterMetricsServiceServer(gs, metricsService{c: c})
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	return c
}

func TestExportsOverOTLP(t *testing.T) {
	c := startCollector(t, true)
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-duration=2s", "-rate=20", "-json"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "traces and metrics sent to http://") {
		t.Errorf("no flush notice in the progress:\n%s", stderr.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, want := range []struct{ service, span string }{
		{"chaos-client", "chaos plain"},
		{"chaos-client", "chaos resilient"},
		{"chaos-client", "resilience.testing.v1.EchoService/Echo"}, // call, attempt and otelgrpc spans
		{"chaos-server", "resilience.testing.v1.EchoService/Echo"},
	} {
		if c.spans[want.service][want.span] == 0 {
			t.Errorf("no span %q from service %q; got %v", want.span, want.service, c.spans)
		}
	}
	for _, want := range []string{"resilience.client.attempts", "resilience.client.breaker.state", "rpc.client.call.duration"} {
		if c.metrics[want] == 0 {
			t.Errorf("no metric %q; got %v", want, c.metrics)
		}
	}
}

func TestTracesOnlyEndpoint(t *testing.T) {
	c := startCollector(t, false)
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-duration=1s", "-rate=20", "-json"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stderr.String()
	if strings.Count(out, "does not take OTLP metrics") != 1 || !strings.Contains(out, "telemetry: traces sent to http://") {
		t.Errorf("want one notice that metrics are not accepted and a clean flush; got:\n%s", out)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spans["chaos-client"]["chaos resilient"] == 0 {
		t.Errorf("no spans received: %v", c.spans)
	}
}
