package interceptors

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// The fields a service config may have, by object: gRFC A6's and the
// others grpc-go v1.85 reads (service_config.go: jsonSC, jsonMC,
// jsonRetryPolicy, retryThrottlingPolicy, jsonName), plus this library's
// extension. grpc-go's parser ignores every other key — and reads keys case
// insensitively — so that a misspelt "retryPolicy" would silently turn
// retries off there; here any other key is an error naming its JSON path.
// The fields grpc-go reads and this library does not (load balancing,
// health checking, waitForReady, message sizes) are accepted, so that one
// file serves both.
var (
	topLevelFields = []string{
		"loadBalancingPolicy", "loadBalancingConfig", "methodConfig", "retryThrottling", "healthCheckConfig",
		ExtensionKey,
	}
	methodConfigFields = []string{
		"name", "waitForReady", "timeout", "maxRequestMessageBytes", "maxResponseMessageBytes",
		"retryPolicy", "hedgingPolicy", ExtensionKey,
	}
	nameFields          = []string{"service", "method"}
	retryPolicyFields   = []string{"maxAttempts", "initialBackoff", "maxBackoff", "backoffMultiplier", "retryableStatusCodes"}
	hedgingPolicyFields = []string{"maxAttempts", "hedgingDelay", "nonFatalStatusCodes"}
	throttlingFields    = []string{"maxTokens", "tokenRatio"}
)

// known reports whether every key of obj is in fields; each other key is
// an error at path.key, with the field it probably meant when one is close.
// Keys are checked in sorted order, so that the errors come in a stable
// order.
func (p *scParser) known(path string, obj map[string]any, fields []string) bool {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ok := true
	for _, k := range keys {
		if slices.Contains(fields, k) {
			continue
		}
		ok = false
		at := k
		if path != "" {
			at = path + "." + k
		}
		if near := nearest(k, fields); near != "" {
			p.fail(at, "unknown field; did you mean %q?", near)
		} else {
			p.fail(at, "unknown field; known here: %s", strings.Join(fields, ", "))
		}
	}
	return ok
}

// grpcOnly checks the type of the method config fields grpc-go reads and
// this library does not, as grpc-go's own parser would: a service config
// that grpc-go refuses is not one file serving both.
func (p *scParser) grpcOnly(path string, obj map[string]any) {
	if v, ok := obj["waitForReady"]; ok && v != nil {
		if _, ok := v.(bool); !ok {
			p.fail(path+".waitForReady", "must be a boolean, got %s", kind(v))
		}
	}
	for _, k := range []string{"maxRequestMessageBytes", "maxResponseMessageBytes"} {
		v, ok := obj[k]
		if !ok || v == nil {
			continue
		}
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(n.String(), 10, 64); !ok || err != nil {
			p.fail(path+"."+k, "must be an integer, got %s", kind(v))
		}
	}
}

// nearest returns the field of fields that key probably meant: the same
// name in another case, or the closest one within a few edits (two, and
// one more per ten bytes of key); "" if none is.
func nearest(key string, fields []string) string {
	best, bestD := "", 3+len(key)/10
	for _, f := range fields {
		if strings.EqualFold(f, key) {
			return f
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(f)); d < bestD {
			best, bestD = f, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
