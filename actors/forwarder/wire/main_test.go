package wire

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// TestMain fails the run if a test leaves goroutines of this package behind (the conn tests
// start writers and acceptors).
func TestMain(m *testing.M) { os.Exit(actortest.RunCheckingLeaks(m, "forwarder/wire.")) }

// testConnTypes runs f over each kind of connection the wire code meets: a synchronous
// net.Pipe (every write is one read) and real loopback TCP (the kernel coalesces and splits).
// f gets the writing and the reading end; both are closed when it returns.
func testConnTypes(t *testing.T, f func(t *testing.T, w, r net.Conn)) {
	t.Run("pipe", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		f(t, a, b)
	})
	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}()
		w, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.(*net.TCPConn).SetNoDelay(true)
		r, ok := <-accepted
		if !ok {
			t.Fatal("accept failed")
		}
		defer r.Close()
		f(t, w, r)
	})
}

// writeInPieces writes s to w in pieces of the given sizes (cycling through them), from its
// own goroutine, and closes w's write side when done; the returned channel reports the error.
func writeInPieces(w net.Conn, s string, sizes ...int) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; len(s) > 0 && err == nil; i++ {
			n := min(sizes[i%len(sizes)], len(s))
			_, err = io.WriteString(w, s[:n])
			s = s[n:]
		}
		if cw, ok := w.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		} else if err == nil {
			err = w.Close()
		}
		done <- err
	}()
	return done
}

// repeatReader returns its bytes over and over, forever: an endless stream of pipelined
// messages for allocation tests and benchmarks.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

// crlf turns the readable "\n" line ends of a test literal into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
