package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jaegerRelease is the Jaeger release scripts/jaeger.sh builds: v1.76.0 is
// also v2.13.0, and its cmd/jaeger is the OpenTelemetry-Collector-based
// Jaeger v2 binary.
const jaegerRelease = "v1.76.0"

// Bounds of the waits on Jaeger.
const (
	jaegerStartTimeout = 60 * time.Second
	traceTimeout       = 30 * time.Second
	pollInterval       = 100 * time.Millisecond
)

// TestJaegerShowsEveryAttempt runs the example against a real Jaeger
// (all-in-one, in-memory storage) and reads the trace back from Jaeger's
// query API: the app span, the logical call span, 3 CLIENT attempt spans
// under it and one otelgrpc SERVER span under each attempt.
//
// The Jaeger binary is $JAEGER_BIN, else .bin/jaeger-v1.76.0 at the
// repository's root (both made by scripts/jaeger.sh). Without one the test
// is skipped, unless $CI is set (true, 1, ...): then it fails.
func TestJaegerShowsEveryAttempt(t *testing.T) {
	bin := jaegerBinary(t)
	j := startJaeger(t, bin)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	id, err := runExport(ctx, &out, "http://"+j.otlp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("example output:\n%s", out.String())
	j.traceID = id.String()

	spans, problems := j.waitForTrace(t)
	t.Logf("trace %s as Jaeger shows it:\n%s", j.traceID, tree(spans))
	for _, p := range problems {
		t.Error(p)
	}
}

// jaegerBinary returns the Jaeger binary to run, or skips (fails in CI)
// when there is none.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("JAEGER_BIN"); bin != "" {
		if err := executable(bin); err != nil {
			t.Fatalf("JAEGER_BIN=%s: %v", bin, err)
		}
		return bin
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		bin := filepath.Join(root, ".bin", "jaeger-"+jaegerRelease)
		if executable(bin) == nil {
			return bin
		}
	}
	const how = "no Jaeger binary: set JAEGER_BIN to one, e.g. JAEGER_BIN=\"$(scripts/jaeger.sh)\" " +
		"(builds Jaeger " + jaegerRelease + " from source into .bin/, about 5 minutes the first time)"
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("%s; CI=%s requires this test to run", how, ci)
	}
	t.Skip(how)
	return ""
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// jaeger is a running Jaeger.
type jaeger struct {
	otlp, query, health string // host:port of OTLP/gRPC, the query API, the health check
	client              *http.Client
	traceID             string
}

// jaegerConfig is Jaeger v2's all-in-one configuration cut down to what the
// test uses, every listener on 127.0.0.1 with a port the test picked.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %[1]s
    grpc:
      endpoint: %[2]s
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %[3]s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[4]s
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaeger starts bin in a process group of its own, waits until it is
// healthy and its query API answers, and stops it (the whole group) when
// the test ends.
func startJaeger(t *testing.T, bin string) *jaeger {
	t.Helper()
	ports := freePorts(t, 4)
	j := &jaeger{
		query:  ports[0],
		health: ports[2],
		otlp:   ports[3],
		// No keep-alives: no idle connections, so no goroutines left
		// behind for goleak.
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, ports[0], ports[1], ports[2], ports[3]), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bin, "--config", "file:"+cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setProcessGroup(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logShown := false
	t.Cleanup(func() {
		terminate(cmd)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("Jaeger did not stop within 10s of SIGTERM; killing it")
			kill(cmd)
			<-exited
		}
		if t.Failed() && !logShown {
			t.Logf("Jaeger's log:\n%s", tail(logPath, 8<<10))
		}
	})

	ready := func() bool {
		return j.get("http://"+j.health+"/status") == nil && j.get("http://"+j.query+"/api/services") == nil
	}
	switch ok, exit := poll(jaegerStartTimeout, exited, ready); {
	case exit != nil:
		exited <- exit.err // for the cleanup
		logShown = true
		t.Fatalf("Jaeger exited while starting (%v); its log:\n%s", exit.err, tail(logPath, 8<<10))
	case !ok:
		logShown = true
		t.Fatalf("Jaeger not ready after %v; its log:\n%s", jaegerStartTimeout, tail(logPath, 8<<10))
	}
	t.Logf("Jaeger %s ready in %v: OTLP/gRPC %s, query %s", bin, time.Since(start).Round(time.Millisecond), j.otlp, j.query)
	return j
}

