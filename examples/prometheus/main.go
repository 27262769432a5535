// Command prometheus serves the interceptors' metrics on /metrics with the
// OpenTelemetry Prometheus exporter while a client calls an in-process
// EchoService through a scripted outage, so that the rules and dashboard
// of monitoring/ can be watched at work:
//
//	go -C examples run ./prometheus -listen 127.0.0.1:9464
//	go -C examples run ./prometheus -names grpc   # gRPC's names (gRFC A66/A96)
//
// The phases, one after the other:
//
//	healthy     every attempt succeeds
//	saturated   the server serves -saturated-capacity (half) of the calls
//	            sent, one at a time, and queues the rest: the concurrency
//	            limit falls to what it serves and the client refuses the
//	            excess itself, at once, instead of letting it queue there
//	degraded    -degraded-failures (30 %) of attempts fail with Unavailable:
//	            retries climb, and they save the calls
//	overloaded  -overloaded-failures (60 %) fail: the retry budget refuses
//	            retries, so that they do not pile onto the downstream
//	outage      every attempt fails with Unavailable: the breaker opens
//	recovered   every attempt succeeds again, until -recovered ends (0: forever)
//
// Point Prometheus at it with monitoring/resilience.rules.yml (or
// resilience-grpc.rules.yml with -names grpc) loaded:
//
//	scrape_configs:
//	  - job_name: app
//	    static_configs: [{targets: ["127.0.0.1:9464"]}]
//
// The breaker transitions, the concurrency limit's falls and recoveries and
// the calls that give up are logged (slog, text, on stderr) through
// interceptors.WithLogger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("metrics on http://%s/metrics\n", lis.Addr())
	if err := run(ctx, cfg, lis, os.Stdout, os.Stderr, nil); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// config holds the example's settings, one flag each.
type config struct {
	Listen             string
	Names              string
	Rate               float64
	Healthy            time.Duration
	Saturated          time.Duration
	SaturatedCapacity  float64
	Degraded           time.Duration
	DegradedFailures   float64
	Overloaded         time.Duration
	OverloadedFailures float64
	Outage             time.Duration
	Recovered          time.Duration
	OpenTimeout        time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("prometheus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9464", "address of the /metrics endpoint")
	fs.StringVar(&c.Names, "names", "resilience", "metric names: resilience (the default) or grpc (gRFC A66/A96)")
	fs.Float64Var(&c.Rate, "rate", 50, "calls per second")
	fs.DurationVar(&c.Healthy, "healthy", 30*time.Second, "length of the healthy phase")
	fs.DurationVar(&c.Saturated, "saturated", time.Minute, "length of the saturated phase")
	fs.Float64Var(&c.SaturatedCapacity, "saturated-capacity", 0.5, "calls the server serves in the saturated phase, as a fraction of -rate")
	fs.DurationVar(&c.Degraded, "degraded", time.Minute, "length of the degraded phase")
	fs.Float64Var(&c.DegradedFailures, "degraded-failures", 0.3, "fraction of attempts failing in the degraded phase")
	fs.DurationVar(&c.Overloaded, "overloaded", time.Minute, "length of the overloaded phase")
	fs.Float64Var(&c.OverloadedFailures, "overloaded-failures", 0.6, "fraction of attempts failing in the overloaded phase")
	fs.DurationVar(&c.Outage, "outage", time.Minute, "length of the outage phase")
	fs.DurationVar(&c.Recovered, "recovered", 0, "length of the recovered phase (0: until interrupted)")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 5*time.Second, "breaker OpenTimeout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Names != "resilience" && c.Names != "grpc" {
		return c, fmt.Errorf("-names: want resilience or grpc, got %q", c.Names)
	}
	if !(c.Rate > 0) || !(c.DegradedFailures >= 0 && c.DegradedFailures <= 1) || !(c.OverloadedFailures >= 0 && c.OverloadedFailures <= 1) {
		return c, errors.New("-rate must be > 0, -degraded-failures and -overloaded-failures in [0, 1]")
	}
	if !(c.SaturatedCapacity > 0 && c.SaturatedCapacity <= 1) {
		return c, fmt.Errorf("-saturated-capacity: want a fraction of -rate in (0, 1], got %v", c.SaturatedCapacity)
	}
	return c, nil
}

