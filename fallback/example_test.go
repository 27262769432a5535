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
	now := time.Unix(1e9, 0)
	s, err := fallback.NewStore(fallback.Config{MaxAge: time.Minute, Now: func() time.Time { return now }})
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

	now = now.Add(15 * time.Second)
	got := new(testingv1.EchoResponse)
	age, ok, err := s.Load(method, req, got)
	fmt.Println(got.Message, age, ok, err)

	now = now.Add(time.Minute) // past MaxAge: never served
	_, ok, _ = s.Load(method, req, got)
	fmt.Println(ok, s.Len())
	// Output:
	// hello 15s true <nil>
	// false 0
}

func ExampleStore_Fallback() {
	now := time.Unix(1e9, 0)
	s, _ := fallback.NewStore(fallback.Config{Now: func() time.Time { return now }})
	save, answer := s.Saver(), s.Fallback()
	const method = "/resilience.testing.v1.EchoService/Echo"

	// A successful call: the interceptors hand the reply to save.
	save(method, &testingv1.EchoRequest{Message: "a"}, &testingv1.EchoResponse{Message: "a"})

	// Later the downstream is down: the interceptors ask answer.
	now = now.Add(2 * time.Second)
	down := status.Error(codes.Unavailable, "connection refused")
	reply := new(testingv1.EchoResponse)
	info, err := answer(context.Background(), method, &testingv1.EchoRequest{Message: "a"}, reply, down)
	fmt.Printf("%q %+v %v\n", reply.Message, info, err)

	// A request never seen before: the caller gets the original failure.
	_, err = answer(context.Background(), method, &testingv1.EchoRequest{Message: "b"}, reply, down)
	fmt.Println(status.Code(err), err)
	// Output:
	// "a" {Used:true Stale:true Age:2s} <nil>
	// Unavailable rpc error: code = Unavailable desc = connection refused (fallback: no fresh copy)
}