// get fetches url and fails unless the answer is 200 OK.
func (j *jaeger) get(url string) error {
	_, err := j.fetch(url)
	return err
}

func (j *jaeger) fetch(url string) ([]byte, error) {
	resp, err := j.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// waitForTrace polls GET /api/traces/{id} until the trace passes
// checkTrace or traceTimeout passes, and returns the last spans seen and
// their problems.
func (j *jaeger) waitForTrace(t *testing.T) ([]span, []string) {
	t.Helper()
	if j.traceID == "" {
		t.Fatal("no trace ID")
	}
	url := "http://" + j.query + "/api/traces/" + j.traceID
	var (
		spans    []span
		problems []string
	)
	stored := func() bool {
		body, err := j.fetch(url)
		if err == nil {
			spans, err = parseJaegerTrace(body, j.traceID)
		}
		if err != nil {
			// 404 until the first spans are stored.
			problems = []string{err.Error()}
			return false
		}
		problems = checkTrace(spans)
		return len(problems) == 0
	}
	if ok, _ := poll(traceTimeout, nil, stored); !ok {
		problems = append([]string{fmt.Sprintf("after %v polling %s:", traceTimeout, url)}, problems...)
	}
	return spans, problems
}

// exitStatus is how a process ended: its Wait error, nil for success.
type exitStatus struct{ err error }

// poll asks done, at once and then every pollInterval, until it reports
// true or timeout passes, and reports which. Jaeger is another process
// and offers nothing to wait on but its HTTP API, so polling it is the
// signal; the wait also ends at once if exited (nil: never) delivers the
// process's end, which poll then returns.
func poll(timeout time.Duration, exited <-chan error, done func() bool) (bool, *exitStatus) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if done() {
			return true, nil
		}
		select {
		case err := <-exited:
			return false, &exitStatus{err: err}
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// jaegerTrace is the part of a /api/traces/{id} answer the test reads.
type jaegerTrace struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			References    []struct {
				RefType string `json:"refType"`
				TraceID string `json:"traceID"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
			StartTime int64      `json:"startTime"` // µs since the epoch
			Tags      []jaegerKV `json:"tags"`
			Logs      []struct {
				Fields []jaegerKV `json:"fields"`
			} `json:"logs"`
			ProcessID string `json:"processID"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
	Errors []struct {
		Msg string `json:"msg"`
	} `json:"errors"`
}

type jaegerKV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// String returns the value as the SDK's attribute.Value.Emit would: strings
// unquoted, numbers and booleans as written.
func (kv jaegerKV) String() string {
	var s string
	if json.Unmarshal(kv.Value, &s) == nil {
		return s
	}
	return string(kv.Value)
}

// parseJaegerTrace turns Jaeger's answer into spans. The span kind is the
// span.kind tag; a span's parent is its CHILD_OF reference.
func parseJaegerTrace(body []byte, traceID string) ([]span, error) {
	var tr jaegerTrace
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("decoding %.200s: %w", body, err)
	}
	if len(tr.Errors) > 0 {
		return nil, fmt.Errorf("Jaeger: %s", tr.Errors[0].Msg)
	}
	if len(tr.Data) != 1 {
		return nil, fmt.Errorf("want 1 trace, got %d", len(tr.Data))
	}
	d := tr.Data[0]
	if d.TraceID != traceID {
		return nil, fmt.Errorf("got trace %s, want %s", d.TraceID, traceID)
	}
	spans := make([]span, 0, len(d.Spans))
	for _, js := range d.Spans {
		s := span{
			ID:      js.SpanID,
			Name:    js.OperationName,
			Service: d.Processes[js.ProcessID].ServiceName,
			Start:   time.UnixMicro(js.StartTime),
			Attrs:   make(map[string]string, len(js.Tags)),
		}
		for _, ref := range js.References {
			if ref.RefType == "CHILD_OF" && ref.TraceID == traceID {
				s.Parent = ref.SpanID
			}
		}
		for _, kv := range js.Tags {
			s.Attrs[kv.Key] = kv.String()
		}
		s.Kind = s.Attrs["span.kind"]
		for _, l := range js.Logs {
			for _, f := range l.Fields {
				if f.Key == "event" {
					s.Events = append(s.Events, f.String())
				}
			}
		}
		spans = append(spans, s)
	}
	return spans, nil
}

// freePorts returns n distinct free 127.0.0.1 ports as host:port. They are
// free when it returns; Jaeger will fail to start, and say so, if another
// process takes one first.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so they are distinct
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
