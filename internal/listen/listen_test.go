package listen

import (
	"net"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAgainBindsTheSamePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	l2, err := Again(addr)
	if err != nil {
		t.Fatalf("Again(%s): %v", addr, err)
	}
	defer l2.Close()
	if got := l2.Addr().String(); got != addr {
		t.Fatalf("bound %s, want %s", got, addr)
	}
}

func TestAgainFailsAtOnceOnOtherErrors(t *testing.T) {
	if _, err := Again("256.0.0.1:1"); err == nil {
		t.Fatal("Again on an invalid address succeeded")
	}
}
