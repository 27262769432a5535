package interceptors

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// FuzzParseServiceConfig checks that the parser never panics, that what it
// accepts keeps gRFC A6's rules, and that grpc-go's own parser accepts it
// too (for the parts of a service config this library reads).
//
//	go test -run '^$' -fuzz FuzzParseServiceConfig -fuzztime 60s ./interceptors/
func FuzzParseServiceConfig(f *testing.F) {
	for _, seed := range []string{
		fullServiceConfig,
		`{}`, `[]`, `null`, `{"methodConfig": null}`, `{"methodConfig": [{}]}`,
		`{"methodConfig": [{"name": [{}], "timeout": "0.000000001s"}]}`,
		`{"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1e-9, "retryableStatusCodes": [16]}}]}`,
		`{"methodConfig": [{"name": [{"service": "s", "method": "m"}], "hedgingPolicy": {"maxAttempts": 2147483647, "hedgingDelay": "315576000000s"}}]}`,
		`{"retryThrottling": {"maxTokens": 1000, "tokenRatio": 0.0001}}`,
		`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": ".5s", "maxBackoff": "5.s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, js string) {
		sc, err := parseServiceConfig(js)
		if err != nil {
			return
		}
		for key, mc := range sc.methods {
			if key != "" && !strings.HasPrefix(key, "/") {
				t.Fatalf("accepted name key %q", key)
			}
			if mc.maxAttempts < 1 || ((mc.backoff != nil || mc.hedge != nil) && mc.maxAttempts < 2) {
				t.Fatalf("accepted maxAttempts %d (retry or hedging policy: %v)", mc.maxAttempts, mc.backoff != nil || mc.hedge != nil)
			}
			if b := mc.backoff; b != nil && !(b.Initial > 0 && b.Max > 0 && b.Multiplier > 0) {
				t.Fatalf("accepted backoff %+v", b)
			}
			if mc.backoff != nil && (mc.retryCodes == nil || *mc.retryCodes == 0 || mc.retryCodes.Has(codes.OK)) {
				t.Fatalf("accepted retry codes %v", mc.retryCodes)
			}
			if (mc.timeout != nil && *mc.timeout < 0) || (mc.perAttemptTimeout != nil && *mc.perAttemptTimeout < 0) {
				t.Fatal("accepted a negative duration")
			}
		}
		if c := sc.throttle; c != nil && (c.Validate() != nil || !(c.MaxTokens > 0 && c.MaxTokens <= 1000 && c.TokenRatio > 0)) {
			t.Fatalf("accepted throttling %+v", c)
		}
		// grpc-go must accept what this library accepts, for a JSON made
		// of the parts both read (grpc-go also parses load balancing and
		// health checking, which this library ignores).
		var top map[string]json.RawMessage
		if json.Unmarshal([]byte(js), &top) != nil || !onlyKeys(top, "methodConfig", "retryThrottling", ExtensionKey) || caseTwins(js) {
			return
		}
		conn, err := grpc.NewClient("passthrough:///fuzz", grpc.WithDefaultServiceConfig(js),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("accepted a service config grpc-go refuses: %v", err)
		}
		conn.Close()
	})
}

func onlyKeys(m map[string]json.RawMessage, keys ...string) bool {
	for k := range m {
		ok := false
		for _, want := range keys {
			ok = ok || k == want
		}
		if !ok {
			return false
		}
	}
	return true
}

// caseTwins reports whether js may hold object keys that differ from the
// ones this library reads only in case: encoding/json, which grpc-go
// uses, matches field names case-insensitively, so such a JSON means
// something else to grpc-go.
func caseTwins(js string) bool {
	lower := strings.ToLower(js)
	for _, k := range []string{"methodconfig", "name", "service", "method", "timeout", "retrypolicy", "maxattempts",
		"initialbackoff", "maxbackoff", "backoffmultiplier", "retryablestatuscodes", "retrythrottling", "maxtokens", "tokenratio"} {
		if strings.Count(lower, `"`+k+`"`) != strings.Count(js, `"`+exact(k)+`"`) {
			return true
		}
	}
	return false
}

func exact(lower string) string {
	for _, k := range []string{"methodConfig", "name", "service", "method", "timeout", "retryPolicy", "maxAttempts",
		"initialBackoff", "maxBackoff", "backoffMultiplier", "retryableStatusCodes", "retryThrottling", "maxTokens", "tokenRatio"} {
		if strings.ToLower(k) == lower {
			return k
		}
	}
	return lower
}
