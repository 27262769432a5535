// Serviceconfig: load the service config JSON gRPC users already write
// (gRFC A6, as grpc.WithDefaultServiceConfig takes it) and print what each
// method of a service resolved to.
//
// The same file works with grpc-go's own retry: the "resilience" keys are
// this library's extension, and grpc-go's parser ignores them.
//
//	go -C examples run ./serviceconfig                       # the service.json next to this file
//	go -C examples run ./serviceconfig -config my-service.json
package main

import (
	_ "embed"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

//go:embed service.json
var defaultConfig string

func main() {
	path := flag.String("config", "", "service config JSON file (default: the example's service.json)")
	flag.Parse()
	js := defaultConfig
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			log.Fatal(err)
		}
		js = string(b)
	}
	if err := run(os.Stdout, js); err != nil {
		log.Fatal(err)
	}
}

// methods are the full method names of the service printed.
var methods = []string{
	testingv1.EchoService_Echo_FullMethodName,
	testingv1.EchoService_ServerStream_FullMethodName,
	testingv1.EchoService_ClientStream_FullMethodName,
	testingv1.EchoService_BidiStream_FullMethodName,
}

func run(w io.Writer, js string) error {
	m, err := interceptors.New(interceptors.WithServiceConfig(js))
	if err != nil {
		return err // names the JSON path and the value
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tattempts\tcodes\tbackoff\tper attempt\ttimeout\thedging\tbreaker")
	for _, name := range methods {
		p := m.MethodPolicy(name)
		hedging := "-"
		if h := p.Hedging; h != nil {
			hedging = fmt.Sprintf("%d after %v", h.MaxAttempts, h.Delay)
			if h.Percentile > 0 {
				hedging += fmt.Sprintf(" (p%g once known)", h.Percentile*100)
			}
		}
		per := "-"
		if p.PerAttemptTimeout > 0 {
			per = p.PerAttemptTimeout.String()
		}
		codes := make([]string, len(p.RetryCodes))
		for i, c := range p.RetryCodes {
			codes[i] = c.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%s\t%v\t%s\t%v\n", name[strings.LastIndexByte(name, '/')+1:],
			p.MaxAttempts, strings.Join(codes, ","), p.Backoff, per, p.Timeout, hedging, p.Breaker)
	}
	if b := m.MethodPolicy(methods[0]).RetryBudget; b != nil {
		fmt.Fprintf(tw, "\nretry budget per target: %g tokens, %g back per success\n", b.MaxTokens, b.TokenRatio)
	}
	return tw.Flush()
}
