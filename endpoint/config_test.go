package endpoint

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/grpc/balancer"
)

func TestDefaultConfigIsFresh(t *testing.T) {
	a := DefaultConfig()
	a.MinRequests = 7
	if DefaultConfig().MinRequests != 50 {
		t.Fatal("DefaultConfig shares state")
	}
	if got, want := (Config{}).withDefaults(), DefaultConfig().withDefaults(); got.Window != want.Window ||
		got.MinRequests != want.MinRequests || got.FailureRatio != want.FailureRatio ||
		got.ConsecutiveFailures != want.ConsecutiveFailures || got.BaseEjectionTime != want.BaseEjectionTime ||
		got.MaxEjectionTime != want.MaxEjectionTime || got.MaxEjectedRatio != want.MaxEjectedRatio {
		t.Fatalf("zero Config = %+v, want the defaults %+v", got, want)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	err := Config{
		Window:              -time.Second,
		MinRequests:         -1,
		FailureRatio:        math.NaN(),
		ConsecutiveFailures: -2,
		BaseEjectionTime:    -1,
		MaxEjectionTime:     -1,
		MaxEjectedRatio:     1.5,
	}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Window", "MinRequests", "FailureRatio", "ConsecutiveFailures",
		"BaseEjectionTime", "MaxEjectionTime", "MaxEjectedRatio"} {
		if !strings.Contains(err.Error(), "config: "+field+" ") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	for _, c := range []Config{
		{Window: time.Microsecond},
		{FailureRatio: 1.01},
		{FailureRatio: -0.1},
		{MaxEjectedRatio: math.NaN()},
		{MinRequests: math.MaxInt32 + 1},
		{BaseEjectionTime: time.Hour}, // above the default MaxEjectionTime
		{MaxEjectionTime: time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig", c, err)
		}
	}
	for _, c := range []Config{
		{MinRequests: math.MaxInt32, ConsecutiveFailures: math.MaxInt32}, // rules off
		{FailureRatio: 1, MaxEjectedRatio: 1},
		{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func parse(t *testing.T, js string) (Config, error) {
	t.Helper()
	lc, err := balancer.Get(Name).(balancer.ConfigParser).ParseConfig([]byte(js))
	if err != nil {
		return Config{}, err
	}
	return lc.(*lbConfig).cfg, nil
}

func TestParseConfig(t *testing.T) {
	for _, js := range []string{``, `null`, `{}`} {
		c, err := parse(t, js)
		if err != nil {
			t.Fatalf("%q: %v", js, err)
		}
		if d := DefaultConfig(); c.Window != d.Window || c.MinRequests != d.MinRequests ||
			c.ConsecutiveFailures != d.ConsecutiveFailures || c.MaxEjectedRatio != d.MaxEjectedRatio {
			t.Fatalf("%q parsed as %+v, want the defaults", js, c)
		}
	}
	c, err := parse(t, `{"window":"5s","minRequests":20,"failureRatio":0.9,"consecutiveFailures":7,
		"baseEjectionTime":"1s","maxEjectionTime":"60s","maxEjectedRatio":0.5}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Window != 5*time.Second || c.MinRequests != 20 || c.FailureRatio != 0.9 || c.ConsecutiveFailures != 7 ||
		c.BaseEjectionTime != time.Second || c.MaxEjectionTime != time.Minute || c.MaxEjectedRatio != 0.5 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseConfigErrorsNameJSONFields(t *testing.T) {
	_, err := parse(t, `{"window":10,"minRequests":-1,"failureRatio":"high","consecutiveFailures":2.5,
		"baseEjectionTime":"soon","maxEjectionTime":"-1s","maxEjectedRatio":2,"maxEjectionPercent":10,
		"hooks":"h0"}`)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, key := range []string{"window", "minRequests", "failureRatio", "consecutiveFailures",
		"baseEjectionTime", "maxEjectionTime", "maxEjectedRatio", "maxEjectionPercent", "hooks"} {
		if !strings.Contains(err.Error(), "config: "+key+" ") {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	// Durations are google.protobuf.Duration JSON, as in the service
	// config: Go's "1m" is an error showing the form wanted.
	if _, err := parse(t, `{"window":"1m"}`); err == nil ||
		!strings.Contains(err.Error(), `window is invalid: malformed duration "1m": want seconds such as "1.5s"`) {
		t.Fatalf("Go duration: err = %v", err)
	}
	if _, err := parse(t, `[1]`); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("array: err = %v", err)
	}
	if _, err := parse(t, `{"baseEjectionTime":"600s"}`); err == nil ||
		!strings.Contains(err.Error(), "maxEjectionTime (5m0s) must be >= baseEjectionTime (10m0s)") {
		t.Fatalf("err = %v", err)
	}
}

func TestServiceConfig(t *testing.T) {
	js, err := ServiceConfig(Config{})
	if err != nil || js != `{"loadBalancingConfig":[{"resilience_endpoint":{}}]}` {
		t.Fatalf("ServiceConfig(Config{}) = %s, %v", js, err)
	}
	js, err = ServiceConfig(Config{ConsecutiveFailures: 5, MaxEjectionTime: time.Minute})
	if want := `{"loadBalancingConfig":[{"resilience_endpoint":{"consecutiveFailures":5,"maxEjectionTime":"60s"}}]}`; err != nil || js != want {
		t.Fatalf("got %s, %v, want %s", js, err, want)
	}
	if _, err := ServiceConfig(Config{OnEject: func(string, string, bool) {}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("OnEject through JSON: err = %v", err)
	}
	if _, err := ServiceConfig(Config{FailureRatio: 2}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	if _, err := DialOption(Config{FailureRatio: 2, OnEject: func(string, string, bool) {}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
}

func TestHooksHandle(t *testing.T) {
	called := false
	h := &hooks{cfg: Config{OnEject: func(string, string, bool) { called = true }}}
	id := registerHooks(h)
	c, err := parse(t, `{"hooks":"`+id+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	c.OnEject("", "", true)
	if !called {
		t.Fatal("the parsed config does not carry the registered hook")
	}
}

func TestNewCallAllocatesOnce(t *testing.T) {
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _ = NewCall(ctx) }); n != 1 {
		t.Fatalf("NewCall: %v allocations, want 1", n)
	}
	if sz := unsafe.Sizeof(call{}); sz > 128 {
		t.Fatalf("call record is %d bytes", sz)
	}
	if Attempts(ctx) != nil || Attempts(NewCall(ctx)) == nil {
		t.Fatal("Attempts: want nil without a record, empty with one")
	}
}
