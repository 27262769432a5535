// Chaining: the resilience interceptors among go-grpc-middleware v2
// interceptors.
//
// Order decides what an interceptor sees. Chained before the resilience
// interceptors (grpc.WithChainUnaryInterceptor ahead of DialOptions), it
// wraps the logical call: one log line per call, whatever the retries.
// Chained after them, it wraps each attempt: one line per attempt, with
// the attempt number the interceptors add to the outgoing metadata.
//
// go-grpc-middleware's selector can scope the resilience interceptors to
// some methods; WithMethodPolicy (see ../methodpolicy) is the built-in way
// to give methods different policies.
//
//	go -C examples run ./chaining
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	grpcmw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
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
	m, err := interceptors.New()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// 1. Logging around the call and around each attempt.
	perCall := logging.UnaryClientInterceptor(logger(w, "call   "), logging.WithLogOnEvents(logging.FinishCall))
	perAttempt := logging.UnaryClientInterceptor(logger(w, "attempt"), logging.WithLogOnEvents(logging.FinishCall))
	var opts []grpc.DialOption
	opts = append(opts, grpc.WithChainUnaryInterceptor(perCall))    // outermost
	opts = append(opts, m.DialOptions()...)                         // retries, breaker, budget
	opts = append(opts, grpc.WithChainUnaryInterceptor(perAttempt), // innermost: per attempt
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		return err
	}
	defer conn.Close()

	fmt.Fprintln(w, "Echo, the server fails twice:")
	if err := faults.InjectNext(resiliencetest.AllMethods, 2, resiliencetest.Fail(codes.Unavailable)); err != nil {
		return err
	}
	if _, err := testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "hi"}); err != nil {
		return err
	}

	// 2. selector: the resilience interceptors for every method but
	// ClientStream (an upload that must not be repeated). With the
	// interceptors scoped by hand, add the rest of what DialOptions
	// would: grpc-go's own retries off (and WithConnectParams if wanted).
	notUploads := selector.MatchFunc(func(_ context.Context, c grpcmw.CallMeta) bool {
		return c.FullMethod() != testingv1.EchoService_ClientStream_FullMethodName
	})
	scoped, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithChainUnaryInterceptor(selector.UnaryClientInterceptor(m.UnaryClientInterceptor(), notUploads)),
		grpc.WithChainStreamInterceptor(selector.StreamClientInterceptor(m.StreamClientInterceptor(), notUploads)),
		grpc.WithDisableRetry(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer scoped.Close()
	client := testingv1.NewEchoServiceClient(scoped)

	fmt.Fprintln(w, "selector: resilience for every method but ClientStream; each fails twice:")
	for _, method := range []string{
		testingv1.EchoService_ServerStream_FullMethodName,
		testingv1.EchoService_ClientStream_FullMethodName,
	} {
		faults.Reset()
		if err := faults.InjectNext(method, 2, resiliencetest.Fail(codes.Unavailable)); err != nil {
			return err
		}
		err := stream(ctx, client, method)
		fmt.Fprintf(w, "  %-13s %-12v %d attempt(s) reached the server\n", method[len("/resilience.testing.v1.EchoService/"):],
			status.Code(err), faults.Attempts(resiliencetest.AllMethods))
	}
	return nil
}

// logger prints the finish line of a call or attempt: the method, the
// code and, for attempts after the first, the attempt number.
func logger(w io.Writer, prefix string) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, _ logging.Level, msg string, fields ...any) {
		var method, code string
		for i := 0; i+1 < len(fields); i += 2 {
			switch fields[i] {
			case "grpc.method":
				method = fmt.Sprint(fields[i+1])
			case "grpc.code":
				code = fmt.Sprint(fields[i+1])
			}
		}
		line := fmt.Sprintf("  %s %s %s: %s", prefix, method, msg, code)
		md, _ := metadata.FromOutgoingContext(ctx)
		if n := md.Get(interceptors.AttemptMetadataKey); len(n) > 0 {
			line += "  (" + interceptors.AttemptMetadataKey + ": " + n[0] + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// stream makes one ServerStream or ClientStream call to the end.
func stream(ctx context.Context, client testingv1.EchoServiceClient, method string) error {
	if method == testingv1.EchoService_ServerStream_FullMethodName {
		s, err := client.ServerStream(ctx, &testingv1.ServerStreamRequest{Message: "page", Count: 2})
		if err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	s, err := client.ClientStream(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&testingv1.ClientStreamRequest{Message: "upload"}); err != nil && err != io.EOF {
		return err
	}
	_, err = s.CloseAndRecv()
	return err
}
