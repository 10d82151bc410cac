package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const classic500 = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"

// startLB starts the load balancer on a free loopback port in front of backends (ports or
// host:port) with extra flags, and waits until it accepts connections.
func startLB(t *testing.T, backends []string, flags ...string) *Proc {
	t.Helper()
	return startLBBinary(t, buildBinary(t, "loadbalancer"), backends, flags...)
}

func startLBBinary(t *testing.T, bin string, backends []string, flags ...string) *Proc {
	t.Helper()
	port := freePort(t)
	args := append([]string{"--bind", "127.0.0.1", strconv.Itoa(port)}, backends...)
	args = append(args, flags...)
	return startProc(t, bin, port, t.TempDir(), args...)
}

// ports returns the backend arguments for some httpservers.
func ports(ps ...*Proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, strconv.Itoa(p.Port))
	}
	return out
}

// waitBackendsUp waits until the load balancer has logged n "backend up" transitions, i.e. the
// start-up health round has been taken into account.
func waitBackendsUp(t *testing.T, lb *Proc, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d backends up", n), func() bool {
		return strings.Count(lb.Stderr(), "backend up") >= n
	})
}

// waitFor polls cond with a generous deadline (never a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends one raw request on a fresh connection and returns the whole answer (the load
// balancer keeps the connection alive, so it reads exactly one response).
func do(t *testing.T, addr, req string) (int, string, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, bufio.NewReader(c))
}

func get(t *testing.T, addr, name string) (int, []byte) {
	t.Helper()
	st, _, body := do(t, addr, "GET /"+name+" HTTP/1.1\r\nHost: lb\r\n\r\n")
	return st, body
}

func put(t *testing.T, addr, name string, body []byte) int {
	t.Helper()
	st, _, _ := do(t, addr, fmt.Sprintf("PUT /%s HTTP/1.1\r\nHost: lb\r\nContent-Length: %d\r\n\r\n%s", name, len(body), body))
	return st
}

// rawGet returns the exact bytes of one response to a GET on a fresh connection that asks to
// close after it.
func rawGet(t *testing.T, addr, name string) string {
	t.Helper()
	return string(rawExchange(t, addr, []byte("GET /"+name+" HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")))
}

// entriesByLog counts the requests for /name in each backend's log file.
func countInLog(t *testing.T, path, name string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(regexp.MustCompile(`(?m)^GET /`+name+` `).FindAll(b, -1))
}

func TestLoadBalancerPassesResponsesThroughUnchanged(t *testing.T) {
	dir := t.TempDir()
	b1, b2 := startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")
	lb := startLB(t, ports(b1, b2))
	waitBackendsUp(t, lb, 2)

	if st := put(t, lb.Addr, "small", []byte("hello, world\n")); st != 201 {
		t.Fatalf("PUT through the load balancer: got %d, want 201", st)
	}
	// Each answer through the load balancer is byte for byte what the backend answers.
	for _, req := range []string{
		"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"HEAD /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /bad.name HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"PUT /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
	} {
		direct := string(rawExchange(t, b1.Addr, []byte(req)))
		via := string(rawExchange(t, lb.Addr, []byte(req)))
		if via != direct {
			t.Errorf("%q: through the load balancer got %q, directly %q", req, via, direct)
		}
	}
}

func TestLoadBalancerLargeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("large transfer")
	}
	dir := t.TempDir()
	b1, b2 := startHTTPServer(t, dir), startHTTPServer(t, dir, "-L")
	lb := startLB(t, ports(b1, b2), "-N", "2")
	const size = 100 << 20
	pattern := func() io.Reader { return io.LimitReader(&counterReader{}, size) }

	c, err := net.Dial("tcp", lb.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "PUT /large HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	h := sha256.New()
	if _, err := io.Copy(c, io.TeeReader(pattern(), h)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if st, _, _ := readResponse(t, br); st != 201 {
		t.Fatalf("large PUT: got %d, want 201", st)
	}
	want := h.Sum(nil)
	// GET it back on the same connection, checksum as it streams.
	fmt.Fprintf(c, "GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
	head, err := readHeadOnly(br)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "Content-Length: "+strconv.Itoa(size)) {
		t.Fatalf("large GET head: got %q, %v", head, err)
	}
	h2 := sha256.New()
	if _, err := io.CopyN(h2, br, size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h2.Sum(nil), want) {
		t.Fatalf("large GET: checksum differs from what was PUT")
	}
	// HEAD of the large file.
	fmt.Fprintf(c, "HEAD /large HTTP/1.1\r\nHost: x\r\n\r\n")
	head, err = readHeadOnly(br)
	if err != nil || !strings.Contains(head, "Content-Length: "+strconv.Itoa(size)) {
		t.Fatalf("large HEAD: got %q, %v", head, err)
	}
}

// counterReader produces a deterministic, non-repeating-looking byte stream.
type counterReader struct{ n uint64 }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		r.n++
		p[i] = byte(r.n*2654435761>>13) ^ byte(r.n>>16)
	}
	return len(p), nil
}

