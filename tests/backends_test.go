package tests

// End-to-end tests of backends in the wild: the kinds of health check (classic, http, tcp,
// none) and their options, rise and fall thresholds, the start-up wait and the warning when no
// backend is up, the balancing policies with weights, slow start and the per-backend cap, and
// the command line's refusal of bad values. Each test runs the real loadbalancer binary on
// loopback in front of httpservers or of in-test backends (bkBackend, bkServe) whose answers
// it controls and whose traffic it observes.
//
// Every helper here starts with bk: other files of the package are written concurrently.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bkProbeUA is the User-Agent of the load balancer's http check; the classic check asks for
// /healthcheck.
const bkProbeUA = "loadbalancer-health"

// bkBackend is an in-test backend. Health probes (GET /healthcheck, or any request with the http
// check's User-Agent) are answered 200 with the classic body "0\n0" while the backend passes
// and 503 while Failing; a gated backend holds each probe until the test gives its verdict
// (awaitProbe, answer). Every other request is a real one: it is counted, waits the backend's
// delay, and is answered 200 with the backend's name as the body. Connections are kept alive.
type bkBackend struct {
	*loopbackServer
	Name string

	// Failing makes the probes fail (ungated backends only).
	Failing atomic.Bool

	served      atomic.Int64 // real requests answered
	probes      atomic.Int64 // health probes answered
	inFlight    atomic.Int64 // real requests being handled now
	maxInFlight atomic.Int64 // the most real requests handled at once

	delay   time.Duration
	gated   bool
	arrived chan struct{} // a gated probe has arrived and waits for its verdict
	verdict chan bool     // the verdict for the probe waiting: true passes

	done chan struct{} // closed at clean-up: delays and gated probes end
}

// bkOpts configures a bkBackend.
type bkOpts struct {
	delay time.Duration // how long each real request waits before its answer
	gated bool          // each probe waits for the test's verdict
}

// bkStartBackend starts a bkBackend called name. At clean-up it closes the listener and every
// connection, ends the waits, and waits for its goroutines.
func bkStartBackend(t *testing.T, name string, o bkOpts) *bkBackend {
	t.Helper()
	b := &bkBackend{
		Name: name, delay: o.delay, gated: o.gated,
		arrived: make(chan struct{}), verdict: make(chan bool), done: make(chan struct{}),
	}
	b.loopbackServer = startLoopbackServer(t, b.serve)
	t.Cleanup(func() { close(b.done) }) // runs before the server's own clean-up
	return b
}

// serve answers the requests of one connection until it closes or a probe has been answered.
func (b *bkBackend) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		if req.URL.Path == "/healthcheck" || req.Header.Get("User-Agent") == bkProbeUA {
			b.probe(c)
			return
		}
		n := b.inFlight.Add(1)
		for m := b.maxInFlight.Load(); n > m && !b.maxInFlight.CompareAndSwap(m, n); m = b.maxInFlight.Load() {
		}
		if b.delay > 0 {
			select {
			case <-time.After(b.delay):
			case <-b.done:
				return
			}
		}
		// Out of flight before the answer leaves: once the load balancer has it, it may send
		// the next request here, and that one must not count as concurrent with this one.
		b.inFlight.Add(-1)
		b.served.Add(1)
		if _, err := io.WriteString(c, bkOK(b.Name)); err != nil || req.Close {
			return
		}
	}
}

// probe answers a health probe: 200 with the classic body when it passes, 503 otherwise.
func (b *bkBackend) probe(c net.Conn) {
	pass := !b.Failing.Load()
	if b.gated {
		select {
		case b.arrived <- struct{}{}:
		case <-b.done:
			return
		}
		select {
		case pass = <-b.verdict:
		case <-b.done:
			return
		}
	}
	b.probes.Add(1)
	if pass {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\n0")
		return
	}
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

// awaitProbe waits for the next probe of a gated backend to arrive.
func (b *bkBackend) awaitProbe(t *testing.T) {
	t.Helper()
	select {
	case <-b.arrived:
	case <-time.After(20 * time.Second):
		t.Fatalf("backend %s: timed out waiting for a health probe", b.Name)
	}
}

// answer gives the arrived probe of a gated backend its verdict.
func (b *bkBackend) answer(t *testing.T, pass bool) {
	t.Helper()
	select {
	case b.verdict <- pass:
	case <-time.After(20 * time.Second):
		t.Fatalf("backend %s: no probe waiting for its verdict", b.Name)
	}
}

// bkOK is a 200 response with body.
func bkOK(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// bkServe starts an in-test backend that answers every request (health probes included) with
// the status and body fn returns, keeping connections alive, and returns its port. A HEAD is
// answered with the body's Content-Length and no body.
func bkServe(t *testing.T, fn func(r *http.Request) (int, string)) string {
	t.Helper()
	return fakeBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			st, body := fn(req)
			resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n", st, http.StatusText(st), len(body))
			if req.Method != http.MethodHead {
				resp += body
			}
			if _, err := io.WriteString(c, resp); err != nil || req.Close {
				return
			}
		}
	})
}

