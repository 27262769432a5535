package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOtelgrpc(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `WithAttemptSpans(false) + otelgrpc.NewClientHandler (recommended):
  checkout  internal  [app]
  └─ resilience.testing.v1.EchoService/Echo  internal  [resilience]  events: resilience.attempt, resilience.retry, resilience.attempt
     ├─ resilience.testing.v1.EchoService/Echo  client  [otelgrpc]  status Error
     │  └─ resilience.testing.v1.EchoService/Echo  server  [otelgrpc]  status Error
     └─ resilience.testing.v1.EchoService/Echo  client  [otelgrpc]
        └─ resilience.testing.v1.EchoService/Echo  server  [otelgrpc]
metrics:
    resilience.client.attempt.duration
    resilience.client.attempts
    resilience.client.breaker.state
    resilience.client.call.duration
    resilience.client.limiter.in_flight
    resilience.client.limiter.limit
    resilience.client.limiter.queued
    resilience.client.retries
    rpc.client.call.duration

attempt spans on (the default) + otelgrpc: two CLIENT spans per attempt:
  checkout  internal  [app]
  └─ resilience.testing.v1.EchoService/Echo  internal  [resilience]  events: resilience.retry
     ├─ resilience.testing.v1.EchoService/Echo  client  [resilience]  status Error
     │  └─ resilience.testing.v1.EchoService/Echo  client  [otelgrpc]  status Error
     │     └─ resilience.testing.v1.EchoService/Echo  server  [otelgrpc]  status Error
     └─ resilience.testing.v1.EchoService/Echo  client  [resilience]
        └─ resilience.testing.v1.EchoService/Echo  client  [otelgrpc]
           └─ resilience.testing.v1.EchoService/Echo  server  [otelgrpc]
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
