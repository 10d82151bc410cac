// Package tests holds the end-to-end tests: they build the real binaries, start them on free
// loopback ports, talk to them over TCP and check the bytes.
//
// The harness in this file is shared by every test file of the package:
//
//	buildBinary(t, "httpserver")           build ./cmd/httpserver once per run, return its path
//	freePort(t)                            a free TCP port on 127.0.0.1
//	startProc(t, bin, port, dir, args...)  start bin in dir, wait until 127.0.0.1:port accepts
//	startHTTPServer(t, dir, args...)       an httpserver on a free port (dir "" = fresh temp dir)
//	rawExchange(t, addr, req)              send raw bytes, read until the server closes
//	readResponse(t, br)                    read one response with its Content-Length body
//	readResponseHead(br)                   read one status line and headers (no body)
//	dial(t, addr)                          a connection with a deadline, closed at clean-up
//	exchange(t, c, br, req)                write a request, read its whole response
//
// Every process started is stopped at the test's clean-up, whatever happens (and killed by the
// kernel if the test binary itself dies). Set E2E_RACE=1 to build the binaries with -race; a
// data race reported by a binary then fails the test that started it.
package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a started process may take to accept connections (a -race
	// build on a busy 2-core machine is slow to start).
	startTimeout = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it kills.
	stopGrace = 5 * time.Second
	// ioTimeout is the deadline of rawExchange and the default for test connections.
	ioTimeout = 30 * time.Second
)

// buildDir holds the binaries built during this run; TestMain creates and removes it.
var buildDir string

// builds maps a command name to its build. The map lives in the channel: whoever takes it
// out owns it until putting it back.
var builds = func() chan map[string]*build {
	c := make(chan map[string]*build, 1)
	c <- map[string]*build{}
	return c
}()

// build is one command's build, done once.
type build struct {
	once sync.Once
	path string // set by once
	err  error  // set by once
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "tests: goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines gives ending goroutines a moment (a process's waiter, a closing
// connection's reader), then returns the stacks of those left, other than this one and the
// runtime's and os/signal's own.
func leakedGoroutines() string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		all := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		var left []string
		for _, g := range all[1:] { // all[0] is this goroutine
			if !strings.Contains(g, "os/signal.signal_recv") && !strings.Contains(g, "runtime.ensureSigM") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// moduleRoot is the directory of go.mod: the tests run in tests/, one level below.
func moduleRoot() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found: %w", err)
	}
	return root, nil
}

