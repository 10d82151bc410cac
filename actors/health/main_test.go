package health

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

// TestMain fails the run if a goroutine of this package (a probe, a test server) outlives the
// tests.
func TestMain(m *testing.M) { os.Exit(actortest.RunCheckingLeaks(m, "/actors/health.")) }

// testServer is a TCP listener on 127.0.0.1 standing in for a backend.
type testServer struct {
	addr string
}

// handler serves one accepted connection; the connection is closed when it returns. done is
// closed when the test ends, so a handler that holds a connection open must also return then.
type handler func(c net.Conn, done <-chan struct{})

// serve starts a test server whose connections are each served by h in a goroutine of their
// own. When the test ends the listener and every connection are closed and serve waits for all
// its goroutines.
func serve(t *testing.T, h handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var wg sync.WaitGroup
		var conns []net.Conn // owned by this goroutine
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
			wg.Go(func() {
				defer c.Close()
				h(c, done)
			})
		}
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		<-exited
	})
	return &testServer{addr: ln.Addr().String()}
}

// deadAddr returns an address on 127.0.0.1 where nothing listens (connections are refused).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// readRequest reads a request head (up to and including the blank line) and returns its bytes.
func readRequest(c net.Conn) ([]byte, error) {
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// answer reads the request and sends raw, then closes the connection (as the classic server
// does).
func answer(raw string) handler {
	return func(c net.Conn, _ <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte(raw))
	}
}

// healthy answers like the classic httpserver with logging on.
func healthy(errors, entries int64) handler {
	body := fmt.Sprintf("%d\n%d", errors, entries)
	return answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
}

// silent accepts and never answers: it reads whatever comes until the prober closes the
// connection (closed, if not nil, is then closed; give it to a server that gets one connection)
// or the test ends.
func silent(closed chan<- struct{}) handler {
	return func(c net.Conn, done <-chan struct{}) {
		eof := make(chan struct{})
		go func() {
			defer close(eof)
			_, _ = io.Copy(io.Discard, c)
		}()
		select {
		case <-eof:
			if closed != nil {
				close(closed)
			}
		case <-done:
			_ = c.Close()
			<-eof
		}
	}
}
