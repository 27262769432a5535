package resiliencetest

import (
	"context"
	"io"

	"google.golang.org/grpc"

	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
)

// EchoServer is a plain implementation of the project's EchoService
// (package testingv1), to try a client and the kit against before pointing
// them at a service of your own. Register it with
// testingv1.RegisterEchoServiceServer(s, resiliencetest.EchoServer{}).
// It keeps no state; it injects no faults (Faults does, as interceptors).
//
//   - Echo returns the request's message.
//   - ServerStream sends Count responses numbered from 0, each with the
//     request's message.
//   - ClientStream collects every message until the client half-closes and
//     replies with all of them in order.
//   - BidiStream echoes every message with its sequence number, from 0.
type EchoServer struct {
	testingv1.UnimplementedEchoServiceServer
}

var _ testingv1.EchoServiceServer = EchoServer{}

// Echo returns the request's message.
func (EchoServer) Echo(_ context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	return &testingv1.EchoResponse{Message: req.GetMessage()}, nil
}

// ServerStream sends req.Count responses numbered from 0.
func (EchoServer) ServerStream(req *testingv1.ServerStreamRequest, stream grpc.ServerStreamingServer[testingv1.ServerStreamResponse]) error {
	for i := range req.GetCount() {
		if err := stream.Send(&testingv1.ServerStreamResponse{Sequence: i, Message: req.GetMessage()}); err != nil {
			return err
		}
	}
	return nil
}

// ClientStream replies with every message received, in order.
func (EchoServer) ClientStream(stream grpc.ClientStreamingServer[testingv1.ClientStreamRequest, testingv1.ClientStreamResponse]) error {
	var msgs []string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testingv1.ClientStreamResponse{Messages: msgs})
		}
		if err != nil {
			return err
		}
		msgs = append(msgs, m.GetMessage())
	}
}

// BidiStream echoes every message with its sequence number, from 0, until
// the client half-closes.
func (EchoServer) BidiStream(stream grpc.BidiStreamingServer[testingv1.BidiStreamRequest, testingv1.BidiStreamResponse]) error {
	for seq := int32(0); ; seq++ {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testingv1.BidiStreamResponse{Message: m.GetMessage(), Sequence: seq}); err != nil {
			return err
		}
	}
}