// Phase names, as reported to run's onPhase.
const (
	PhaseHealthy    = "healthy"
	PhaseSaturated  = "saturated"
	PhaseDegraded   = "degraded"
	PhaseOverloaded = "overloaded"
	PhaseOutage     = "outage"
	PhaseRecovered  = "recovered"
)

// run serves /metrics on lis and plays the phases, calling onPhase (if
// not nil) as each starts. It returns when the last phase ends or ctx is
// done, with everything it started stopped.
func run(ctx context.Context, cfg config, lis net.Listener, stdout, stderr io.Writer, onPhase func(string)) error {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())

	hs := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lis) }()
	defer func() {
		_ = hs.Close()
		<-served
	}()

	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return err
	}
	glis, err := resiliencetest.Listen()
	if err != nil {
		return err
	}
	var capa capacity
	gs := grpc.NewServer(append(faults.ServerOptions(), grpc.ChainUnaryInterceptor(capa.intercept))...)
	testingv1.RegisterEchoServiceServer(gs, resiliencetest.EchoServer{})
	go func() { _ = gs.Serve(glis) }()
	defer gs.Stop()

	names := interceptors.MetricNamesResilience
	if cfg.Names == "grpc" {
		names = interceptors.MetricNamesGRPC
	}
	m, err := interceptors.New(
		interceptors.WithMeterProvider(mp),
		interceptors.WithMetricNames(names),
		interceptors.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))),
		interceptors.WithBreaker(breaker.Config{OpenTimeout: cfg.OpenTimeout}),
	)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(glis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	stub := testingv1.NewEchoServiceClient(conn)

	const method = testingv1.EchoService_Echo_FullMethodName
	phases := []struct {
		name     string
		dur      time.Duration
		failures float64
		service  time.Duration // the saturated server's time per call; 0: no limit
	}{
		{PhaseHealthy, cfg.Healthy, 0, 0},
		{PhaseSaturated, cfg.Saturated, 0, time.Duration(float64(time.Second) / (cfg.Rate * cfg.SaturatedCapacity))},
		{PhaseDegraded, cfg.Degraded, cfg.DegradedFailures, 0},
		{PhaseOverloaded, cfg.Overloaded, cfg.OverloadedFailures, 0},
		{PhaseOutage, cfg.Outage, 1, 0},
		{PhaseRecovered, cfg.Recovered, 0, 0},
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	done := make(chan struct{}, 1024)
	inFlight := 0
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-done
		}
	}()
	for _, p := range phases {
		capa.set(p.service)
		faults.Clear(method)
		if p.failures > 0 {
			if err := faults.InjectFraction(method, p.failures, resiliencetest.Fail(codes.Unavailable)); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "%s: phase %s\n", time.Now().Format(time.TimeOnly), p.name)
		if onPhase != nil {
			onPhase(p.name)
		}
		var end <-chan time.Time
		if p.dur > 0 {
			timer := time.NewTimer(p.dur)
			end = timer.C
			defer timer.Stop()
		}
	phase:
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-end:
				break phase
			case <-done:
				inFlight--
			case <-tick.C:
				if inFlight >= cap(done) {
					continue // the client is saturated: skip this call
				}
				inFlight++
				go func() {
					cctx, cancel := context.WithTimeout(ctx, time.Second)
					defer cancel()
					_, _ = stub.Echo(cctx, &testingv1.EchoRequest{Message: "hello"})
					done <- struct{}{}
				}()
			}
		}
	}
	return nil
}

// capacity, while set, makes the server serve one unary call at a time,
// each for a fixed time, and hold the others in line (first come, first
// served) until their turn or their deadline: a server at its capacity,
// whose queue, left alone, grows as long as it is sent more than it
// serves.
type capacity struct {
	service atomic.Int64  // ns per call; 0: unlimited
	once    sync.Once     // makes slot
	slot    chan struct{} // the one worker's place
}

func (c *capacity) set(service time.Duration) { c.service.Store(int64(service)) }

func (c *capacity) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	d := time.Duration(c.service.Load())
	if d == 0 {
		return handler(ctx, req)
	}
	c.once.Do(func() { c.slot = make(chan struct{}, 1) })
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-c.slot }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}
