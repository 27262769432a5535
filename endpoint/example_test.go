package endpoint_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/endpoint"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

func ExampleServiceConfig() {
	js, err := endpoint.ServiceConfig(endpoint.Config{ConsecutiveFailures: 10, BaseEjectionTime: 10 * time.Second})
	fmt.Println(js, err)
	// Output: {"loadBalancingConfig":[{"resilience_endpoint":{"consecutiveFailures":10,"baseEjectionTime":"10s"}}]} <nil>
}

func ExampleConfig_Validate() {
	err := endpoint.Config{FailureRatio: 1.5, MaxEjectionTime: -time.Second}.Validate()
	fmt.Println(err)
	// Output:
	// endpoint: invalid config: FailureRatio must be in (0,1] (0 means default), got 1.5
	// endpoint: invalid config: MaxEjectionTime must be >= 0 (0 means default), got -1s
}

// server answers Echo with Unavailable when down, else with its address.
type server struct {
	testingv1.UnimplementedEchoServiceServer
	addr string
	down bool
}

func (s *server) Echo(context.Context, *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	if s.down {
		return nil, status.Error(codes.Unavailable, "down")
	}
	return &testingv1.EchoResponse{Message: s.addr}, nil
}

// A call's retry goes to an endpoint the call has not tried: the retry of a
// call whose first attempt met the failing endpoint succeeds.
func ExampleNewCall() {
	var eps []resolver.Endpoint
	for i := range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			return
		}
		gs := grpc.NewServer()
		testingv1.RegisterEchoServiceServer(gs, &server{addr: lis.Addr().String(), down: i == 0})
		go func() { _ = gs.Serve(lis) }()
		defer gs.Stop()
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: lis.Addr().String()}}})
	}
	r := manual.NewBuilderWithScheme("example")
	r.InitialState(resolver.State{Endpoints: eps})
	opt, err := endpoint.DialOption(endpoint.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cc, err := grpc.NewClient("example:///orders", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()), opt)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	client := testingv1.NewEchoServiceClient(cc)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Wait until both good endpoints serve (connections take their time).
	served := map[string]bool{}
	for len(served) < 2 && ctx.Err() == nil {
		if resp, err := client.Echo(ctx, &testingv1.EchoRequest{}, grpc.WaitForReady(true)); err == nil {
			served[resp.GetMessage()] = true
		}
	}
	for ctx.Err() == nil { // until a first attempt meets the failing endpoint
		call := endpoint.NewCall(ctx)
		_, err := client.Echo(call, &testingv1.EchoRequest{})
		if status.Code(err) != codes.Unavailable {
			continue
		}
		resp, err := client.Echo(call, &testingv1.EchoRequest{})
		a := endpoint.Attempts(call)
		fmt.Println("first attempt:", codes.Unavailable)
		fmt.Println("retry:", status.Code(err), "on another endpoint:", a[1].Addr != a[0].Addr && a[1].Addr == resp.GetMessage())
		return
	}
	fmt.Println("no first attempt failed")
	// Output:
	// first attempt: Unavailable
	// retry: OK on another endpoint: true
}
