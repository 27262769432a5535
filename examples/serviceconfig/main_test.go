package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServiceConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, defaultConfig); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"Echo          3         Unavailable                    exponential(50ms × 2^(n-1), max 2s, shortened by up to 20%)  -            1s       3 after 20ms (p95 once known)  true",
		"ServerStream  3         Unavailable                    grpc(50ms × 2^(n-1), max 2s, ×[0.8, 1.2))",
		// An entry without a retryPolicy means no retries, as in gRFC A6.
		"ClientStream  1 ",
		"false",
		"BidiStream    5         ResourceExhausted,Unavailable  grpc(100ms × 1.5^(n-1), max 1s, ×[0.8, 1.2))",
		"500ms",
		"retry budget per target: 100 tokens, 0.1 back per success",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The file is a valid service config for grpc-go too.
	conn, err := grpc.NewClient("passthrough:///x", grpc.WithDefaultServiceConfig(defaultConfig),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc-go refuses service.json: %v", err)
	}
	conn.Close()
}

func TestServiceConfigErrorNamesThePath(t *testing.T) {
	err := run(&bytes.Buffer{}, `{"methodConfig": [{"name": [{}]}, {"name": [{"service": "s"}], "retryPolicy": {"maxAttempts": 1,
		"initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`)
	if err == nil || !strings.Contains(err.Error(), "methodConfig[1].retryPolicy.maxAttempts: must be >= 2, got 1") {
		t.Fatalf("run with a bad config: %v", err)
	}
}
