package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// readmeServiceConfig returns the service config JSON the README shows,
// with its service renamed to the EchoService.
func readmeServiceConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Service config: the JSON you already have.*?```json\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md: no ```json block in the service config section")
	}
	return strings.ReplaceAll(string(m[1]), "orders.v1.Orders", "resilience.testing.v1.EchoService")
}

// noiseSuccess makes calls of Echo, 8 at a time, against a server whose
// attempts fail with Unavailable at rate noise, through a Middleware
// configured by js, and returns the share of calls that succeeded.
func noiseSuccess(t *testing.T, js string, noise float64, calls int) float64 {
	t.Helper()
	faults, err := resiliencetest.NewFaults(resiliencetest.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := faults.InjectFraction(resiliencetest.AllMethods, noise, resiliencetest.Fail(codes.Unavailable)); err != nil {
		t.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	m, err := interceptors.New(interceptors.WithServiceConfig(js))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	var ok atomic.Int64
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for range next {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if _, err := client.Echo(ctx, &testingv1.EchoRequest{Message: "x"}); err == nil {
					ok.Add(1)
				}
				cancel()
			}
		})
	}
	for range calls {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return float64(ok.Load()) / float64(calls)
}

// TestREADMEServiceConfigUnderNoise keeps the README's promise for its own
// service config: 30 % transient noise is retried freely (the retry budget
// of its retryThrottling does not stop the retries). It also measures what
// a smaller tokenRatio does, the figure the README gives beside the
// example (-v prints them):
//
//	go -C examples test -run TestREADMEServiceConfigUnderNoise -v ./serviceconfig
func TestREADMEServiceConfigUnderNoise(t *testing.T) {
	js := readmeServiceConfig(t)
	if !strings.Contains(js, `"tokenRatio": 0.5`) {
		t.Fatalf("the README's service config no longer has tokenRatio 0.5; update this test and the figures beside it:\n%s", js)
	}
	// Echo is hedged in the README's config; the retry entry is the
	// service's, so measure a method it covers alone.
	js = strings.Replace(js, `"method": "Get"`, `"method": "NotEcho"`, 1)
	const calls = 1000
	got := noiseSuccess(t, js, 0.3, calls)
	t.Logf("README service config (tokenRatio 0.5), 30 %% noise, %d calls: %.1f %% succeeded", calls, 100*got)
	if got < 0.95 {
		t.Errorf("30 %% noise: %.1f %% of calls succeeded, want >= 95 %% (maxAttempts 4 leaves 0.3^4 = 0.8 %% failing)", 100*got)
	}
	if testing.Short() {
		return
	}
	for _, ratio := range []string{"0.1", "1"} {
		other := strings.Replace(js, `"tokenRatio": 0.5`, `"tokenRatio": `+ratio, 1)
		t.Logf("tokenRatio %s, 30 %% noise, %d calls: %.1f %% succeeded", ratio, calls, 100*noiseSuccess(t, other, 0.3, calls))
	}
}
