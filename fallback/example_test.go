package fallback_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/fallback"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func ExampleStore() {
	s, err := fallback.NewStore(fallback.Config{MaxAge: time.Minute})
	if err != nil {
		panic(err)
	}
	const method = "/resilience.testing.v1.EchoService/Echo"
	req := &testingv1.EchoRequest{Message: "hello"}
	reply := &testingv1.EchoResponse{Message: "hello"}
	if err := s.Save(method, req, reply); err != nil {
		panic(err)
	}
	reply.Message = "changed" // the Store kept its own copy

	got := new(testingv1.EchoResponse)
	age, ok, err := s.Load(method, req, got)
	// A copy older than MaxAge (a minute here) is never served.
	fmt.Println(got.Message, age < time.Minute, ok, err)
	// Output:
	// hello true true <nil>
}

func ExampleStore_Fallback() {
	s, _ := fallback.NewStore(fallback.Config{})
	save, answer := s.Saver(), s.Fallback()
	const method = "/resilience.testing.v1.EchoService/Echo"

	// A successful call: the interceptors hand the reply to save.
	save(method, &testingv1.EchoRequest{Message: "a"}, &testingv1.EchoResponse{Message: "a"})

	// Later the downstream is down: the interceptors ask answer.
	down := status.Error(codes.Unavailable, "connection refused")
	reply := new(testingv1.EchoResponse)
	info, err := answer(context.Background(), method, &testingv1.EchoRequest{Message: "a"}, reply, down)
	fmt.Printf("%q used=%v stale=%v %v\n", reply.Message, info.Used, info.Stale, err)

	// A request never seen before: the caller gets the original failure.
	_, err = answer(context.Background(), method, &testingv1.EchoRequest{Message: "b"}, reply, down)
	fmt.Println(status.Code(err), err)
	// Output:
	// "a" used=true stale=true <nil>
	// Unavailable rpc error: code = Unavailable desc = connection refused (fallback: no fresh copy)
}