func readHeadOnly(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

func TestLoadBalancerLeastLoaded(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := []string{filepath.Join(t.TempDir(), "a.log"), filepath.Join(t.TempDir(), "b.log"),
		filepath.Join(t.TempDir(), "c.log"), filepath.Join(t.TempDir(), "d.log")}
	// Staged loads: A is busiest; B and C tie on entries and C has an error; D ties with B
	// exactly and comes later in the list.
	a := startHTTPServer(t, dir, "-l", logs[0], "-t", "20")
	b := startHTTPServer(t, dir, "-l", logs[1], "-t", "4")
	c := startHTTPServer(t, dir, "-l", logs[2], "-t", "4", "-e", "1")
	d := startHTTPServer(t, dir, "-l", logs[3], "-t", "4")
	lb := startLB(t, ports(a, b, c, d), "-R", "100000", "--health-interval", "1h")
	waitBackendsUp(t, lb, 4)

	// Start-up round saw A 20/0, B 4/0, C 4/1, D 4/0. Sequential picks, +1 each:
	// B (4/0 beats D 4/0 by order), D, B, D ... until B and D reach 5 and C (4/1) is lowest.
	var got []string
	names := map[int]string{0: "A", 1: "B", 2: "C", 3: "D"}
	for i := 0; i < 5; i++ {
		if st, _ := get(t, lb.Addr, "f"); st != 200 {
			t.Fatalf("request %d: got %d, want 200", i, st)
		}
		for j, l := range logs {
			if countInLog(t, l, "f") > strings.Count(strings.Join(got, ""), names[j]) {
				got = append(got, names[j])
				break
			}
		}
	}
	if strings.Join(got, "") != "BDCBD" {
		t.Fatalf("pick order: got %s, want BDCBD", strings.Join(got, ""))
	}
}

func TestLoadBalancerLoadShiftedByDirectRequests(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	la, lbLog := filepath.Join(t.TempDir(), "a.log"), filepath.Join(t.TempDir(), "b.log")
	a := startHTTPServer(t, dir, "-l", la)
	b := startHTTPServer(t, dir, "-l", lbLog)
	lb := startLB(t, ports(a, b), "-R", "100000", "--health-interval", "200ms")
	waitBackendsUp(t, lb, 2)
	// Twenty requests straight to A make it the loaded one at the next round.
	for i := 0; i < 20; i++ {
		get(t, a.Addr, "f")
	}
	checks := countInLog(t, la, "healthcheck")
	waitFor(t, "two more health rounds", func() bool { return countInLog(t, la, "healthcheck") >= checks+2 })
	before := countInLog(t, la, "f")
	for i := 0; i < 5; i++ {
		if st, _ := get(t, lb.Addr, "f"); st != 200 {
			t.Fatalf("got %d, want 200", st)
		}
	}
	if n := countInLog(t, la, "f") - before; n != 0 {
		t.Fatalf("loaded backend A got %d of 5 requests, want 0", n)
	}
	if n := countInLog(t, lbLog, "f"); n != 5 {
		t.Fatalf("backend B got %d of 5 requests, want 5", n)
	}
}

func TestLoadBalancerBackendsKilledAndBack(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	bs := []*Proc{startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")}
	lb := startLB(t, ports(bs...), "--health-interval", "300ms")
	waitBackendsUp(t, lb, 3)
	mustServe := func(what string) {
		t.Helper()
		for i := 0; i < 6; i++ {
			if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "data" {
				t.Fatalf("%s, request %d: got %d %q, want 200 \"data\"", what, i, st, body)
			}
		}
	}
	mustServe("all up")
	bs[0].Kill()
	mustServe("one killed") // refused connects move on to the next backend
	bs[1].Kill()
	mustServe("two killed")
	bs[2].Kill()
	for i := 0; i < 3; i++ {
		if got := rawGet(t, lb.Addr, "f"); got != classic500 {
			t.Fatalf("all killed: got %q, want the classic 500", got)
		}
	}
	// A backend comes back on its old port: served again after a health round.
	back := startProc(t, buildBinary(t, "httpserver"), bs[1].Port, dir, strconv.Itoa(bs[1].Port), "-L")
	_ = back
	waitFor(t, "the revived backend to serve", func() bool { st, _ := get(t, lb.Addr, "f"); return st == 200 })
	mustServe("one back")
}

func TestLoadBalancerAllDownAtStart(t *testing.T) {
	port := freePort(t)
	lb := startLB(t, []string{strconv.Itoa(port)}, "--health-interval", "200ms")
	for i := 0; i < 3; i++ {
		if got := rawGet(t, lb.Addr, "f"); got != classic500 {
			t.Fatalf("no backend: got %q, want the classic 500", got)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("up"), 0o644)
	startProc(t, buildBinary(t, "httpserver"), port, dir, strconv.Itoa(port), "-L")
	waitFor(t, "the backend to come up", func() bool { st, _ := get(t, lb.Addr, "f"); return st == 200 })
}

// fakeBackend is an in-test server that handles each connection with fn. At clean-up it closes
// the listener and every connection, then waits for the handlers.
func fakeBackend(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); fn(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// silent accepts and never answers: it reads until the connection closes.
func silent(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// rawAnswer answers every connection with the given bytes and closes.
func rawAnswer(s string) func(net.Conn) {
	return func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, s)
	}
}

func TestLoadBalancerBrokenBackendsAreDown(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("good"), 0o644)
	good := startHTTPServer(t, dir, "-L")
	noLog := startHTTPServer(t, dir) // logging off: /healthcheck is 404
	tests := []struct {
		name    string
		backend string
	}{
		// Accepts and never answers: the health check's deadline passes.
		{"silent", fakeBackend(t, silent)},
		// Raw counters without HTTP framing.
		{"raw bytes", fakeBackend(t, rawAnswer("0\n0"))},
		// A 200 whose body is not two integers.
		{"bad body", fakeBackend(t, rawAnswer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\nb"))},
		// Health check answered 404.
		{"404", strconv.Itoa(noLog.Port)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Listed first with no load, so it would win every pick if it were up.
			lb := startLB(t, []string{tt.backend, strconv.Itoa(good.Port)}, "--health-timeout", "500ms", "--response-timeout", "1s")
			waitFor(t, "the start-up round", func() bool { return strings.Contains(lb.Stderr(), "backend down") })
			for i := 0; i < 4; i++ {
				if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "good" {
					t.Fatalf("request %d: got %d %q, want 200 from the good backend", i, st, body)
				}
			}
			// Alone, it gets the classic 500.
			alone := startLB(t, []string{tt.backend}, "--health-timeout", "500ms", "--response-timeout", "1s")
			waitFor(t, "the start-up round", func() bool { return strings.Contains(alone.Stderr(), "backend down") })
			if got := rawGet(t, alone.Addr, "f"); got != classic500 {
				t.Fatalf("alone: got %q, want the classic 500", got)
			}
		})
	}
}

func TestLoadBalancerSilentBackendAfterHealthyCheck(t *testing.T) {
	// Answers health checks, then goes silent on real requests: the response timeout gives
	// the client the 500, and the load balancer keeps serving.
	port := fakeBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if strings.Contains(line, "/healthcheck") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n0\n0")
			return
		}
		silent(c)
	})
	lb := startLB(t, []string{port}, "--response-timeout", "300ms", "--health-interval", "1h")
	waitBackendsUp(t, lb, 1)
	if got := rawGet(t, lb.Addr, "f"); got != classic500 {
		t.Fatalf("silent backend: got %q, want the classic 500", got)
	}
	// Out of rotation now: the next request fails at once with the same answer.
	if got := rawGet(t, lb.Addr, "f"); got != classic500 {
		t.Fatalf("after the timeout: got %q, want the classic 500", got)
	}
}

