package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// callName is the name of the call span, the attempt spans and otelgrpc's
// server spans.
const callName = "resilience.testing.v1.EchoService/Echo"

// span is what the checks need of a span, whether it comes from the SDK or
// from Jaeger's query API.
type span struct {
	ID, Parent string // hex; Parent is "" for a root
	Name       string
	Kind       string // "internal", "client", "server", ...
	Service    string
	Start      time.Time
	Attrs      map[string]string
	Events     []string
}

// checkTrace returns what is wrong with spans, a trace made by run: nothing
// when it is exactly
//
//	app span (tracing-client, root)
//	└─ call span, INTERNAL, resilience.attempts=3, 2 resilience.retry events
//	   ├─ attempt 1, CLIENT, UNAVAILABLE ─ one echo-server SERVER span
//	   ├─ attempt 2, CLIENT, UNAVAILABLE ─ one echo-server SERVER span
//	   └─ attempt 3, CLIENT, OK          ─ one echo-server SERVER span
func checkTrace(spans []span) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	children := make(map[string][]span)
	for _, s := range spans {
		children[s.Parent] = append(children[s.Parent], s)
	}

	var apps []span
	for _, s := range children[""] {
		if s.Name == appSpanName && s.Service == clientService {
			apps = append(apps, s)
		}
	}
	if len(apps) != 1 {
		bad("want 1 root span %q of %s, got %d", appSpanName, clientService, len(apps))
		return problems
	}
	app := apps[0]

	var calls []span
	for _, s := range children[app.ID] {
		if s.Name == callName && s.Service == clientService && s.Kind == "internal" {
			calls = append(calls, s)
		}
	}
	if len(calls) != 1 {
		bad("want 1 INTERNAL call span %q under the app span, got %d (children: %v)", callName, len(calls), describe(children[app.ID]))
		return problems
	}
	call := calls[0]
	if got := call.Attrs["resilience.attempts"]; got != "3" {
		bad("call span: resilience.attempts = %q, want 3", got)
	}
	if got := countOf(call.Events, "resilience.retry"); got != 2 {
		bad("call span: %d resilience.retry events, want 2 (events: %v)", got, call.Events)
	}

	attempts := children[call.ID]
	slices.SortFunc(attempts, func(a, b span) int { return cmp.Compare(a.Attrs["resilience.attempt"], b.Attrs["resilience.attempt"]) })
	if len(attempts) != 3 {
		bad("want 3 attempt spans under the call span, got %d: %v", len(attempts), describe(attempts))
	}
	wantCodes := []string{"UNAVAILABLE", "UNAVAILABLE", "OK"}
	attemptIDs := make(map[string]bool)
	for i, a := range attempts {
		attemptIDs[a.ID] = true
		n := fmt.Sprint(i + 1)
		if a.Name != callName || a.Kind != "client" || a.Service != clientService {
			bad("attempt span %d is %s, want a CLIENT span %q of %s", i+1, describe([]span{a}), callName, clientService)
		}
		if got := a.Attrs["resilience.attempt"]; got != n {
			bad("attempt span %d: resilience.attempt = %q, want %s", i+1, got, n)
		}
		if i < len(wantCodes) {
			if got := a.Attrs[string(semconv.RPCResponseStatusCodeKey)]; got != wantCodes[i] {
				bad("attempt span %d: %s = %q, want %s", i+1, semconv.RPCResponseStatusCodeKey, got, wantCodes[i])
			}
		}
		servers := children[a.ID]
		if len(servers) != 1 || servers[0].Kind != "server" || servers[0].Service != serverService || servers[0].Name != callName {
			bad("attempt span %d: want exactly one SERVER span %q of %s under it, got %v", i+1, callName, serverService, describe(servers))
		}
	}

	// Nothing else: every server span hangs under an attempt, and there are
	// no stray spans (8 = app + call + 3 attempts + 3 server spans).
	servers := 0
	for _, s := range spans {
		if s.Kind == "server" {
			servers++
			if !attemptIDs[s.Parent] {
				bad("server span %s is not a child of an attempt span", describe([]span{s}))
			}
		}
	}
	if servers != 3 {
		bad("want 3 server spans, got %d", servers)
	}
	if len(spans) != 8 {
		bad("want 8 spans in the trace, got %d", len(spans))
	}
	return problems
}

