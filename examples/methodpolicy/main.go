// Methodpolicy: one Middleware, a different retry policy per method.
//
// Reads are safe to repeat, so Echo gets more attempts and a bound on each
// one; ClientStream stands for an upload that creates something, so it is
// never retried; every other method keeps the defaults (3 attempts). Each
// method is made to fail a few times in a row, and the example prints
// what the caller saw and how many attempts reached the server.
//
//	go -C examples run ./methodpolicy
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		return err
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		return err
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	m, err := interceptors.New(
		// Reads: up to 5 attempts, none longer than 200 ms.
		interceptors.WithMethodPolicy(
			interceptors.MatchMethods(testingv1.EchoService_Echo_FullMethodName),
			interceptors.MaxAttempts(5),
			interceptors.PerAttemptTimeout(200*time.Millisecond)),
		// Uploads create things: a retry could create them twice.
		interceptors.WithMethodPolicy(
			interceptors.MatchMethods(testingv1.EchoService_ClientStream_FullMethodName),
			interceptors.MaxAttempts(1)),
		// Policies can also match a whole service
		// (interceptors.MatchService("resilience.testing.v1.EchoService")),
		// a name prefix (interceptors.MatchMethodPrefix("Create")) or any
		// rule of yours (interceptors.MatchFunc). Later policies override earlier
		// ones; options passed with a call override both.
	)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	unavailable := resiliencetest.Fail(codes.Unavailable)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tpolicy\tfailures injected\tcaller got\tattempts at the server")
	report := func(method, policy string, failures int, err error) {
		outcome := "OK"
		if err != nil {
			outcome = status.Code(err).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", method, policy, failures, outcome,
			faults.Attempts("/resilience.testing.v1.EchoService/"+method))
	}

	// Echo fails 3 times, then answers: within its 5 attempts.
	if err := faults.InjectNext(testingv1.EchoService_Echo_FullMethodName, 3, unavailable); err != nil {
		return err
	}
	_, err = client.Echo(ctx, &testingv1.EchoRequest{Message: "read"})
	report("Echo", "5 attempts", 3, err)

	// ClientStream fails once: never retried.
	if err := faults.InjectNext(testingv1.EchoService_ClientStream_FullMethodName, 1, unavailable); err != nil {
		return err
	}
	err = upload(ctx, client, "a", "b")
	report("ClientStream", "no retry", 1, err)

	// ServerStream fails 3 times: the default 3 attempts are not enough.
	if err := faults.InjectNext(testingv1.EchoService_ServerStream_FullMethodName, 3, unavailable); err != nil {
		return err
	}
	err = read(ctx, client, 2)
	report("ServerStream", "default: 3", 3, err)
	return tw.Flush()
}

func upload(ctx context.Context, client testingv1.EchoServiceClient, msgs ...string) error {
	stream, err := client.ClientStream(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := stream.Send(&testingv1.ClientStreamRequest{Message: m}); err != nil {
			break // the error comes with CloseAndRecv
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

func read(ctx context.Context, client testingv1.EchoServiceClient, n int32) error {
	stream, err := client.ServerStream(ctx, &testingv1.ServerStreamRequest{Message: "page", Count: n})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}
