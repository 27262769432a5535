package endpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseConfig checks the policy's JSON parser: it never panics; an
// error always wraps ErrInvalidConfig; it accepts only what the package
// documents (nothing, null, or a JSON object of the documented keys, whose
// durations are strings and counts whole numbers) and only valid
// configurations, with every omitted key at its default; and what it
// accepts comes back the same through ServiceConfig.
//
//	go test -run '^$' -fuzz FuzzParseConfig -fuzztime 60s ./endpoint/
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		``, `null`, `{}`, ` { } `, `[]`, `"s"`, `{"window":"10s"}`, `{"window":"0.000999s"}`, `{"window":"0.001s"}`, `{"window":"1ms"}`,
		`{"window":"5s","minRequests":20,"failureRatio":0.9,"consecutiveFailures":7,"baseEjectionTime":"1s","maxEjectionTime":"60s","maxEjectedRatio":0.5}`,
		`{"minRequests":2147483647,"consecutiveFailures":2147483648}`, `{"minRequests":1e3}`, `{"minRequests":1.5}`,
		`{"failureRatio":1e-320,"maxEjectedRatio":1}`, `{"failureRatio":1.0000000000000002}`, `{"minRequests":-0}`,
		`{"baseEjectionTime":"600s"}`, `{"baseEjectionTime":"9223372036.854775807s"}`, `{"baseEjectionTime":"315576000000s"}`, `{"window":"-1s"}`,
		`{"Window":"1s"}`, `{"window":"1s","window":"x"}`, `{"hooks":"h1"}`, `{"hooks":7}`, `{"window":10}`,
		`{"maxEjectionTime":"5400.5s","baseEjectionTime":".5s"}`, `{"maxEjectionTime":"1.5h"}`, `{"window":"1s"} {}`,
	} {
		f.Add([]byte(seed))
	}
	documented := map[string]string{
		"window": "duration", "minRequests": "integer", "failureRatio": "number", "consecutiveFailures": "integer",
		"baseEjectionTime": "duration", "maxEjectionTime": "duration", "maxEjectedRatio": "number",
		"hooks": "string", // a process-local handle, from DialOption
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		lc, err := parseConfig(js)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		// Only nothing, null or an object of documented keys and types.
		var raw map[string]json.RawMessage
		if trimmed := bytes.Trim(js, " \t\r\n"); len(trimmed) > 0 {
			if !json.Valid(js) {
				t.Fatalf("accepted %q, which is not JSON", js)
			}
			if string(trimmed) != "null" && json.Unmarshal(js, &raw) != nil {
				t.Fatalf("accepted %q, which is no JSON object", js)
			}
		}
		for key, v := range raw {
			var ok bool
			switch documented[key] {
			case "duration", "string":
				var s string
				ok = json.Unmarshal(v, &s) == nil
			case "number":
				var n float64
				ok = json.Unmarshal(v, &n) == nil
			case "integer":
				var n float64
				ok = json.Unmarshal(v, &n) == nil && n == float64(int64(n))
			}
			if !ok {
				t.Fatalf("accepted %s: %s, not a documented key with a %q value", key, v, documented[key])
			}
		}
		// A valid configuration, the defaults where keys were omitted.
		c := lc.cfg
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted %q as an invalid config: %v", js, err)
		}
		d := DefaultConfig()
		for _, f := range []struct {
			key           string
			zero, omitted bool
		}{
			{"window", c.Window == 0, c.Window == d.Window},
			{"minRequests", c.MinRequests == 0, c.MinRequests == d.MinRequests},
			{"failureRatio", c.FailureRatio == 0, c.FailureRatio == d.FailureRatio},
			{"consecutiveFailures", c.ConsecutiveFailures == 0, c.ConsecutiveFailures == d.ConsecutiveFailures},
			{"baseEjectionTime", c.BaseEjectionTime == 0, c.BaseEjectionTime == d.BaseEjectionTime},
			{"maxEjectionTime", c.MaxEjectionTime == 0, c.MaxEjectionTime == d.MaxEjectionTime},
			{"maxEjectedRatio", c.MaxEjectedRatio == 0, c.MaxEjectedRatio == d.MaxEjectedRatio},
		} {
			if _, given := raw[f.key]; f.zero || (!given && !f.omitted) {
				t.Fatalf("accepted %q: %s is %+v, want the default when omitted and never 0", js, f.key, c)
			}
		}
		if _, ok := raw["hooks"]; ok {
			return // the handle belongs to a DialOption, not to the JSON
		}
		// Round trip: ServiceConfig's JSON of the result parses back to it.
		out, err := ServiceConfig(c)
		if err != nil {
			t.Fatalf("ServiceConfig of the accepted %+v: %v", c, err)
		}
		var sc struct {
			LB []map[string]json.RawMessage `json:"loadBalancingConfig"`
		}
		if err := json.Unmarshal([]byte(out), &sc); err != nil || len(sc.LB) != 1 {
			t.Fatalf("ServiceConfig returned %s: %v", out, err)
		}
		again, err := parseConfig(sc.LB[0][Name])
		if err != nil {
			t.Fatalf("%s, from the accepted %q, does not parse: %v", out, js, err)
		}
		if b := again.cfg; c.Window != b.Window || c.MinRequests != b.MinRequests || c.FailureRatio != b.FailureRatio ||
			c.ConsecutiveFailures != b.ConsecutiveFailures || c.BaseEjectionTime != b.BaseEjectionTime ||
			c.MaxEjectionTime != b.MaxEjectionTime || c.MaxEjectedRatio != b.MaxEjectedRatio {
			t.Fatalf("%q parsed as %+v; its ServiceConfig %s as %+v", js, c, out, b)
		}
	})
}