func TestLoadBalancerParallelClients(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    string
		args []string
	}{
		// N below the backends' capacity: requests queue at the load balancer.
		{"N below capacity", "2", nil},
		// N above it: requests queue at the backends.
		{"N above capacity", "16", nil},
		// Classic backends that close after every response.
		{"close backends", "8", []string{"--close"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var bs []*Proc
			for i := 0; i < 3; i++ {
				bs = append(bs, startHTTPServer(t, dir, append([]string{"-L", "-N", "2"}, tc.args...)...))
			}
			lb := startLB(t, ports(bs...), "-N", tc.n)
			waitBackendsUp(t, lb, 3)
			var wg sync.WaitGroup
			errs := make(chan error, 30)
			for i := 0; i < 30; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					errs <- client(lb.Addr, i)
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if st, _ := get(t, lb.Addr, "c0"); st != 200 {
				t.Fatalf("after the load: got %d, want 200", st)
			}
		})
	}
}

// client PUTs its own file, then GETs and HEADs it several times over a keep-alive connection.
func client(addr string, i int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	name := fmt.Sprintf("c%d", i)
	return putGetHead(&http.Client{Transport: tr, Timeout: 60 * time.Second}, addr, name, bytes.Repeat([]byte(name), 1000+i*37), 5)
}

