package forwarder

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// loopback returns the two ends of a loopback TCP connection, closed when the test ends.
func loopback(tb testing.TB) (dialled, accepted net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// tcpPair returns the two ends of a loopback TCP connection, the first as a sock.
func tcpPair(t *testing.T) (*sock, net.Conn) {
	t.Helper()
	a, b := loopback(t)
	// A deadline that does not hold would hang the test: the connection closes instead, and the
	// call fails with a closed-connection error rather than the deadline error expected.
	guard := time.AfterFunc(actortest.Wait, func() { a.Close() })
	t.Cleanup(func() { guard.Stop() })
	s := newSock(a)
	if s == nil {
		t.Fatal("no sock for a TCP connection")
	}
	return s, b
}

func TestLazyReadIgnoresAStaleDeadlineAndArmsOnlyToWait(t *testing.T) {
	s, peer := tcpPair(t)
	_ = s.conn.SetReadDeadline(time.Now().Add(-time.Second)) // left over from an earlier read
	if _, err := peer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	arms := 0
	arm := func() error {
		arms++
		return s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	}
	buf := make([]byte, 16)
	n, err := s.readLazy(buf, arm)
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read with bytes waiting: got %q, %v; want \"hi\"", buf[:n], err)
	}
	actortest.Equal(t, "arms for bytes already in", arms, 0)
	// Nothing to read: the deadline is armed and holds.
	_, err = s.readLazy(buf, arm)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing to read: got %v, want a deadline error", err)
	}
	actortest.Equal(t, "arms for a read that waits", arms, 1)
	// An arm that refuses ends the read with its error.
	refused := errors.New("aborted")
	if _, err := s.readLazy(buf, func() error { return refused }); err != refused {
		t.Fatalf("refused arm: got %v, want %v", err, refused)
	}
	// The end of the stream is io.EOF, found without arming.
	peer.Close()
	time.Sleep(50 * time.Millisecond)
	arms = 0
	if _, err := s.readLazy(buf, arm); err == nil || arms != 0 {
		t.Fatalf("read at the end of the stream: got %v after %d arms, want EOF and none", err, arms)
	}
}

func TestLazyWriteIgnoresAStaleDeadlineAndTimesOutOnceItWaits(t *testing.T) {
	s, _ := tcpPair(t)
	_ = s.conn.SetWriteDeadline(time.Now().Add(-time.Second))
	n, err := s.writeLazy([]byte("hello"), 100*time.Millisecond, nil)
	if err != nil || n != 5 {
		t.Fatalf("write with room in the buffer: got %d, %v; want 5, nil", n, err)
	}
	// The peer reads nothing: a write bigger than the buffers waits, and times out.
	big := make([]byte, 64<<20)
	n, err = s.writeLazy(big, 100*time.Millisecond, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n == len(big) {
		t.Fatalf("write to a peer that does not read: got %d, %v; want part of it and a deadline error", n, err)
	}
	// After an abort, a write that would wait gives up at once.
	abort := make(chan struct{})
	close(abort)
	if _, err := s.writeLazy(big, time.Minute, abort); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("aborted write: got %v, want a deadline error", err)
	}
}
