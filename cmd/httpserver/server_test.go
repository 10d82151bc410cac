package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a server in this process, serving a temporary working directory.
type testServer struct {
	*server
	ln      net.Listener
	pipes   sync.WaitGroup // serveConn goroutines of net.Pipe connections
	logPath string
}

// newTestServer starts a server with a log file (and -N threads) in a fresh working
// directory, listening on a loopback port; clean-up stops it and waits for its goroutines.
func newTestServer(t *testing.T, threads int, closeEach bool) *testServer {
	t.Helper()
	t.Chdir(t.TempDir())
	logPath := filepath.Join(t.TempDir(), "log")
	log, err := openLog(logPath, 0, 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		server: &server{
			slots:       make(chan struct{}, threads),
			log:         log,
			closeEach:   closeEach,
			timeout:     30 * time.Second,
			newFileMode: 0o644,
			stderr:      io.Discard,
		},
		ln:      ln,
		logPath: logPath,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		ts.serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
		ts.conns.Wait()
		ts.pipes.Wait()
		log.close()
	})
	return ts
}

// connect returns a client connection of the given type: "tcp" through the listener, "pipe"
// a net.Pipe served directly (no splice, sendfile or half-close). Clean-up closes it.
func (ts *testServer) connect(t *testing.T, typ string) net.Conn {
	t.Helper()
	var c net.Conn
	switch typ {
	case "tcp":
		var err error
		if c, err = net.Dial("tcp", ts.ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	case "pipe":
		var s net.Conn
		c, s = net.Pipe()
		ts.pipes.Add(1)
		go func() {
			defer ts.pipes.Done()
			ts.serveConn(s)
		}()
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// converse writes in on c from another goroutine (a net.Pipe write blocks until read) and
// returns everything read until the server closes.
func converse(t *testing.T, c net.Conn, in string) string {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, in)
		done <- err
	}()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (after %q)", err, out)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	return string(out)
}

var connTypes = []string{"tcp", "pipe"}

func TestServeConnPipelined(t *testing.T) {
	for _, typ := range connTypes {
		t.Run(typ, func(t *testing.T) {
			ts := newTestServer(t, 2, false)
			big := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB: several body chunks
			in := "PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" +
				"GET /a HTTP/1.1\r\n\r\n" +
				"HEAD /a HTTP/1.1\r\n\r\n" +
				"GET /missing HTTP/1.1\r\n\r\n" +
				"DELETE /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz" +
				"GET /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nzz" +
				fmt.Sprintf("PUT /big HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", len(big), big) +
				"GET /big HTTP/1.1\r\n\r\n" +
				"GET /healthcheck HTTP/1.1\r\nConnection: close\r\n\r\n" +
				"GET /a HTTP/1.1\r\n\r\n"
			want := "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" +
				"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" +
				"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" +
				"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n" +
				fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big) +
				"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n2\n8"
			got := converse(t, ts.connect(t, typ), in)
			if got != want {
				t.Fatalf("got %d bytes, want %d: got %q…", len(got), len(want), got[:min(len(got), 400)])
			}
		})
	}
}