func countOf(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func describe(spans []span) []string {
	out := make([]string, 0, len(spans))
	for _, s := range spans {
		out = append(out, fmt.Sprintf("%s %q %s", s.Service, s.Name, strings.ToUpper(s.Kind)))
	}
	return out
}

// tree renders spans as an indented tree, children by start time.
func tree(spans []span) string {
	children := make(map[string][]span)
	ids := make(map[string]bool)
	for _, s := range spans {
		ids[s.ID] = true
	}
	for _, s := range spans {
		p := s.Parent
		if !ids[p] {
			p = "" // a root, or a child of a span that is missing
		}
		children[p] = append(children[p], s)
	}
	var b strings.Builder
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b span) int { return a.Start.Compare(b.Start) })
		for i, s := range kids {
			branch, next := "├─ ", "│  "
			if i == len(kids)-1 {
				branch, next = "└─ ", "   "
			}
			if parent == "" {
				branch, next = "", ""
			}
			fmt.Fprintf(&b, "%s%s%s  %s  %s", indent, branch, s.Service, s.Name, strings.ToUpper(s.Kind))
			for _, k := range []string{"resilience.attempts", "resilience.attempt", string(semconv.RPCResponseStatusCodeKey), "rpc.grpc.status_code"} {
				if v, ok := s.Attrs[k]; ok {
					fmt.Fprintf(&b, "  %s=%s", k, v)
				}
			}
			if n := countOf(s.Events, "resilience.retry"); n > 0 {
				fmt.Fprintf(&b, "  events: %d × resilience.retry", n)
			}
			b.WriteByte('\n')
			walk(s.ID, indent+next)
		}
	}
	walk("", "")
	return b.String()
}

// keepExporter keeps its spans after Shutdown, which run calls.
type keepExporter struct{ *tracetest.InMemoryExporter }

func (keepExporter) Shutdown(context.Context) error { return nil }

// TestSpanTree checks the span tree run makes, in memory, without a
// tracing backend.
func TestSpanTree(t *testing.T) {
	id, spans := memoryTrace(t)
	t.Logf("trace %s:\n%s", id, tree(spans))
	for _, p := range checkTrace(spans) {
		t.Error(p)
	}
}

// TestCheckTraceCatches makes sure checkTrace is not vacuous: each broken
// copy of a good trace must be reported.
func TestCheckTraceCatches(t *testing.T) {
	_, good := memoryTrace(t)
	if p := checkTrace(good); len(p) > 0 {
		t.Fatalf("the good trace fails: %v", p)
	}
	find := func(spans []span, kind, attempt string) int {
		for i, s := range spans {
			if s.Kind == kind && (attempt == "" || s.Attrs["resilience.attempt"] == attempt) {
				return i
			}
		}
		t.Fatalf("no %s span %s", kind, attempt)
		return -1
	}
	for name, breakIt := range map[string]func([]span) []span{
		"server span under the call span": func(s []span) []span {
			call := s[find(s, "client", "1")].Parent
			s[find(s, "server", "")].Parent = call
			return s
		},
		"server span missing": func(s []span) []span {
			i := find(s, "server", "")
			return slices.Delete(s, i, i+1)
		},
		"attempt numbered twice": func(s []span) []span {
			s[find(s, "client", "3")].Attrs["resilience.attempt"] = "2"
			return s
		},
		"attempt under the app span": func(s []span) []span {
			app := s[slices.IndexFunc(s, func(x span) bool { return x.Name == appSpanName })].ID
			s[find(s, "client", "2")].Parent = app
			return s
		},
		"no retry events": func(s []span) []span {
			i := slices.IndexFunc(s, func(x span) bool { return x.Kind == "internal" && x.Name == callName })
			s[i].Events = nil
			return s
		},
		"stray span": func(s []span) []span {
			return append(s, span{ID: "ffffffffffffffff", Name: "other", Kind: "internal", Service: clientService, Attrs: map[string]string{}})
		},
	} {
		spans := make([]span, len(good))
		for i, s := range good {
			s.Attrs = maps.Clone(s.Attrs)
			s.Events = slices.Clone(s.Events)
			spans[i] = s
		}
		if p := checkTrace(breakIt(spans)); len(p) == 0 {
			t.Errorf("%s: checkTrace finds nothing wrong", name)
		}
	}
}

// memoryTrace runs the example with in-memory exporters and returns the
// trace ID and every span.
func memoryTrace(t *testing.T) (trace.TraceID, []span) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientExp := keepExporter{tracetest.NewInMemoryExporter()}
	serverExp := keepExporter{tracetest.NewInMemoryExporter()}
	id, err := run(ctx, io.Discard, clientExp, serverExp)
	if err != nil {
		t.Fatal(err)
	}
	var spans []span
	for _, stubs := range []tracetest.SpanStubs{clientExp.GetSpans(), serverExp.GetSpans()} {
		for _, s := range stubs {
			if s.SpanContext.TraceID() != id {
				t.Errorf("span %q is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), id)
			}
			sp := span{
				ID:    s.SpanContext.SpanID().String(),
				Name:  s.Name,
				Kind:  s.SpanKind.String(),
				Start: s.StartTime,
				Attrs: make(map[string]string),
			}
			if v, ok := s.Resource.Set().Value(semconv.ServiceNameKey); ok {
				sp.Service = v.String()
			}
			if s.Parent.IsValid() {
				sp.Parent = s.Parent.SpanID().String()
			}
			for _, kv := range s.Attributes {
				sp.Attrs[string(kv.Key)] = kv.Value.String()
			}
			for _, e := range s.Events {
				sp.Events = append(sp.Events, e.Name)
			}
			spans = append(spans, sp)
		}
	}
	return id, spans
}
