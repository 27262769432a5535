package interceptors

import (
	"errors"
	"strings"
	"testing"
)

// TestMatchersThatMatchNothingAreRejected: a method name without its
// service or leading slash, a service with a slash, a prefix with one: New
// names the matcher and the argument instead of a policy that never
// applies.
func TestMatchersThatMatchNothingAreRejected(t *testing.T) {
	for _, tc := range []struct {
		m    MethodMatcher
		want string
	}{
		{MatchMethods("catalog.v1.Catalog/GetItem"), `MatchMethods: "catalog.v1.Catalog/GetItem": a full method name is "/package.Service/Method": it lacks the leading "/"`},
		{MatchMethods("Echo"), `MatchMethods: "Echo": a full method name is "/package.Service/Method"; for every method named "Echo" use MatchMethodPrefix`},
		{MatchMethods(echoMethod, "/svc/"), `MatchMethods: "/svc/"`},
		{MatchMethods("/svc/a/b"), `MatchMethods: "/svc/a/b"`},
		{MatchMethods("//M"), `MatchMethods: "//M"`},
		{MatchMethods(""), `MatchMethods: ""`},
		{MatchMethods(), "MatchMethods: no method names given"},
		{MatchService("/resilience.testing.v1.EchoService/"), `MatchService: "/resilience.testing.v1.EchoService/"`},
		{MatchService(""), `MatchService: ""`},
		{MatchMethodPrefix("/pkg.Svc/Create"), `MatchMethodPrefix: "/pkg.Svc/Create"`},
		{MatchFunc(nil), "MatchFunc: func is nil"},
		{MethodMatcher{}, "MethodMatcher: zero value"},
	} {
		_, err := New(WithMethodPolicy(tc.m, MaxAttempts(1)))
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithMethodPolicy: "+tc.want) {
			t.Errorf("New(WithMethodPolicy(bad matcher)) = %v\n  want an error with %q", err, "WithMethodPolicy: "+tc.want)
		}
		if tc.m.Match(echoMethod) || tc.m.Match("") {
			t.Errorf("an invalid matcher (%s) matched", tc.want)
		}
	}
	// Both bad names are named.
	_, err := New(WithMethodPolicy(MatchMethods("A", "b/C"), MaxAttempts(1)))
	if err == nil || !strings.Contains(err.Error(), `"A"`) || !strings.Contains(err.Error(), `"b/C"`) {
		t.Errorf("two bad names: %v, want both named", err)
	}
}

func TestMatchFuncSelectsWhatItsFuncSays(t *testing.T) {
	m := MustNew(WithMethodPolicy(MatchFunc(func(fm string) bool { return strings.HasSuffix(fm, "/Echo") }), MaxAttempts(5)))
	if got := m.MethodPolicy(echoMethod).MaxAttempts; got != 5 {
		t.Errorf("MatchFunc: Echo's MaxAttempts = %d, want 5", got)
	}
	if got := m.MethodPolicy(streamMethod).MaxAttempts; got != DefaultMaxAttempts {
		t.Errorf("MatchFunc: ServerStream's MaxAttempts = %d, want the default %d", got, DefaultMaxAttempts)
	}
}