func TestServeConnClose(t *testing.T) {
	for _, typ := range connTypes {
		t.Run(typ, func(t *testing.T) {
			ts := newTestServer(t, 1, true)
			if err := os.WriteFile("f", []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			// --close: one answer, no Connection header, then the close.
			got := converse(t, ts.connect(t, typ), "GET /f HTTP/1.1\r\n\r\nGET /f HTTP/1.1\r\n\r\n")
			if want := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

func TestServeConnShortBody(t *testing.T) {
	for _, typ := range connTypes {
		t.Run(typ, func(t *testing.T) {
			ts := newTestServer(t, 1, false)
			if err := os.WriteFile("f", []byte("original"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := ts.connect(t, typ)
			io.WriteString(c, "PUT /f HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
			c.Close()
			// The failure is logged before the connection's goroutine ends; wait for it by
			// asking for the counters on a new connection (requests are logged in order of
			// completion, so poll).
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(readFile(t, ts.logPath), "FAIL: PUT /f HTTP/1.1 --- response 400\n========\n") {
				if time.Now().After(deadline) {
					t.Fatalf("no FAIL entry; log %q", readFile(t, ts.logPath))
				}
				time.Sleep(5 * time.Millisecond)
			}
			if b, err := os.ReadFile("f"); err != nil || string(b) != "original" {
				t.Fatalf("file after a cut PUT: %q, %v", b, err)
			}
			if m, _ := filepath.Glob(".httpserver-*"); len(m) > 0 {
				t.Fatalf("temporary files left: %q", m)
			}
		})
	}
}

func TestServeConnGetDuringPut(t *testing.T) {
	// A GET while a PUT to the same file is halfway sees the old file, whole.
	ts := newTestServer(t, 2, false)
	if err := os.WriteFile("f", []byte("old version"), 0o644); err != nil {
		t.Fatal(err)
	}
	put := ts.connect(t, "tcp")
	io.WriteString(put, "PUT /f HTTP/1.1\r\nContent-Length: 11\r\n\r\nnew ")
	deadline := time.Now().Add(10 * time.Second)
	for m, _ := filepath.Glob(".httpserver-f-*"); len(m) == 0; m, _ = filepath.Glob(".httpserver-f-*") {
		if time.Now().After(deadline) {
			t.Fatal("the PUT never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := converse(t, ts.connect(t, "tcp"), "GET /f HTTP/1.1\r\nConnection: close\r\n\r\n"); got != "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nold version" {
		t.Fatalf("GET during the PUT: got %q", got)
	}
	io.WriteString(put, "version")
	br := bufio.NewReader(put)
	if line, _ := br.ReadString('\n'); line != "HTTP/1.1 201 Created\r\n" {
		t.Fatalf("PUT: got %q", line)
	}
	if b, _ := os.ReadFile("f"); !bytes.Equal(b, []byte("new version")) {
		t.Fatalf("after the PUT: %q", b)
	}
}

func BenchmarkServeGet(b *testing.B) {
	// Small GETs on one kept-alive connection, through net.Pipe (the network is not the point).
	b.Chdir(b.TempDir())
	if err := os.WriteFile("f", bytes.Repeat([]byte("x"), 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	s := &server{slots: make(chan struct{}, 4), timeout: time.Minute, stderr: io.Discard}
	c, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveConn(sc)
	}()
	req := []byte("GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
	resp := make([]byte, len("HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n")+1024)
	// One writer goroutine: a net.Pipe write blocks until the server reads it.
	next := make(chan struct{})
	written := make(chan struct{})
	go func() {
		defer close(written)
		for range next {
			c.Write(req)
		}
	}()
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		next <- struct{}{}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
	close(next)
	<-written
	c.Close()
	<-done
}

// startServer starts a server built from a command line (args, without the port: it listens
// on a free loopback port) in a fresh working directory holding the file "f"; clean-up stops
// it and waits for its goroutines.
func startServer(t *testing.T, args ...string) (*server, string) {
	t.Helper()
	t.Chdir(t.TempDir())
	if err := os.WriteFile("f", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := parseArgs(append(args, "1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var log *requestLog
	if opts.logging() {
		if log, err = openLog(opts.logFile, opts.errors, opts.entries, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(opts, log, io.Discard)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
		srv.conns.Wait()
		log.close()
	})
	return srv, ln.Addr().String()
}

// timedGet sends one request for path on a new connection (closed after the answer) and
// returns the whole answer and how long it took from the write to the close.
func timedGet(t *testing.T, addr, path string) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("GET %s: %v after %q", path, err, out)
	}
	return string(out), time.Since(start)
}

func TestServeDelay(t *testing.T) {
	// Behaviour, not timing: a delayed answer takes at least the delay (time.Sleep never
	// returns early), and an undelayed one takes well under it on any machine.
	const delay = 200 * time.Millisecond
	tests := []struct {
		name        string
		args        []string
		path        string
		want        string
		wantDelayed bool
	}{
		// The point of --delay: a file is answered late.
		{name: "GET delayed", args: []string{"-L", "--delay", "200ms"}, path: "/f",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", wantDelayed: true},
		// Every answer is, errors too: a slow backend is slow at everything.
		{name: "404 delayed", args: []string{"-L", "--delay", "200ms"}, path: "/missing",
			want: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", wantDelayed: true},
		// Except the health check, so that a slow backend still counts as up (the load
		// balancer gives a health check 2 s), and the counters the health check reports.
		{name: "health check not delayed", args: []string{"-L", "--delay", "200ms"}, path: "/healthcheck",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n0\n0"},
		// Without --delay nothing waits.
		{name: "no delay", args: []string{"-L"}, path: "/f",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startServer(t, tt.args...)
			got, took := timedGet(t, addr, tt.path)
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.wantDelayed && took < delay {
				t.Errorf("answered after %v, want at least %v", took, delay)
			}
			if !tt.wantDelayed && took >= delay/2 {
				t.Errorf("answered after %v, want no delay (under %v)", took, delay/2)
			}
		})
	}
}

func TestServeDelayPipelined(t *testing.T) {
	// Each pipelined request waits out its own delay, one after another; an answer that is
	// ready goes out before the next request's delay instead of waiting in the buffer.
	const delay = 300 * time.Millisecond
	_, addr := startServer(t, "--delay", delay.String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\n\r\nGET /f HTTP/1.1\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	const answer = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
	buf := make([]byte, len(answer))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != answer {
		t.Fatalf("first answer: got %q, %v", buf, err)
	}
	first := time.Since(start)
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != answer {
		t.Fatalf("second answer: got %q, %v", rest, err)
	}
	both := time.Since(start)
	if first < delay || both < 2*delay {
		t.Errorf("answers after %v and %v, want at least %v and %v", first, both, delay, 2*delay)
	}
	if first >= 2*delay {
		t.Errorf("first answer after %v: it waited for the second request's delay (want under %v)", first, 2*delay)
	}
}

// count is, for tests, how many requests are waiting out their delay now.
func (d *delayCount) count() int {
	d.lock()
	defer d.unlock()
	return d.n
}

func TestDrainWaitsForDelayed(t *testing.T) {
	// A request waiting out --delay holds no slot, yet drain must not take every slot from
	// under it (it would then wait forever and never be answered): drain waits for it.
	srv, addr := startServer(t, "-N", "1", "--delay", "300ms")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nConnection: close\r\n\r\n"); err != nil {
			done <- result{err: err}
			return
		}
		out, err := io.ReadAll(c)
		done <- result{string(out), err}
	}()
	// Drain only once the request is waiting out its delay.
	deadline := time.Now().Add(10 * time.Second)
	for srv.delays.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never started its delay")
		}
		time.Sleep(time.Millisecond)
	}
	if !srv.drain(10 * time.Second) {
		t.Fatal("drain gave up")
	}
	// Give the slots back at the end, so that a request left waiting for one (the bug this
	// test is about) ends instead of hanging the clean-up.
	defer func() {
		for range cap(srv.slots) {
			<-srv.slots
		}
	}()
	r := <-done
	if want := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"; r.err != nil || r.out != want {
		t.Fatalf("the delayed request during drain: got %q, %v; want %q", r.out, r.err, want)
	}
}