// bkPorts returns the command-line arguments of backends, each followed by its weight suffix
// ("@3", or "" for none).
func bkPorts(bs []*bkBackend, weights ...string) []string {
	var args []string
	for i, b := range bs {
		a := b.Port
		if i < len(weights) {
			a += weights[i]
		}
		args = append(args, a)
	}
	return args
}

// bkClient is a kept-alive client connection to the load balancer; safe for one goroutine.
type bkClient struct {
	c  net.Conn
	br *bufio.Reader
}

func bkDial(addr string) (*bkClient, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &bkClient{c: c, br: bufio.NewReader(c)}, nil
}

func (k *bkClient) Close() { k.c.Close() }

// get sends GET path with the given extra header lines ("Name: value") and returns the status
// and body of the answer.
func (k *bkClient) get(path string, header ...string) (int, string, error) {
	_ = k.c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: lb\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(k.c, req+"\r\n"); err != nil {
		return 0, "", err
	}
	st, head, n, err := readResponseHead(k.br)
	if err != nil {
		return 0, "", err
	}
	if n < 0 {
		return st, "", fmt.Errorf("response without Content-Length: %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(k.br, body); err != nil {
		return st, "", err
	}
	return st, string(body), nil
}

// bkMustDial is bkDial for the test goroutine; the connection is closed at clean-up.
func bkMustDial(t *testing.T, addr string) *bkClient {
	t.Helper()
	k, err := bkDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// bkCount sends n GETs of /r on k and returns how many each backend (by name) answered; every
// answer must be a 200.
func bkCount(t *testing.T, k *bkClient, n int, header ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		st, body, err := k.get("/r", header...)
		if err != nil || st != 200 {
			t.Fatalf("request %d: got %d %q (%v), want 200", i, st, body, err)
		}
		got[body]++
	}
	return got
}

// bkLogLines returns the lines of the load balancer's log that contain what and, when addr is
// not empty, are about backend addr.
func bkLogLines(lb *Proc, what, addr string) []string {
	var out []string
	for _, l := range strings.Split(lb.Stderr(), "\n") {
		if !strings.Contains(l, what) {
			continue
		}
		if addr != "" && !strings.Contains(l+" ", "backend="+addr+" ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// The messages of the routing changes the load balancer logs.
const (
	bkUp    = `msg="backend up"`
	bkDown  = `msg="backend down"`
	bkFirst = `msg="first health round done"`
	bkNone  = "NO BACKEND IS UP"
)

// bkWaitLog waits until the log has at least n lines with what (about addr, if not empty) and
// returns them.
func bkWaitLog(t *testing.T, lb *Proc, what, addr string, n int) []string {
	t.Helper()
	var lines []string
	waitFor(t, fmt.Sprintf("%d log lines with %s %s", n, what, addr), func() bool {
		lines = bkLogLines(lb, what, addr)
		return len(lines) >= n
	})
	return lines
}

var bkReasonRE = regexp.MustCompile(`reason=("(?:[^"\\]|\\.)*"|\S+)`)

// bkReason returns the reason field of a log line, unquoted.
func bkReason(line string) string {
	m := bkReasonRE.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	if s, err := strconv.Unquote(m[1]); err == nil {
		return s
	}
	return m[1]
}

// bkLogTime returns the time field of a log line.
func bkLogTime(t *testing.T, line string) time.Time {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
		t.Fatalf("log line without a time: %q", line)
	}
	tm, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
	if err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return tm
}

// bkTransitions returns the routing changes logged for backend addr, in order: "up" or "down".
func bkTransitions(lb *Proc, addr string) []string {
	var out []string
	for _, l := range bkLogLines(lb, "msg=", addr) {
		switch {
		case strings.Contains(l, bkUp):
			out = append(out, "up")
		case strings.Contains(l, bkDown):
			out = append(out, "down")
		}
	}
	return out
}

// 1. Health check kinds.

func TestBackendsHealthCheckKinds(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("data"))
	counting := startHTTPServer(t, dir, "-L") // answers the classic check
	plain := startHTTPServer(t, dir)          // /healthcheck is 404; files are served
	closed := strconv.Itoa(freePort(t))       // nothing listens

	// web is an ordinary web server: / is 200, /healthcheck 404 and /f the file. With
	// wantHost set, / under any other Host is 421; with headOnly set, / is 405 but for HEAD.
	web := func(wantHost string, headOnly bool) func(t *testing.T) string {
		return func(t *testing.T) string {
			return bkServe(t, func(r *http.Request) (int, string) {
				switch {
				case r.URL.Path == "/f":
					return 200, "data"
				case r.URL.Path != "/":
					return 404, ""
				case wantHost != "" && r.Host != wantHost:
					return 421, ""
				case headOnly && r.Method != http.MethodHead:
					return 405, ""
				}
				return 200, "home"
			})
		}
	}
	// sick fails every kind of HTTP health check (503 on /healthcheck and on /) but serves /f.
	sick := func(t *testing.T) string {
		return bkServe(t, func(r *http.Request) (int, string) {
			if r.URL.Path == "/f" && r.Header.Get("User-Agent") != bkProbeUA {
				return 200, "data"
			}
			return 503, ""
		})
	}
	port := func(p string) func(*testing.T) string { return func(*testing.T) string { return p } }

	tests := []struct {
		name       string
		backend    func(t *testing.T) string
		flags      []string
		wantUp     bool
		wantReason string // in the backend down line, when not up
	}{
		// The default check against the classic server: up, and /f is served.
		{"classic, counting httpserver", port(strconv.Itoa(counting.Port)), nil, true, ""},
		// The default check against a server without the counters: /healthcheck is 404.
		{"classic, plain httpserver", port(strconv.Itoa(plain.Port)), nil, false, "got 404"},
		// The same kind of server that fails the classic check...
		{"classic, web server", web("", false), nil, false, "got 404"},
		// ...passes the http check on its default path /.
		{"http, web server", web("", false), []string{"--health-check", "http"}, true, ""},
		// The http check on a path the plain httpserver serves.
		{"http path, plain httpserver", port(strconv.Itoa(plain.Port)), []string{"--health-check", "http", "--health-path", "/f"}, true, ""},
		// A path that is 404: not in the default 200-399.
		{"http status mismatch", port(strconv.Itoa(plain.Port)), []string{"--health-check", "http", "--health-path", "/missing"}, false, "status 404 not in 200-399"},
		// The same 404 passes when the status list names it.
		{"http status list", port(strconv.Itoa(plain.Port)), []string{"--health-check", "http", "--health-path", "/missing", "--health-status", "200-299,404"}, true, ""},
		// The body lacks the wanted string.
		{"http body mismatch", port(strconv.Itoa(plain.Port)), []string{"--health-check", "http", "--health-path", "/f", "--health-body", "nothere"}, false, `does not contain "nothere"`},
		// The body holds the wanted string.
		{"http body match", port(strconv.Itoa(plain.Port)), []string{"--health-check", "http", "--health-path", "/f", "--health-body", "at"}, true, ""},
		// A server that allows only HEAD on /: the check with HEAD passes...
		{"http HEAD", web("", true), []string{"--health-check", "http", "--health-method", "HEAD"}, true, ""},
		// ...and the default GET does not, so the method really is sent.
		{"http GET where only HEAD works", web("", true), []string{"--health-check", "http"}, false, "status 405"},
		// A virtual host: the check's Host header is the one asked for...
		{"http host", web("app.test", false), []string{"--health-check", "http", "--health-host", "app.test"}, true, ""},
		// ...and by default the backend's address, which this server refuses.
		{"http default host", web("app.test", false), []string{"--health-check", "http"}, false, "status 421"},
		// Connect only: a server failing every HTTP check is up.
		{"tcp, listening", sick, []string{"--health-check", "tcp"}, true, ""},
		// Connect only: nothing listening is down.
		{"tcp, closed port", port(closed), []string{"--health-check", "tcp"}, false, "connection refused"},
		// No active check: a server failing every check still gets requests.
		{"none, failing server", sick, []string{"--health-check", "none"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := tt.backend(t)
			addr := "127.0.0.1:" + backend
			lb := startLB(t, []string{backend}, append([]string{"--health-interval", "100ms", "--health-timeout", "2s"}, tt.flags...)...)
			if tt.wantUp {
				first := bkWaitLog(t, lb, bkFirst, "", 1)[0]
				if !strings.Contains(first, "up=1 backends=1") {
					t.Fatalf("first round: got %q, want up=1 backends=1", first)
				}
				if n := len(bkLogLines(lb, bkUp, addr)); n != 1 {
					t.Fatalf("backend up lines: got %d, want 1; log:\n%s", n, lb.Stderr())
				}
				if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "data" {
					t.Fatalf("GET /f: got %d %q, want 200 \"data\"", st, body)
				}
				if d := bkLogLines(lb, bkDown, addr); len(d) != 0 {
					t.Fatalf("got %q, want no backend down", d)
				}
				return
			}
			bkWaitLog(t, lb, bkNone, "", 1)
			down := bkWaitLog(t, lb, bkDown, addr, 1)
			if r := bkReason(down[0]); !strings.Contains(r, tt.wantReason) {
				t.Fatalf("down reason: got %q, want it to contain %q", r, tt.wantReason)
			}
			if got := rawGet(t, lb.Addr, "f"); got != classic500 {
				t.Fatalf("GET /f with the backend down: got %q, want the classic 500", got)
			}
		})
	}
}

func TestBackendsHealthCheckNoneProbesNothing(t *testing.T) {
	// With --health-check none nothing is probed, however short the interval.
	b := bkStartBackend(t, "a", bkOpts{})
	b.Failing.Store(true)
	lb := startLB(t, []string{b.Port}, "--health-check", "none", "--health-interval", "50ms")
	bkWaitLog(t, lb, bkFirst, "", 1)
	k := bkMustDial(t, lb.Addr)
	if got := bkCount(t, k, 3); got["a"] != 3 {
		t.Fatalf("got %v, want a:3", got)
	}
	// Several intervals: a load balancer that probed would have by now.
	time.Sleep(300 * time.Millisecond)
	if n := b.probes.Load(); n != 0 {
		t.Fatalf("probes: got %d, want 0", n)
	}
}

func TestBackendsPythonHTTPServer(t *testing.T) {
	// The README's quick start: fronting an ordinary web server takes one flag.
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "hello.txt"), []byte("hello from python\n"))
	var srv *Proc
	for range 3 { // a port taken between freePort and the start is retried
		port := freePort(t)
		if srv, err = launch(t, py, port, dir, "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	lb := startLB(t, []string{strconv.Itoa(srv.Port)}, "--health-check", "http")
	first := bkWaitLog(t, lb, bkFirst, "", 1)[0]
	if !strings.Contains(first, "up=1 backends=1") {
		t.Fatalf("first round: got %q, want up=1 backends=1; log:\n%s", first, lb.Stderr())
	}
	if st, body := get(t, lb.Addr, "hello.txt"); st != 200 || string(body) != "hello from python\n" {
		t.Fatalf("GET /hello.txt: got %d %q, want 200 with the file", st, body)
	}
}

func TestBackendsDownHintAdviceWorks(t *testing.T) {
	// The warning when no backend passes the classic check tells the user to front an
	// httpserver without -L (which answers / with 400) with --health-check tcp: following it
	// must bring the backend up.
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("data"))
	plain := startHTTPServer(t, dir)
	classic := startLB(t, ports(plain))
	warn := bkWaitLog(t, classic, bkNone, "", 1)[0]
	if !strings.Contains(warn, "(httpserver without -L) use --health-check tcp") || !strings.Contains(warn, "--health-check http") {
		t.Fatalf("warning: got %q, want the advice for httpserver without -L", warn)
	}
	advised := startLB(t, ports(plain), "--health-check", "tcp")
	waitFor(t, "the first health round", func() bool {
		return len(bkLogLines(advised, bkFirst, ""))+len(bkLogLines(advised, bkNone, "")) > 0
	})
	if d := bkLogLines(advised, bkDown, ""); len(d) > 0 {
		t.Fatalf("with --health-check tcp as advised: got %q, want the backend up", d)
	}
	if st, body := get(t, advised.Addr, "f"); st != 200 || string(body) != "data" {
		t.Fatalf("GET /f: got %d %q, want 200 \"data\"", st, body)
	}
}

// 2. Rise and fall.

func TestBackendsRiseFall(t *testing.T) {
	// A's probes are held until the test gives each its verdict; B always passes. Once the
	// probe after a verdict has arrived, that verdict's round has reached the dispatcher
	// (before any request sent afterwards), so each step checks the routing it caused.
	a := bkStartBackend(t, "a", bkOpts{gated: true})
	b := bkStartBackend(t, "b", bkOpts{})
	lb := startLB(t, bkPorts([]*bkBackend{a, b}), "--policy", "round-robin", "--health-check", "http",
		"--health-interval", "100ms", "--health-timeout", "10s", "--health-rise", "3", "--health-fall", "2")
	k := bkMustDial(t, lb.Addr)
	a.awaitProbe(t)
	steps := []struct {
		pass   bool
		wantUp bool
		why    string
	}{
		{true, true, "the first probe decides at once, although rise is 3"},
		{false, true, "one failure of fall 2"},
		{true, true, "a pass ends the failure run"},
		{false, true, "one failure in a row again, not two in all"},
		{false, false, "the second failure in a row takes it down"},
		{true, false, "one pass of rise 3"},
		{false, false, "a failure ends the pass run"},
		{true, false, "one pass in a row"},
		{true, false, "two passes in a row"},
		{true, true, "the third pass in a row brings it up"},
	}
	var want []string // the transitions logged so far
	up := false
	for i, s := range steps {
		a.answer(t, s.pass)
		a.awaitProbe(t) // the next round: this one has been reported
		// A change is logged, and so is the first probe's verdict.
		if s.wantUp != up || i == 0 {
			up = s.wantUp
			if up {
				want = append(want, "up")
			} else {
				want = append(want, "down")
			}
		}
		got := bkCount(t, k, 4)
		if s.wantUp && got["a"] == 0 {
			t.Fatalf("probe %d (%s): a got none of 4 requests (%v), want it in rotation", i+1, s.why, got)
		}
		if !s.wantUp && got["a"] != 0 {
			t.Fatalf("probe %d (%s): a got %d of 4 requests, want 0 (out of rotation)", i+1, s.why, got["a"])
		}
		if tr := bkTransitions(lb, a.Addr); strings.Join(tr, ",") != strings.Join(want, ",") {
			t.Fatalf("probe %d (%s): logged transitions got %v, want %v", i+1, s.why, tr, want)
		}
	}
	down := bkLogLines(lb, bkDown, a.Addr)
	if r := bkReason(down[0]); !strings.Contains(r, "503") {
		t.Fatalf("down reason: got %q, want the 503", r)
	}
	if tr := bkTransitions(lb, b.Addr); strings.Join(tr, ",") != "up" {
		t.Fatalf("b's transitions: got %v, want [up]", tr)
	}
}

// 3. The start-up wait and the warning when no backend is up.

func TestBackendsNoBackendUpWarning(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("data"))
	p1, p2 := startHTTPServer(t, dir), startHTTPServer(t, dir) // /healthcheck is 404

	t.Run("all down", func(t *testing.T) {
		lb := startLB(t, ports(p1, p2))
		warn := bkWaitLog(t, lb, bkNone, "", 1)[0]
		for _, want := range []string{
			"level=WARN",
			p1.Addr + ": health: status is not 200: got 404", // each backend with its reason
			p2.Addr + ": health: status is not 200: got 404",
			"--health-check http", // the hint for an ordinary web server
		} {
			if !strings.Contains(warn, want) {
				t.Errorf("warning: got %q, want it to contain %q", warn, want)
			}
		}
		if f := bkLogLines(lb, bkFirst, ""); len(f) != 0 {
			t.Errorf("got %q, want no first-round line with none up", f)
		}
		if got := rawGet(t, lb.Addr, "f"); got != classic500 {
			t.Fatalf("GET /f: got %q, want the classic 500", got)
		}
	})
	t.Run("one up", func(t *testing.T) {
		good := startHTTPServer(t, dir, "-L")
		lb := startLB(t, ports(p1, good))
		first := bkWaitLog(t, lb, bkFirst, "", 1)[0]
		if !strings.Contains(first, "up=1 backends=2") || !strings.Contains(first, "level=INFO") {
			t.Fatalf("first round: got %q, want INFO up=1 backends=2", first)
		}
		if w := bkLogLines(lb, bkNone, ""); len(w) != 0 {
			t.Fatalf("got %q, want no warning with one backend up", w)
		}
	})
}

