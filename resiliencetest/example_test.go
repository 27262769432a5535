package resiliencetest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/interceptors"
	testingv1 "github.com/grpc-resilience/resilience/proto/resilience/testing/v1"
	"github.com/grpc-resilience/resilience/resiliencetest"
)

// A server of your own fails the next two attempts on a method; the
// resilience client retries through them, and the server counts each
// attempt by its number.
func ExampleFaults() {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		log.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{}) // your service here
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	const echo = testingv1.EchoService_Echo_FullMethodName
	if err := faults.InjectNext(echo, 2, resiliencetest.Fail(codes.Unavailable)); err != nil {
		log.Fatal(err)
	}

	m, err := interceptors.New(interceptors.MaxAttempts(3))
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(m.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var attempts int
	_, err = testingv1.NewEchoServiceClient(conn).Echo(context.Background(),
		&testingv1.EchoRequest{Message: "hi"}, interceptors.Attempts(&attempts))
	fmt.Printf("%v after %d attempts\n", status.Code(err), attempts)
	fmt.Println("attempts at the server by number:", faults.AttemptNumbers(echo))
	// Output:
	// OK after 3 attempts
	// attempts at the server by number: map[1:1 2:1 3:1]
}

// Latency holds an attempt before anything else happens to it; a caller
// whose deadline comes first gets DeadlineExceeded. In a testing/synctest
// bubble (serving over bufconn) the latency passes without the test waiting.
func ExampleFaults_SetLatency() {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		log.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// Every attempt on Echo takes an hour longer; 0.05 would be a tail.
	if err := faults.SetLatency(testingv1.EchoService_Echo_FullMethodName, 1, time.Hour); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{})
	fmt.Println("with a 20ms deadline:", status.Code(err))
	// Output:
	// with a 20ms deadline: DeadlineExceeded
}

// A server stops and comes back on the same port, as in a rolling deploy.
func ExampleListener_Restart() {
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	call := func(opts ...grpc.CallOption) codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Echo(ctx, &testingv1.EchoRequest{}, opts...)
		return status.Code(err)
	}

	fmt.Println("serving:", call())
	port := lis.Addr().String()
	lis.Stop() // the port is closed, connections dropped
	fmt.Println("stopped:", call())
	if err := lis.Restart(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("same port:", lis.Addr().String() == port)
	conn.ResetConnectBackoff() // a plain client would otherwise wait out its reconnect backoff
	fmt.Println("restarted:", call(grpc.WaitForReady(true)))
	// Output:
	// serving: OK
	// stopped: Unavailable
	// same port: true
	// restarted: OK
}

// A blackholed port accepts connections and never answers: only the
// client's deadline ends the call. Accept-and-close and a refused port fail
// at once.
func ExampleListener_SetMode() {
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	call := func() codes.Code { // a new client each time
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{})
		return status.Code(err)
	}

	for _, mode := range []resiliencetest.ListenerMode{resiliencetest.Blackhole, resiliencetest.AcceptAndClose, resiliencetest.Refuse, resiliencetest.Serve} {
		if err := lis.SetMode(mode); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%v: %v\n", mode, call())
	}
	// Output:
	// Blackhole: DeadlineExceeded
	// AcceptAndClose: Unavailable
	// Refuse: Unavailable
	// Serve: OK
}

