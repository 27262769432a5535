package stacks

import (
	"strings"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/interceptors"
)

func TestOverloadStacksBuild(t *testing.T) {
	p := OverloadPolicy()
	p.MaxConcurrency = 4
	seen := map[string]bool{}
	all := Overload()
	if all[0].Name != Bare {
		t.Fatalf("first stack %s, want bare", all[0].Name)
	}
	for _, s := range all {
		if seen[s.Name] {
			t.Errorf("two stacks named %s", s.Name)
		}
		seen[s.Name] = true
		for _, pol := range []Policy{p, Quickstart(p)} {
			_, closeFn, err := s.Build(pol)
			if err != nil {
				t.Errorf("%s: %v", s.Name, err)
				continue
			}
			closeFn()
			if s.Config(pol) == "" {
				t.Errorf("%s: no description", s.Name)
			}
		}
	}
	for _, v := range OursFamily {
		if !seen[v.Name] || !strings.HasPrefix(v.Name, Ours) || v.Doc == "" {
			t.Errorf("variant %+v: want a stack named ours…, with a Doc", v)
		}
	}
}

func TestFailsafeBulkheadNeedsTheCapacity(t *testing.T) {
	s, err := SelectOverload(FailsafeBulkhead)
	if err != nil || len(s) != 1 {
		t.Fatalf("SelectOverload: %v, %v", s, err)
	}
	if _, _, err := s[0].Build(OverloadPolicy()); err == nil || !strings.Contains(err.Error(), "MaxConcurrency") {
		t.Errorf("bulkhead without MaxConcurrency: %v, want an error naming it", err)
	}
}

func TestOverloadPolicyIsOurDefaults(t *testing.T) {
	p := OverloadPolicy()
	if p.MaxAttempts != interceptors.DefaultMaxAttempts || p.PerAttemptTimeout != 0 || p.BaseDelay != 50*time.Millisecond || p.Budget.MaxTokens != 100 {
		t.Errorf("OverloadPolicy() = %+v, want our defaults, no per-attempt timeout", p)
	}
	if len(UserOptions(p)) != 1 {
		t.Errorf("UserOptions of the defaults: %d options, want MaxAttempts alone", len(UserOptions(p)))
	}
	q := Quickstart(p)
	if q.MaxAttempts != 4 || q.PerAttemptTimeout != 500*time.Millisecond || len(UserOptions(q)) != 2 {
		t.Errorf("Quickstart: %+v with %d options, want 4 attempts, 500ms, 2 options", q, len(UserOptions(q)))
	}
	if _, err := SelectOverload("ours,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("SelectOverload with an unknown stack: %v, want an error naming it", err)
	}
}