// buildBinary builds ./cmd/<name> once per test run (with -race when E2E_RACE=1) into the
// run's build directory and returns the binary's path. A failed build fails every caller.
func buildBinary(t testing.TB, name string) string {
	t.Helper()
	m := <-builds
	b := m[name]
	if b == nil {
		b = &build{}
		m[name] = b
	}
	builds <- m
	b.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(buildDir, name)
		args := []string{"build", "-o", b.path}
		if os.Getenv("E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/"+name)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Proc is a started binary.
type Proc struct {
	// Cmd is the running command. Read Cmd.ProcessState only after Wait has returned.
	Cmd *exec.Cmd
	// Port is the port the process was started on, Addr is "127.0.0.1:Port".
	Port int
	Addr string
	// Dir is the process's working directory.
	Dir string

	t       testing.TB
	outPath string        // stdout and stderr, both appended to this file
	done    chan struct{} // closed when the process has exited and waitErr is set
	waitErr error
}

// startProc starts bin with args (the caller includes the port where the binary needs it) in
// dir, and waits until 127.0.0.1:port accepts a TCP connection. The test fails, with the
// process's output, if it exits first or does not accept within startTimeout. The process is
// stopped at the test's clean-up.
func startProc(t testing.TB, bin string, port int, dir string, args ...string) *Proc {
	t.Helper()
	p, err := launch(t, bin, port, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch is startProc returning its failure instead of failing the test.
func launch(t testing.TB, bin string, port int, dir string, args ...string) (*Proc, error) {
	out, err := os.CreateTemp(t.TempDir(), filepath.Base(bin)+"-*.out")
	if err != nil {
		return nil, err
	}
	defer out.Close()
	p := &Proc{
		Cmd:     exec.Command(bin, args...),
		Port:    port,
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:     dir,
		t:       t,
		outPath: out.Name(),
		done:    make(chan struct{}),
	}
	p.Cmd.Dir = dir
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	if os.Getenv("E2E_RACE") == "1" && os.Getenv("GORACE") == "" {
		// A -race binary otherwise sleeps a second at exit.
		p.Cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	// If the test binary dies without clean-up (a panic, a -timeout), the kernel kills the
	// process too.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.cleanup)

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s %q exited before accepting connections (%v); output:\n%s", filepath.Base(bin), args, p.waitErr, p.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("%s %q did not accept connections on %s within %v; output:\n%s", filepath.Base(bin), args, p.Addr, startTimeout, p.Stderr())
		}
	}
}

// startHTTPServer starts cmd/httpserver on a free port in dir (a fresh temporary directory
// when dir is ""), with args appended after the port. A port taken between freePort and the
// start is retried with another.
func startHTTPServer(t testing.TB, dir string, args ...string) *Proc {
	t.Helper()
	bin := buildBinary(t, "httpserver")
	if dir == "" {
		dir = t.TempDir()
	}
	var err error
	for range 3 {
		port := freePort(t)
		var p *Proc
		if p, err = launch(t, bin, port, dir, append([]string{strconv.Itoa(port)}, args...)...); err == nil {
			return p
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// Stderr returns what the process has written to stdout and stderr so far.
func (p *Proc) Stderr() string {
	b, err := os.ReadFile(p.outPath)
	if err != nil {
		return fmt.Sprintf("(output unreadable: %v)", err)
	}
	return string(b)
}

// Signal sends sig to the process (nothing if it has exited).
func (p *Proc) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(sig)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code. The error is
// non-nil when it has not exited by then, or was ended by a signal (code -1).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s still running after %v", filepath.Base(p.Cmd.Path), timeout)
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return -1, p.waitErr
	}
	if code := p.Cmd.ProcessState.ExitCode(); code >= 0 {
		return code, nil
	}
	return -1, fmt.Errorf("%s: %v", filepath.Base(p.Cmd.Path), p.Cmd.ProcessState)
}

// Kill kills the process and waits for it to be gone.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to stopGrace for the process to exit, then kills it.
func (p *Proc) Stop() {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.Kill()
	}
}

// cleanup stops the process and fails the test if a -race build reported a data race.
func (p *Proc) cleanup() {
	p.Stop()
	if out := p.Stderr(); strings.Contains(out, "WARNING: DATA RACE") {
		p.t.Errorf("%s reported a data race:\n%s", filepath.Base(p.Cmd.Path), out)
	}
}

// dial connects to addr with a deadline of ioTimeout for the whole conversation; the
// connection is closed at the test's clean-up if the test has not closed it.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// rawExchange connects to addr, writes req and returns everything read until the server
// closes the connection. The request must make the server close (Connection: close, a
// --close server, a request that ends the connection); the read has a deadline.
func rawExchange(t testing.TB, addr string, req []byte) []byte {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v (after %q)", addr, err, got)
	}
	return got
}

// readResponseHead reads a status line and headers from br. It returns the status code, the
// head exactly as received (status line to blank line, CRLFs included) and the
// Content-Length (-1 when there is none). The body, if any, is left in br.
func readResponseHead(br *bufio.Reader) (status int, head string, length int64, err error) {
	var sb strings.Builder
	length = -1
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return 0, sb.String(), -1, fmt.Errorf("reading the response head: %w (after %q)", err, sb.String())
		}
		l := strings.TrimRight(line, "\r\n")
		switch {
		case first:
			f := strings.SplitN(l, " ", 3)
			if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
				return 0, sb.String(), -1, fmt.Errorf("bad status line %q", l)
			}
			if status, err = strconv.Atoi(f[1]); err != nil {
				return 0, sb.String(), -1, fmt.Errorf("bad status line %q", l)
			}
		case l == "":
			return status, sb.String(), length, nil
		default:
			name, value, ok := strings.Cut(l, ":")
			if ok && strings.EqualFold(name, "Content-Length") {
				if length, err = strconv.ParseInt(strings.TrimSpace(value), 10, 64); err != nil {
					return 0, sb.String(), -1, fmt.Errorf("bad Content-Length in %q", l)
				}
			}
		}
	}
}

// readResponse reads one response from br: its status, its head as received (see
// readResponseHead) and its body of Content-Length bytes. For the answer to a HEAD request,
// use readResponseHead. It fails the test on any error, so call it from the test goroutine.
func readResponse(t testing.TB, br *bufio.Reader) (status int, head string, body []byte) {
	t.Helper()
	status, head, length, err := readResponseHead(br)
	if err != nil {
		t.Fatal(err)
	}
	if length < 0 {
		t.Fatalf("response without Content-Length: %q", head)
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatalf("reading a %d-byte body after %q: %v", length, head, err)
	}
	return status, head, body
}

// exchange is rawExchange's counterpart for a kept-alive connection: it writes req on c and
// reads one full response (not for HEAD) from br.
func exchange(t testing.TB, c net.Conn, br *bufio.Reader, req string) (status int, raw string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	status, head, body := readResponse(t, br)
	return status, head + string(body)
}

// mustWriteFile writes a file for a test, failing it on error.
func mustWriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// equalOrDiff returns "" when got == want, else a short description of the first difference.
func equalOrDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("differ at byte %d (got %d bytes, want %d): got …%q…, want …%q…",
		i, len(got), len(want), got[lo:min(len(got), i+40)], want[lo:min(len(want), i+40)])
}

// loopbackServer accepts connections on a free loopback port and serves each with serve in a
// goroutine of its own. Close, which also runs at clean-up, closes the listener and every open
// connection, then waits for the handlers, so none outlives the test.
type loopbackServer struct {
	Port string // for the load balancer's command line
	Addr string

	ln   net.Listener
	mu   sync.Mutex
	open map[net.Conn]struct{} // nil once shut
	wg   sync.WaitGroup
	once sync.Once
}

func startLoopbackServer(t testing.TB, serve func(net.Conn)) *loopbackServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &loopbackServer{ln: ln, Addr: ln.Addr().String(), open: map[net.Conn]struct{}{}}
	_, s.Port, _ = net.SplitHostPort(s.Addr)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.open == nil { // shutting
				s.mu.Unlock()
				c.Close()
				return
			}
			s.open[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// shut closes the listener and every open connection: the port refuses connections from now on.
// It does not wait for the handlers.
func (s *loopbackServer) shut() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.open = nil
		s.mu.Unlock()
	})
}

// Close shuts the server and waits for its handlers.
func (s *loopbackServer) Close() {
	s.shut()
	s.wg.Wait()
}