// Chaos does nothing until switched on, and can be switched at any time,
// for example from an admin endpoint during a game day.
func ExampleChaos_SetEnabled() {
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	chaos, err := resiliencetest.NewChaos(resiliencetest.ChaosConfig{
		FaultRate: 1, // every call, for the example; 0.01 on a game day
		FaultCode: codes.Unavailable,
	})
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(chaos.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	call := func() codes.Code {
		_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
		return status.Code(err)
	}

	fmt.Println("as created:", chaos.Enabled(), call())
	chaos.SetEnabled(true)
	fmt.Println("switched on:", chaos.Enabled(), call())
	chaos.SetEnabled(false)
	fmt.Println("switched off:", chaos.Enabled(), call())
	// Output:
	// as created: false OK
	// switched on: true Unavailable
	// switched off: false OK
}

// An in-memory Listener serves without a port: the one to use in a
// testing/synctest bubble, where the latency, the client's backoff and its
// deadlines pass in fake time. Records tells what each attempt carried and
// how it ended.
func ExampleListenMemory() {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		log.Fatal(err)
	}
	lis := resiliencetest.ListenMemory()
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{}) // your service here
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	const echo = testingv1.EchoService_Echo_FullMethodName
	if err := faults.InjectNext(echo, 1, resiliencetest.Fail(codes.Unavailable)); err != nil {
		log.Fatal(err)
	}
	m, err := interceptors.New(interceptors.MaxAttempts(3))
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Target(), append(m.DialOptions(),
		grpc.WithContextDialer(lis.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "hi"})
	fmt.Println("call:", status.Code(err))
	for _, r := range faults.Records(echo) {
		fmt.Printf("attempt %d: %v, had a deadline: %v\n", r.Number, r.Code, !r.Deadline.IsZero())
	}
	// Output:
	// call: OK
	// attempt 1: Unavailable, had a deadline: true
	// attempt 2: OK, had a deadline: true
}

// A stalled server holds every attempt until it recovers; WaitAttempts
// tells when an attempt has arrived, without sleeping.
func ExampleFaults_Pause() {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		log.Fatal(err)
	}
	lis := resiliencetest.ListenMemory()
	srv := grpc.NewServer(faults.ServerOptions()...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Target(),
		grpc.WithContextDialer(lis.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if err := faults.Pause(resiliencetest.AllMethods); err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := testingv1.NewEchoServiceClient(conn).Echo(context.Background(), &testingv1.EchoRequest{})
		done <- err
	}()
	if err := faults.WaitAttempts(context.Background(), resiliencetest.AllMethods, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", !faults.Records(resiliencetest.AllMethods)[0].Done)
	faults.Resume(resiliencetest.AllMethods)
	fmt.Println("after Resume:", status.Code(<-done))
	// Output:
	// held: true
	// after Resume: OK
}

// A server of finite capacity: one worker, 200 ms per attempt, one place
// in the queue. Of three calls made at once with a 300 ms deadline, the
// first is served, the second waits for the worker and is served after its
// caller has gone (work for nobody, counted as late), and the third finds
// the queue full.
func ExampleFaults_SetCapacity() {
	faults, err := resiliencetest.NewFaults()
	if err != nil {
		log.Fatal(err)
	}
	const echo = testingv1.EchoService_Echo_FullMethodName
	err = faults.SetCapacity(echo, resiliencetest.Capacity{Workers: 1, Service: 200 * time.Millisecond, Queue: 1})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := resiliencetest.Listen()
	if err != nil {
		log.Fatal(err)
	}
	// WaitForHandlers: Stop returns once the queued work is done.
	srv := grpc.NewServer(append(faults.ServerOptions(), grpc.WaitForHandlers(true))...)
	testingv1.RegisterEchoServiceServer(srv, resiliencetest.EchoServer{})
	go func() { _ = srv.Serve(lis) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testingv1.NewEchoServiceClient(conn)
	ended := make([]chan codes.Code, 3)
	for i := range ended {
		ended[i] = make(chan codes.Code, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := client.Echo(ctx, &testingv1.EchoRequest{Message: "hi"})
			ended[i] <- status.Code(err)
		}()
		// Let each call reach the server before the next starts.
		if err := faults.WaitAttempts(context.Background(), echo, i+1); err != nil {
			log.Fatal(err)
		}
	}
	for i, ch := range ended {
		fmt.Printf("call %d: %v\n", i+1, <-ch)
	}
	srv.Stop()
	fmt.Printf("%+v\n", faults.Work(echo))
	// Output:
	// call 1: OK
	// call 2: DeadlineExceeded
	// call 3: Unavailable
	// {Served:2 Late:1 QueueFull:1}
}