func TestBackendsStartupWait(t *testing.T) {
	// The only backend would answer a real request 200, but its first probe is held: a
	// request sent meanwhile waits for the round instead of going to the unprobed backend.
	for _, tc := range []struct {
		name     string
		pass     bool
		wantResp string
	}{
		// The probe fails: the waiting request gets the classic 500, never the backend's 200.
		{"probe fails", false, classic500},
		// The probe passes: the waiting request is then forwarded.
		{"probe passes", true, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bkStartBackend(t, "a", bkOpts{gated: true})
			lb := startLB(t, []string{b.Port}, "--health-timeout", "10s")
			b.awaitProbe(t)
			c := dial(t, lb.Addr)
			if _, err := io.WriteString(c, "GET /r HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// While the probe is held, nothing comes back and nothing reaches the backend.
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			var one [1]byte
			if n, err := c.Read(one[:]); n != 0 || !isTimeout(err) {
				t.Fatalf("before the first round: got %d bytes %q (%v), want the request to wait", n, one[:n], err)
			}
			if n := b.served.Load(); n != 0 {
				t.Fatalf("before the first round: the backend got %d requests, want 0", n)
			}
			b.answer(t, tc.pass)
			_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading the answer: %v after %q", err, got)
			}
			if string(got) != tc.wantResp {
				t.Fatalf("got %q, want %q", got, tc.wantResp)
			}
			want := int64(0)
			if tc.pass {
				want = 1
			}
			if n := b.served.Load(); n != want {
				t.Fatalf("real requests at the backend: got %d, want %d", n, want)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// 4. Policies.

func TestBackendsRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []string // suffixes of the backend arguments
		n       int      // requests
	}{
		// Equal weights: strict rotation, a third each.
		{"equal", []string{"", "", ""}, 30},
		// Weights 3 and 1: three to one, in every cycle of four.
		{"weighted 3:1", []string{"@3", "@1"}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []*bkBackend
			ws, sum := map[string]int{}, 0
			for i, w := range tc.weights {
				b := bkStartBackend(t, string(rune('a'+i)), bkOpts{})
				bs = append(bs, b)
				ws[b.Name] = 1
				if w != "" {
					ws[b.Name], _ = strconv.Atoi(w[1:])
				}
				sum += ws[b.Name]
			}
			lb := startLB(t, bkPorts(bs, tc.weights...), "--policy", "round-robin")
			bkWaitLog(t, lb, bkFirst, "", 1)
			k := bkMustDial(t, lb.Addr)
			total := map[string]int{}
			for cycle := 0; cycle < tc.n/sum; cycle++ {
				got := bkCount(t, k, sum)
				for name, w := range ws {
					if got[name] != w {
						t.Fatalf("cycle %d of %d requests: got %v, want %v", cycle, sum, got, ws)
					}
					total[name] += got[name]
				}
			}
			for name, w := range ws {
				if want := tc.n * w / sum; total[name] != want {
					t.Fatalf("%s: got %d of %d requests, want %d", name, total[name], tc.n, want)
				}
			}
		})
	}
}

func TestBackendsRandomPolicies(t *testing.T) {
	const n = 400
	for _, tc := range []struct {
		name string
		args []string
		// check judges the counts of a (the heavy one), b and c.
		check func(a, b, c int) string
	}{
		// Random in proportion to weights 3:1:1: a about 60%, b and c about 20% each.
		{"random", []string{"--policy", "random"}, func(a, b, c int) string {
			if a < n*45/100 || a > n*75/100 || b < n*8/100 || b > n*35/100 || c < n*8/100 || c > n*35/100 {
				return "want a within 45-75% and b, c within 8-35%"
			}
			return ""
		}},
		// Two weighted draws, the lighter per weight wins: with nothing in flight a wins
		// whenever drawn (about 5/6), b and c only when drawn together.
		{"p2c", []string{"--policy", "p2c"}, func(a, b, c int) string {
			if b == 0 || c == 0 || a < 2*b || a < 2*c {
				return "want every backend some, and a more than twice b and c"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := []*bkBackend{bkStartBackend(t, "a", bkOpts{}), bkStartBackend(t, "b", bkOpts{}), bkStartBackend(t, "c", bkOpts{})}
			weights := []string{"@3", "@1", "@1"}
			if tc.name == "p2c" {
				weights[0] = "@2"
			}
			lb := startLB(t, bkPorts(bs, weights...), tc.args...)
			bkWaitLog(t, lb, bkFirst, "", 1)
			got := bkCount(t, bkMustDial(t, lb.Addr), n)
			if msg := tc.check(got["a"], got["b"], got["c"]); msg != "" {
				t.Fatalf("weights %v over %d requests: got %v, %s", weights, n, got, msg)
			}
		})
	}
}

func TestBackendsLoadAwarePolicies(t *testing.T) {
	// A slow backend (100ms an answer) next to a fast one, 8 clients at once: the policies
	// that look at the load send the slow one clearly fewer requests. Stall detection and
	// ejection are off so that only the policy keeps requests away from the slow one.
	const clients, each = 8, 15
	for _, policy := range []string{
		"least-request", // fewest in flight: the slow one keeps its requests longer
		"peak-ewma",     // latency times load: the slow one costs far more
	} {
		t.Run(policy, func(t *testing.T) {
			slow := bkStartBackend(t, "slow", bkOpts{delay: 100 * time.Millisecond})
			fast := bkStartBackend(t, "fast", bkOpts{})
			lb := startLB(t, bkPorts([]*bkBackend{slow, fast}), "--policy", policy, "-N", "32",
				"--stall-after", "0", "--no-eject")
			bkWaitLog(t, lb, bkFirst, "", 1)
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := 0; i < clients; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := bkDial(lb.Addr)
					if err != nil {
						errs <- err
						return
					}
					defer k.Close()
					for j := 0; j < each; j++ {
						if st, body, err := k.get("/r"); err != nil || st != 200 {
							errs <- fmt.Errorf("request: got %d %q (%v), want 200", st, body, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			s, f := slow.served.Load(), fast.served.Load()
			if s+f != clients*each {
				t.Fatalf("served: got %d, want %d", s+f, clients*each)
			}
			t.Logf("%s: slow served %d, fast %d", policy, s, f)
			if 4*s >= f {
				t.Fatalf("slow got %d, fast %d: want the slow one under a fifth of the requests", s, f)
			}
		})
	}
}

func TestBackendsHashPolicy(t *testing.T) {
	// Keys stick to their backend; when it goes down only its keys move, and they come back
	// when it returns.
	bs := []*bkBackend{bkStartBackend(t, "a", bkOpts{}), bkStartBackend(t, "b", bkOpts{}), bkStartBackend(t, "c", bkOpts{})}
	lb := startLB(t, bkPorts(bs), "--policy", "hash", "--hash-key", "header:X-User", "--health-check", "http",
		"--health-interval", "100ms", "--health-rise", "1", "--health-fall", "1")
	bkWaitLog(t, lb, bkFirst, "", 1)
	k := bkMustDial(t, lb.Addr)
	const keys = 40
	where := func(what string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for i := 0; i < keys; i++ {
			key := fmt.Sprintf("user-%d", i)
			st, body, err := k.get("/r", "X-User: "+key)
			if err != nil || st != 200 {
				t.Fatalf("%s, key %s: got %d %q (%v), want 200", what, key, st, body, err)
			}
			m[key] = body
		}
		return m
	}
	orig := where("first pass")
	again := where("second pass")
	perBackend := map[string]int{}
	for key, b := range orig {
		if again[key] != b {
			t.Fatalf("key %s: first on %s, then on %s; want the same backend", key, b, again[key])
		}
		perBackend[b]++
	}
	if len(perBackend) != 3 {
		t.Fatalf("%d keys over 3 backends: got %v, want every backend some", keys, perBackend)
	}

	victim := bs[0]
	victim.Failing.Store(true)
	bkWaitLog(t, lb, bkDown, victim.Addr, 1)
	moved := where("victim down")
	for key, b := range orig {
		switch {
		case b == victim.Name && moved[key] == victim.Name:
			t.Fatalf("key %s: still on %s, which is down", key, b)
		case b != victim.Name && moved[key] != b:
			t.Fatalf("key %s: moved from %s to %s while only %s went down; want it to stay", key, b, moved[key], victim.Name)
		}
	}

	victim.Failing.Store(false)
	bkWaitLog(t, lb, bkUp, victim.Addr, 2)
	back := where("victim back")
	for key, b := range orig {
		if back[key] != b {
			t.Fatalf("key %s: on %s after %s came back, want %s as at first", key, back[key], victim.Name, b)
		}
	}
}

func TestBackendsSlowStart(t *testing.T) {
	a, b := bkStartBackend(t, "a", bkOpts{}), bkStartBackend(t, "b", bkOpts{})
	lb := startLB(t, bkPorts([]*bkBackend{a, b}), "--policy", "round-robin", "--slow-start", "3s",
		"--health-check", "http", "--health-interval", "100ms")
	bkWaitLog(t, lb, bkFirst, "", 1)
	k := bkMustDial(t, lb.Addr)
	// Up at start-up: full weight at once.
	if got := bkCount(t, k, 20); got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("at start-up: got %v, want 10 each", got)
	}
	// A goes down and comes back; right after its return it gets far less than half. The
	// share depends on how long after the return the requests come, so a measurement that
	// ended more than half a second after it (a slow machine) is not judged: the cycle is
	// repeated instead.
	const window = 500 * time.Millisecond
	judged := false
	for cycle := 1; cycle <= 3 && !judged; cycle++ {
		a.Failing.Store(true)
		bkWaitLog(t, lb, bkDown, a.Addr, cycle)
		a.Failing.Store(false)
		ups := bkWaitLog(t, lb, bkUp, a.Addr, cycle+1)
		got := bkCount(t, k, 20)
		if since := time.Since(bkLogTime(t, ups[len(ups)-1])); since > window {
			t.Logf("cycle %d: requests ended %v after the return, not judged", cycle, since)
			continue
		}
		judged = true
		if got["a"]*4 >= 20 {
			t.Fatalf("just back: got %v, want a under a quarter of the 20 requests", got)
		}
	}
	if !judged {
		t.Skip("the machine was too slow to measure the first moments after a return")
	}
	// After the slow-start window: its full share again.
	waitFor(t, "a to get its full share", func() bool {
		got := bkCount(t, k, 20)
		return got["a"] >= 9
	})
}

func TestBackendsMaxPerBackend(t *testing.T) {
	// Two backends that each hold a request 500ms, four requests at once, at most one in
	// flight per backend: all are served, two at a time. Stall detection is off: it would
	// take a backend whose first answer takes 500ms for stalled and send its request
	// elsewhere too.
	a := bkStartBackend(t, "a", bkOpts{delay: 500 * time.Millisecond})
	b := bkStartBackend(t, "b", bkOpts{delay: 500 * time.Millisecond})
	lb := startLB(t, bkPorts([]*bkBackend{a, b}), "--max-per-backend", "1", "-N", "8", "--stall-after", "0")
	bkWaitLog(t, lb, bkFirst, "", 1)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, err := pxTryGet(lb.Addr, "/r")
			if err != nil || st != 200 {
				errs <- fmt.Errorf("got %d %q (%v), want 200", st, body, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, be := range []*bkBackend{a, b} {
		if m := be.maxInFlight.Load(); m != 1 {
			t.Errorf("backend %s: got %d requests at once at most, want 1", be.Name, m)
		}
	}
	if n := a.served.Load() + b.served.Load(); n != 4 {
		t.Errorf("served: got %d, want 4; log:\n%s", n, lb.Stderr())
	}
}

// 5. Bad input.

func TestBackendsBadCommandLine(t *testing.T) {
	bin := buildBinary(t, "loadbalancer")
	tests := []struct {
		name string
		args []string // after --bind 127.0.0.1 PORT
		want string   // in stderr: the offending flag or argument
	}{
		// A policy that does not exist.
		{"unknown policy", []string{"9001", "--policy", "fastest"}, "--policy"},
		// A weight that is not a number.
		{"weight not a number", []string{"9001@x"}, `"9001@x"`},
		// Weight 0: weights start at 1.
		{"weight zero", []string{"9001@0"}, `"9001@0"`},
		// Weights end at 1000.
		{"weight above 1000", []string{"9001@1001"}, `"9001@1001"`},
		// Thresholds of 0 would never (or always) change a verdict.
		{"rise 0", []string{"9001", "--health-rise", "0"}, "--health-rise"},
		{"fall 0", []string{"9001", "--health-fall", "0"}, "--health-fall"},
		{"eject-5xx 0", []string{"9001", "--eject-5xx", "0"}, "--eject-5xx"},
		// A path must be absolute.
		{"health path without slash", []string{"9001", "--health-check", "http", "--health-path", "x"}, "--health-path"},
		// The same with the default check, where the flag is given but unused.
		{"health path without slash, classic", []string{"9001", "--health-path", "x"}, "--health-path"},
		// A check kind that does not exist.
		{"unknown health check", []string{"9001", "--health-check", "grpc"}, "--health-check"},
		// Status codes end at 599.
		{"status 600", []string{"9001", "--health-check", "http", "--health-status", "600"}, "--health-status"},
		// A range must go up.
		{"status range reversed", []string{"9001", "--health-check", "http", "--health-status", "300-200"}, "--health-status"},
		// Not a status at all.
		{"status not a number", []string{"9001", "--health-check", "http", "--health-status", "abc"}, "--health-status"},
		// A bad status list is bad whatever the check, as a bad path, method or hash key is.
		{"status not a number, classic", []string{"9001", "--health-status", "abc"}, "--health-status"},
		// Only GET and HEAD.
		{"health method POST", []string{"9001", "--health-check", "http", "--health-method", "POST"}, "--health-method"},
		// A hash key source that does not exist.
		{"unknown hash key", []string{"9001", "--policy", "hash", "--hash-key", "ip"}, "--hash-key"},
		// A header key needs a name.
		{"hash key header without name", []string{"9001", "--policy", "hash", "--hash-key", "header:"}, "--hash-key"},
		// The load bound factor is at least 1.
		{"hash balance below 1", []string{"9001", "--policy", "hash", "--hash-balance", "0.5"}, "--hash-balance"},
		// Negative values of durations and caps.
		{"slow start negative", []string{"9001", "--slow-start", "-1s"}, "--slow-start"},
		{"max per backend negative", []string{"9001", "--max-per-backend", "-1"}, "--max-per-backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			args := append([]string{"--bind", "127.0.0.1", strconv.Itoa(freePort(t))}, tt.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%q: got %v, want exit status 2; stderr:\n%s", tt.args, err, stderr.String())
			}
			var named bool
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.Contains(l, tt.want) {
					named = true
				}
			}
			if !named || !strings.Contains(stderr.String(), "usage: loadbalancer") {
				t.Fatalf("%q: stderr got %q, want a line naming %s and the usage line", tt.args, stderr.String(), tt.want)
			}
		})
	}
}
