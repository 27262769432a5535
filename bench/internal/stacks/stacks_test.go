package stacks

import (
	"encoding/json"
	"go.uber.org/goleak"
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	all, err := Select("")
	if err != nil || len(all) != len(All()) || all[0].Name != Bare {
		t.Fatalf("Select(\"\") = %d stacks, %v; want all, bare first", len(all), err)
	}
	got, err := Select("ours, bare")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != Bare || got[1].Name != Ours {
		t.Errorf("Select(\"ours, bare\") = %v, want bare then ours (table order)", got)
	}
	if _, err := Select("bare,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Select with an unknown stack: %v, want an error naming it", err)
	}
}

func TestGRPCServiceConfig(t *testing.T) {
	var sc struct {
		MethodConfig []struct {
			RetryPolicy struct {
				MaxAttempts          int
				InitialBackoff       string
				MaxBackoff           string
				BackoffMultiplier    float64
				RetryableStatusCodes []string
			}
		}
		RetryThrottling struct{ MaxTokens, TokenRatio float64 }
	}
	js := grpcServiceConfig(DefaultPolicy())
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		t.Fatalf("%v in\n%s", err, js)
	}
	rp := sc.MethodConfig[0].RetryPolicy
	if rp.MaxAttempts != 3 || rp.InitialBackoff != "0.05s" || rp.MaxBackoff != "2s" || rp.BackoffMultiplier != 2 ||
		strings.Join(rp.RetryableStatusCodes, ",") != "UNAVAILABLE,DEADLINE_EXCEEDED" {
		t.Errorf("retryPolicy = %+v", rp)
	}
	if sc.RetryThrottling.MaxTokens != 100 || sc.RetryThrottling.TokenRatio != 1 {
		t.Errorf("retryThrottling = %+v", sc.RetryThrottling)
	}
}

func TestEveryStackBuilds(t *testing.T) {
	for _, s := range All() {
		opts, closeFn, err := s.Build(DefaultPolicy())
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if len(opts) == 0 {
			t.Errorf("%s: no dial options", s.Name)
		}
		if s.Config(DefaultPolicy()) == "" {
			t.Errorf("%s: no description", s.Name)
		}
		closeFn()
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