// putGetHead PUTs body as /name, then GETs it (checking every byte) and HEADs it (checking the
// length), gets times each.
func putGetHead(hc *http.Client, addr, name string, body []byte, gets int) error {
	req, _ := http.NewRequest("PUT", "http://"+addr+"/"+name, bytes.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s PUT: %v", name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return fmt.Errorf("%s PUT: got %d, want 201", name, resp.StatusCode)
	}
	for j := 0; j < gets; j++ {
		resp, err := hc.Get("http://" + addr + "/" + name)
		if err != nil {
			return fmt.Errorf("%s GET %d: %v", name, j, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			return fmt.Errorf("%s GET %d: got %d, %d bytes (%v), want 200 with %d bytes", name, j, resp.StatusCode, len(got), err, len(body))
		}
		resp, err = hc.Head("http://" + addr + "/" + name)
		if err != nil {
			return fmt.Errorf("%s HEAD: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
			return fmt.Errorf("%s HEAD: got %d length %d, want 200 length %d", name, resp.StatusCode, resp.ContentLength, len(body))
		}
	}
	return nil
}

func TestLoadBalancerCommandLine(t *testing.T) {
	bin := buildBinary(t, "loadbalancer")
	for _, args := range [][]string{
		{},                          // nothing
		{"8080"},                    // no backend
		{"8080", "-N", "0", "1234"}, // N not positive
		{"8080", "-R", "x", "1234"}, // R not a number
		{"80a", "1234"},             // port not a number
		{"8080", "--bogus", "1234"}, // unknown flag
		{"8080", "1234", "-N"},      // -N without a value
	} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%q: got %v, want exit status 2", args, err)
		}
		if !strings.Contains(stderr.String(), "usage: loadbalancer") {
			t.Errorf("%q: stderr %q has no usage line", args, stderr.String())
		}
	}
	// The help and the version go to stdout, with status 0. A binary not built by make (as
	// here) names the Go version it was built with.
	for _, tt := range []struct {
		arg, want string
	}{{"-h", "usage: loadbalancer"}, {"--help", "--pprof-addr"}, {"--version", ", " + runtime.Version() + "\n"}} {
		cmd := exec.Command(bin, tt.arg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || !strings.HasPrefix(string(out), "loadbalancer ") && !strings.HasPrefix(string(out), "usage: loadbalancer") ||
			!strings.Contains(string(out), tt.want) || stderr.Len() != 0 {
			t.Errorf("%s: got %v, stdout %q, stderr %q; want exit 0 and stdout with %q", tt.arg, err, out, stderr.String(), tt.want)
		}
	}
	// Flags anywhere, a duplicate backend: valid.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("ok"), 0o644)
	b1, b2 := startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")
	port := freePort(t)
	lb := startProc(t, bin, port, t.TempDir(), "--bind", "127.0.0.1", strconv.Itoa(port), "-N", "8",
		strconv.Itoa(b1.Port), "-R", "7", "127.0.0.1:"+strconv.Itoa(b2.Port), strconv.Itoa(b1.Port))
	if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q, want 200 ok", st, body)
	}
	// SIGTERM: a clean exit.
	lb.Signal(os.Interrupt)
	if code, err := lb.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGINT: exit %d, %v; want 0", code, err)
	}
}

func TestLoadBalancerForwarderCrash(t *testing.T) {
	// A binary built with -tags crashtest crashes a Forwarder on request; the supervisor
	// restarts it and the process keeps serving everyone else.
	bin := filepath.Join(t.TempDir(), "loadbalancer-crashtest")
	build := exec.Command("go", "build", "-tags", "crashtest", "-o", bin, "./cmd/loadbalancer")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("ok"), 0o644)
	b := startHTTPServer(t, dir, "-L")
	lb := startLBBinary(t, bin, ports(b), "-N", "1")
	for _, where := range []string{"before-pick", "after-pick", "receive"} {
		got := string(rawExchange(t, lb.Addr, []byte("GET /f HTTP/1.1\r\nHost: x\r\nX-Crash-Test: "+where+"\r\n\r\n")))
		if got != classic500 {
			t.Fatalf("crash %s: got %q, want the classic 500", where, got)
		}
		// With N=1 the next request is served only if the crashed one gave its slot back.
		if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "ok" {
			t.Fatalf("after crash %s: got %d %q, want 200 ok", where, st, body)
		}
	}
	if lb.Cmd.ProcessState != nil {
		t.Fatalf("the load balancer exited")
	}
}
