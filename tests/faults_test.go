package tests

// End-to-end tests of fault handling: passive outlier ejection (5xx answers, refused connects,
// the cap on the ejected share), a backend frozen with SIGSTOP under load, a backend killed
// with SIGKILL under load, and non-idempotent requests on a backend that stops answering. The
// real loadbalancer runs on loopback in front of real httpservers, and of in-test backends
// (ftBackend) where a test needs to control what a backend answers or see what it received.
//
// Timing goals are never assertions here: waits poll with generous deadlines. The latency
// bounds asserted under faults are far from the expected values (the design goal is a few
// hundred milliseconds; the assertions only catch a request left to wait for the 10 s
// response timeout); the measured figures are logged with t.Logf.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ftBackend is an in-test backend. It answers GET /healthcheck itself, on any connection and
// at any time, with 200 and the classic counters (0 errors, healthEntries entries), so it
// passes both the classic and the http check (--health-path /healthcheck). Every other
// request is recorded (its X-Ft-Id header, else "METHOD /path") and answered with what serve
// returns; "" means never answer (the connection is held until the load balancer or the
// clean-up closes it). Connections are kept alive.
type ftBackend struct {
	*loopbackServer

	serve         func(req *http.Request, body []byte) string
	healthEntries int

	mu   sync.Mutex // guards seen and n
	seen map[string]int
	n    int // requests recorded
}

func ftStartBackend(t *testing.T, healthEntries int, serve func(req *http.Request, body []byte) string) *ftBackend {
	t.Helper()
	b := &ftBackend{serve: serve, healthEntries: healthEntries, seen: map[string]int{}}
	b.loopbackServer = startLoopbackServer(t, b.handle)
	return b
}

// handle serves the requests of one connection.
func (b *ftBackend) handle(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		var answer string
		if req.Method == "GET" && req.URL.Path == "/healthcheck" {
			h := fmt.Sprintf("0\n%d", b.healthEntries)
			answer = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(h), h)
		} else {
			key := req.Header.Get("X-Ft-Id")
			if key == "" {
				key = req.Method + " " + req.URL.Path
			}
			b.mu.Lock()
			b.seen[key]++
			b.n++
			b.mu.Unlock()
			if answer = b.serve(req, body); answer == "" {
				_, _ = io.Copy(io.Discard, br) // frozen: hold the connection until it closes
				return
			}
		}
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
	}
}

// stop closes the listener and every connection: the port refuses connections from now on.
func (b *ftBackend) stop() { b.shut() }

// count is how many requests other than health checks the backend has received.
func (b *ftBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// times is how many times the backend received the request recorded as key.
func (b *ftBackend) times(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[key]
}

// keys returns a copy of what the backend recorded.
func (b *ftBackend) keys() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]int, len(b.seen))
	for k, v := range b.seen {
		m[k] = v
	}
	return m
}

// ftAnswer is a response with a Content-Length body.
func ftAnswer(status, body string) string {
	return fmt.Sprintf("HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
}

// ftLogLines returns the load balancer's log lines with message msg about backend addr
// (every backend when addr is ""), in order.
func ftLogLines(lb *Proc, msg, addr string) []string {
	var out []string
	for _, l := range strings.Split(lb.Stderr(), "\n") {
		if !strings.Contains(l, `msg="`+msg+`"`) {
			continue
		}
		if addr == "" || strings.Contains(l+" ", " backend="+addr+" ") {
			out = append(out, l)
		}
	}
	return out
}

// ftResult is one request of a load loop.
type ftResult struct {
	start  time.Time
	lat    time.Duration
	status int
	head   string
	body   string
	err    error
}

// ftRoundTrip writes req on c and reads one Content-Length framed response.
func ftRoundTrip(c net.Conn, br *bufio.Reader, req string) (int, string, string, error) {
	if _, err := io.WriteString(c, req); err != nil {
		return 0, "", "", err
	}
	st, head, n, err := readResponseHead(br)
	if err != nil {
		return 0, head, "", err
	}
	if n < 0 {
		return st, head, "", fmt.Errorf("response without Content-Length: %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return st, head, string(body), err
	}
	return st, head, string(body), nil
}

// ftLoop sends the requests req(0), req(1), ... one after the other on a kept-alive
// connection to addr (a fresh one after an error or a status other than 200), with a short
// pause between them, until the time until; it records each. Safe for any goroutine.
func ftLoop(addr string, until time.Time, req func(i int) string) []ftResult {
	var out []ftResult
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; time.Now().Before(until); i++ {
		r := ftResult{start: time.Now()}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				c = nil
				r.err, r.lat = err, time.Since(r.start)
				out = append(out, r)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			br = bufio.NewReader(c)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		r.status, r.head, r.body, r.err = ftRoundTrip(c, br, req(i))
		r.lat = time.Since(r.start)
		out = append(out, r)
		if r.err != nil || r.status != 200 {
			c.Close()
			c = nil
		}
		time.Sleep(2 * time.Millisecond) // keeps the load modest on a small machine
	}
	return out
}

// ftLatencies returns the 99th percentile and the maximum latency of the results started in
// [from, to), and how many there were.
func ftLatencies(rs []ftResult, from, to time.Time) (p99, most time.Duration, n int) {
	var lats []time.Duration
	for _, r := range rs {
		if !r.start.Before(from) && r.start.Before(to) {
			lats = append(lats, r.lat)
		}
	}
	if len(lats) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lats)
	i := (len(lats)*99+99)/100 - 1
	return lats[i], lats[len(lats)-1], len(lats)
}

// ftHTTPServers starts n httpservers in dir, each with its own request log; it returns them
// and their logs' paths.
func ftHTTPServers(t *testing.T, dir string, n int, args ...string) ([]*Proc, []string) {
	t.Helper()
	var ps []*Proc
	var logs []string
	for i := 0; i < n; i++ {
		l := filepath.Join(t.TempDir(), fmt.Sprintf("backend%d.log", i))
		ps = append(ps, startHTTPServer(t, dir, append([]string{"-l", l}, args...)...))
		logs = append(logs, l)
	}
	return ps, logs
}

// ftFileDir returns a fresh directory with the files name → content.
func ftFileDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		mustWriteFile(t, filepath.Join(dir, name), []byte(content))
	}
	return dir
}

// 1. Passive outlier ejection.

func TestFaultsEjection(t *testing.T) {
	// The http check on /healthcheck passes on httpserver and on ftBackend alike; no periodic
	// or request-count rounds, so only real requests decide.
	httpCheck := []string{"--health-check", "http", "--health-path", "/healthcheck",
		"--health-interval", "1h", "-R", "1000000", "--policy", "round-robin"}

	t.Run("5xx ejects for eject-time then returns", func(t *testing.T) {
		dir := ftFileDir(t, map[string]string{"f": "good"})
		goodLog := filepath.Join(t.TempDir(), "good.log")
		good := startHTTPServer(t, dir, "-l", goodLog)
		bad := ftStartBackend(t, 0, func(*http.Request, []byte) string {
			return ftAnswer("500 Internal Server Error", "bad")
		})
		lb := startLB(t, []string{bad.Port, strconv.Itoa(good.Port)},
			append(httpCheck, "--eject-5xx", "3", "--eject-time", "1s")...)
		waitBackendsUp(t, lb, 2)

		// Until the bad backend has answered three requests (round robin: every other one).
		for i := 0; bad.count() < 3; i++ {
			if i == 20 {
				t.Fatalf("after 20 requests the 500 backend got %d, want 3", bad.count())
			}
			st, body := get(t, lb.Addr, "f")
			if !(st == 200 && string(body) == "good") && !(st == 500 && string(body) == "bad") {
				t.Fatalf("request %d: got %d %q, want 200 \"good\" or the backend's 500 \"bad\"", i, st, body)
			}
		}
		waitFor(t, "the 500 backend ejected", func() bool { return len(ftLogLines(lb, "backend ejected", bad.Addr)) > 0 })
		ej := ftLogLines(lb, "backend ejected", bad.Addr)[0]
		if !strings.Contains(ej, `reason="3 5xx answers in a row"`) || !strings.Contains(ej, "for=1s") {
			t.Errorf("ejection line: got %q, want reason \"3 5xx answers in a row\" and for=1s", ej)
		}
		if n := bad.count(); n != 3 {
			t.Fatalf("requests at the 500 backend when it was ejected: got %d, want 3", n)
		}

		// While it is out, every request goes to the good backend; a request that reaches
		// the bad one is only allowed once its return has been logged.
		inWindow := 0
		deadline := time.Now().Add(20 * time.Second)
		for {
			before := bad.count()
			st, body := get(t, lb.Addr, "f")
			returned := len(ftLogLines(lb, "backend returned from ejection", bad.Addr)) > 0
			if returned {
				break
			}
			if st != 200 || string(body) != "good" {
				t.Fatalf("while ejected: got %d %q, want 200 \"good\"", st, body)
			}
			if got := bad.count(); got != before {
				t.Fatalf("while ejected: the 500 backend got %d requests, want 0", got-before)
			}
			inWindow++
			if time.Now().After(deadline) {
				t.Fatalf("no \"backend returned from ejection\" within 20 s of a 1 s ejection; log:\n%s", lb.Stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if inWindow == 0 {
			t.Fatalf("no request was made while the backend was ejected, want at least 1")
		}
		t.Logf("%d requests while ejected, all to the good backend (%d in its log)", inWindow, countInLog(t, goodLog, "f"))

		// Back in rotation: it gets requests again.
		before := bad.count()
		for i := 0; bad.count() == before; i++ {
			if i == 20 {
				t.Fatalf("after its return the 500 backend got no request in 20, want some")
			}
			get(t, lb.Addr, "f")
		}
	})

	t.Run("refused connects eject and every request succeeds", func(t *testing.T) {
		dir := ftFileDir(t, map[string]string{"f": "good"})
		good := startHTTPServer(t, dir, "-L")
		flaky := ftStartBackend(t, 0, func(req *http.Request, _ []byte) string { return ftAnswer("200 OK", "flaky") })
		lb := startLB(t, []string{flaky.Port, strconv.Itoa(good.Port)}, append(httpCheck, "--eject-time", "30s")...)
		waitBackendsUp(t, lb, 2)
		for i := 0; i < 4; i++ {
			if st, body := get(t, lb.Addr, "f"); st != 200 || (string(body) != "good" && string(body) != "flaky") {
				t.Fatalf("request %d: got %d %q, want 200", i, st, body)
			}
		}
		if flaky.count() == 0 {
			t.Fatalf("the in-test backend got no request of 4 under round robin, want some")
		}

		flaky.stop() // connections refused from now on; the health check will not notice
		ejected := func() bool { return len(ftLogLines(lb, "backend ejected", flaky.Addr)) > 0 }
		for i := 0; !ejected() || i < 10; i++ {
			if i == 40 {
				t.Fatalf("no ejection after 40 requests with one backend refusing connections; log:\n%s", lb.Stderr())
			}
			if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != "good" {
				t.Fatalf("request %d after the backend stopped listening: got %d %q, want 200 \"good\"", i, st, body)
			}
		}
		if ej := ftLogLines(lb, "backend ejected", flaky.Addr)[0]; !strings.Contains(ej, `reason="3 connect failures in a row"`) {
			t.Errorf("ejection line: got %q, want reason \"3 connect failures in a row\"", ej)
		}
		if n := len(ftLogLines(lb, "backend down", flaky.Addr)); n != 0 {
			t.Errorf("\"backend down\" lines for the stopped backend: got %d, want 0 (no health round ran)", n)
		}
	})

	t.Run("at most the max share is ejected", func(t *testing.T) {
		bad1 := ftStartBackend(t, 0, func(*http.Request, []byte) string { return ftAnswer("500 Internal Server Error", "bad1") })
		bad2 := ftStartBackend(t, 0, func(*http.Request, []byte) string { return ftAnswer("500 Internal Server Error", "bad2") })
		lb := startLB(t, []string{bad1.Port, bad2.Port},
			append(httpCheck, "--eject-5xx", "3", "--eject-time", "1s", "--log-level", "debug")...)
		waitBackendsUp(t, lb, 2)
		// Until each has been ejected at least once and the cap has refused an ejection.
		done := func() bool {
			return len(ftLogLines(lb, "backend ejected", bad1.Addr)) > 0 && len(ftLogLines(lb, "backend ejected", bad2.Addr)) > 0 &&
				strings.Contains(lb.Stderr(), "too many ejected already")
		}
		deadline := time.Now().Add(20 * time.Second)
		n := 0
		for ; !done(); n++ {
			if time.Now().After(deadline) {
				t.Fatalf("within 20 s (%d requests): not both backends ejected and refused by the cap; log:\n%s", n, lb.Stderr())
			}
			st, head, body := do(t, lb.Addr, "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n")
			if st != 500 || (string(body) != "bad1" && string(body) != "bad2") {
				// The load balancer's own error would mean both were out of rotation.
				t.Fatalf("request %d: got %q%q, want a backend's 500 (one backend always in rotation)", n, head, body)
			}
			time.Sleep(10 * time.Millisecond)
		}
		out, most, ejections := 0, 0, 0
		for _, l := range strings.Split(lb.Stderr(), "\n") {
			switch {
			case strings.Contains(l, `msg="backend ejected"`):
				out++
				ejections++
			case strings.Contains(l, `msg="backend returned from ejection"`):
				out--
			}
			most = max(most, out)
		}
		if most > 1 {
			t.Fatalf("backends ejected at once: got %d, want at most 1 of 2 (--eject-max-percent 50); log:\n%s", most, lb.Stderr())
		}
		t.Logf("%d requests, %d ejections, never more than %d at once", n, ejections, most)
	})
}

// 2. A backend frozen (SIGSTOP) under load: the scenario.

func TestFaultsFrozenBackend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default flags", nil},
		{"N4 least-request", []string{"-N", "4", "--policy", "least-request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const content = "small file\n"
			dir := ftFileDir(t, map[string]string{"f": content, "g": content})
			bs, logs := ftHTTPServers(t, dir, 3)
			frozen := bs[0]
			// Registered after the process's own clean-up, so run before it: a stopped
			// process must be continued before it can be stopped.
			t.Cleanup(func() { frozen.Signal(syscall.SIGCONT) })
			lb := startLB(t, ports(bs...), tc.flags...)
			waitBackendsUp(t, lb, 3)

			start := time.Now()
			// Frozen for 5 s: a request left on the frozen backend until the thaw would take
			// about that long, well over the bound below.
			freezeAt, contAt, end := start.Add(time.Second), start.Add(6*time.Second), start.Add(9*time.Second)
			results := make([][]ftResult, 8)
			var wg sync.WaitGroup
			for w := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[w] = ftLoop(lb.Addr, end, func(int) string { return "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n" })
				}()
			}
			time.Sleep(time.Until(freezeAt))
			frozen.Signal(syscall.SIGSTOP)
			frozenAt := time.Now()
			time.Sleep(time.Until(contAt))
			frozen.Signal(syscall.SIGCONT)
			contdAt := time.Now()
			wg.Wait()

			all := slices.Concat(results...)
			failed := 0
			for _, r := range all {
				if r.err != nil || r.status != 200 || r.body != content {
					if failed < 5 {
						t.Errorf("request at +%v (took %v): got %d %q, %v; want 200 %q",
							r.start.Sub(start).Round(time.Millisecond), r.lat.Round(time.Millisecond), r.status, r.head+r.body, r.err, content)
					}
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("failed requests: got %d of %d, want 0", failed, len(all))
			}
			p99b, maxb, nb := ftLatencies(all, start, frozenAt)
			p99d, maxd, nd := ftLatencies(all, frozenAt, contdAt)
			p99a, maxa, na := ftLatencies(all, contdAt, end.Add(time.Minute))
			t.Logf("%s: %d requests; before the freeze: %d, p99 %v, max %v; frozen: %d, p99 %v, max %v; after SIGCONT: %d, p99 %v, max %v",
				tc.name, len(all), nb, p99b.Round(time.Microsecond), maxb.Round(time.Microsecond),
				nd, p99d.Round(time.Microsecond), maxd.Round(time.Microsecond), na, p99a.Round(time.Microsecond), maxa.Round(time.Microsecond))
			// The design goal is a few hundred milliseconds; the bound only catches a request
			// that waited for the thaw (5 s) or the response timeout (10 s).
			if worst := max(maxb, maxd, maxa); worst >= 3*time.Second {
				t.Errorf("slowest request: got %v, want < 3 s (not left waiting on the frozen backend)", worst)
			}

			out := len(ftLogLines(lb, "backend down", frozen.Addr)) + len(ftLogLines(lb, "backend ejected", frozen.Addr))
			if out == 0 {
				t.Errorf("the frozen backend %s: got no \"backend down\" or \"backend ejected\" line, want one; log:\n%s", frozen.Addr, lb.Stderr())
			}
			waitFor(t, "the frozen backend back in rotation", func() bool {
				return len(ftLogLines(lb, "backend up", frozen.Addr)) >= 2 || len(ftLogLines(lb, "backend returned from ejection", frozen.Addr)) > 0
			})
			// Requests for another name: the frozen backend's own backlog (requests of /f
			// abandoned during the freeze) cannot be mistaken for new traffic.
			waitFor(t, "the thawed backend to serve again", func() bool {
				if st, body := get(t, lb.Addr, "g"); st != 200 || string(body) != content {
					t.Fatalf("after the thaw: got %d %q, want 200 %q", st, body, content)
				}
				return countInLog(t, logs[0], "g") > 0
			})
			t.Logf("log lines: %q", slices.Concat(ftLogLines(lb, "backend down", frozen.Addr), ftLogLines(lb, "backend ejected", frozen.Addr),
				ftLogLines(lb, "backend returned from ejection", frozen.Addr)))
		})
	}
}

// 3. A backend killed (SIGKILL) under load.

var ftPostLine = regexp.MustCompile(`(?m)^FAIL: POST /p(\d+) HTTP/1\.1 `)

func TestFaultsKilledBackend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default flags", nil},
		{"least-request http check", []string{"--policy", "least-request", "--health-check", "http", "--health-path", "/healthcheck"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const content = "small file\n"
			dir := ftFileDir(t, map[string]string{"f": content})
			bs, logs := ftHTTPServers(t, dir, 3)
			// The in-test backend serves the same file and takes POSTs; the httpservers
			// answer a POST 400 and log it as FAIL, which is enough to see where each went.
			poster := ftStartBackend(t, 0, func(req *http.Request, body []byte) string {
				switch {
				case req.Method == "GET" && req.URL.Path == "/f":
					return ftAnswer("200 OK", content)
				case req.Method == "POST":
					return ftAnswer("200 OK", "posted "+string(body))
				}
				return ftAnswer("404 Not Found", "")
			})
			lb := startLB(t, append(ports(bs...), poster.Port), tc.flags...)
			waitBackendsUp(t, lb, 4)

			start := time.Now()
			killAt, end := start.Add(2*time.Second), start.Add(6*time.Second)
			gets := make([][]ftResult, 8)
			var posts []ftResult
			var wg sync.WaitGroup
			for w := range gets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					gets[w] = ftLoop(lb.Addr, end, func(int) string { return "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n" })
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				posts = ftLoop(lb.Addr, end, func(i int) string {
					body := fmt.Sprintf("id=%d", i)
					return fmt.Sprintf("POST /p%d HTTP/1.1\r\nHost: lb\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body)
				})
			}()
			time.Sleep(time.Until(killAt))
			bs[0].Kill()
			wg.Wait()

			all := slices.Concat(gets...)
			failed := 0
			for _, r := range all {
				if r.err != nil || r.status != 200 || r.body != content {
					if failed < 5 {
						t.Errorf("GET at +%v: got %d %q, %v; want 200 %q", r.start.Sub(start).Round(time.Millisecond), r.status, r.head+r.body, r.err, content)
					}
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("failed GETs: got %d of %d, want 0", failed, len(all))
			}

			// Where each POST went: at most one backend, at most once.
			delivered := map[string]int{}
			for k, n := range poster.keys() {
				if id, ok := strings.CutPrefix(k, "POST /p"); ok {
					delivered[id] += n
				}
			}
			for _, l := range logs {
				b, err := os.ReadFile(l)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ftPostLine.FindAllStringSubmatch(string(b), -1) {
					delivered[m[1]]++
				}
			}
			outcomes := map[string]int{}
			for i, r := range posts {
				id := strconv.Itoa(i)
				switch {
				case r.err == nil && r.status == 200 && r.body == "posted id="+id:
					outcomes["200 from the in-test backend"]++
				case r.err == nil && r.status == 400:
					outcomes["400 from an httpserver"]++
				case r.err == nil && r.head+r.body == classic500:
					outcomes["the load balancer's 500"]++
				default:
					t.Errorf("POST %d: got %d %q, %v; want 200, an httpserver's 400 or the classic 500", i, r.status, r.head+r.body, r.err)
				}
				if delivered[id] > 1 {
					t.Errorf("POST %d: delivered %d times, want at most 1", i, delivered[id])
				}
			}
			dup := 0
			for _, n := range delivered {
				if n > 1 {
					dup++
				}
			}
			t.Logf("%s: %d GETs (%d failed), %d POSTs %v, %d delivered twice or more", tc.name, len(all), failed, len(posts), outcomes, dup)
			if len(posts) == 0 {
				t.Fatalf("POSTs made: got 0, want some")
			}
			// Still serving after the load, the killed backend out of rotation.
			for i := 0; i < 5; i++ {
				if st, body := get(t, lb.Addr, "f"); st != 200 || string(body) != content {
					t.Fatalf("after the load, request %d: got %d %q, want 200", i, st, body)
				}
			}
		})
	}

	// Deterministic: one request of each kind in flight on a backend when it is killed.
	for _, tc := range []struct {
		name   string
		flags  []string
		isFail func(head, body string) bool
	}{
		{"in flight at the kill", nil, func(head, body string) bool { return head+body == classic500 }},
		{"in flight at the kill gateway", []string{"--error-codes", "gateway"}, func(head, body string) bool {
			return strings.HasPrefix(head, "HTTP/1.1 502 ")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A slow httpserver holds every request 30 s; the in-test backend answers at once.
			// Stall detection off, so that only the kill moves anything.
			slow := startHTTPServer(t, ftFileDir(t, map[string]string{"f": "slow"}), "-L", "--delay", "30s")
			good := ftStartBackend(t, 0, func(req *http.Request, body []byte) string {
				return ftAnswer("200 OK", "good "+req.Method)
			})
			lb := startLB(t, []string{strconv.Itoa(slow.Port), good.Port},
				append([]string{"--policy", "round-robin", "--stall-after", "0", "--response-timeout", "60s"}, tc.flags...)...)
			waitBackendsUp(t, lb, 2)

			type pending struct {
				id   string
				post bool
				done chan ftResult
			}
			send := func(id string, post bool) pending {
				p := pending{id: id, post: post, done: make(chan ftResult, 1)}
				req := "GET /f HTTP/1.1\r\nHost: lb\r\nX-Ft-Id: " + id + "\r\n\r\n"
				if post {
					req = "POST /p HTTP/1.1\r\nHost: lb\r\nX-Ft-Id: " + id + "\r\nContent-Length: 4\r\n\r\nbody"
				}
				c := dial(t, lb.Addr)
				go func() {
					r := ftResult{start: time.Now()}
					r.status, r.head, r.body, r.err = ftRoundTrip(c, bufio.NewReader(c), req)
					r.lat = time.Since(r.start)
					p.done <- r
				}()
				return p
			}
			// Send one request at a time until a POST and a GET are held by the slow backend
			// (round robin alternates; the in-test backend answers those it gets at once).
			var held []pending
			needPost, needGet := true, true
			for i := 0; needPost || needGet; i++ {
				if i == 12 {
					t.Fatalf("could not get a POST and a GET held by the slow backend in 12 requests")
				}
				post := needPost && (i%2 == 0 || !needGet)
				p := send(fmt.Sprintf("r%d", i), post)
				select {
				case r := <-p.done:
					if r.err != nil || r.status != 200 || good.times(p.id) != 1 {
						t.Fatalf("request %s: got %d %q, %v; want 200 from the in-test backend", p.id, r.status, r.head+r.body, r.err)
					}
				case <-time.After(500 * time.Millisecond):
					if good.times(p.id) != 0 {
						// At the in-test backend after all: wait for its answer.
						if r := <-p.done; r.status != 200 {
							t.Fatalf("request %s: got %d %q, %v; want 200", p.id, r.status, r.head+r.body, r.err)
						}
						continue
					}
					held = append(held, p)
					if post {
						needPost = false
					} else {
						needGet = false
					}
				}
			}
			slow.Kill()
			for _, p := range held {
				var r ftResult
				select {
				case r = <-p.done:
				case <-time.After(30 * time.Second):
					t.Fatalf("request %s (POST %v): no answer within 30 s of the kill", p.id, p.post)
				}
				if p.post {
					if r.err != nil || !tc.isFail(r.head, r.body) {
						t.Errorf("POST %s held by the killed backend: got %q, %v; want the load balancer's error", p.id, r.head+r.body, r.err)
					}
					if n := good.times(p.id); n != 0 {
						t.Errorf("POST %s held by the killed backend: the other backend received it %d times, want 0 (never sent twice)", p.id, n)
					}
				} else {
					if r.err != nil || r.status != 200 || r.body != "good GET" {
						t.Errorf("GET %s held by the killed backend: got %d %q, %v; want 200 \"good GET\" (re-sent)", p.id, r.status, r.head+r.body, r.err)
					}
					if n := good.times(p.id); n != 1 {
						t.Errorf("GET %s held by the killed backend: the other backend received it %d times, want 1", p.id, n)
					}
				}
			}
		})
	}
}

// 4. Non-idempotent requests on a backend that stops answering are not re-sent.

// ftFreezesAfterWarmUp answers the warm-up request (so the load balancer has timed the backend:
// a stall is judged against a usual latency) and nothing after it, as a frozen backend does.
func ftFreezesAfterWarmUp(req *http.Request, _ []byte) string {
	if req.Header.Get("X-Ft-Id") == "warm" {
		return ftAnswer("200 OK", "warm")
	}
	return ""
}

// ftWarmUp sends the warm-up request on a kept-alive connection, which the classic pick sends
// to the backend with fewer entries (the one that freezes after it), and sends req after it on
// the same connection: the warm-up's release then rides on req's pick, so the load balancer has
// timed the backend before it judges req. It returns req's answer and how long it took.
func ftWarmUp(t *testing.T, lb *Proc, req string) (int, string, string, time.Duration) {
	t.Helper()
	c := dial(t, lb.Addr)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	if st, _, body, err := ftRoundTrip(c, br, "GET /w HTTP/1.1\r\nHost: lb\r\nX-Ft-Id: warm\r\n\r\n"); err != nil || st != 200 || body != "warm" {
		t.Fatalf("warm-up: got %d %q (%v), want 200 \"warm\" from the backend about to freeze", st, body, err)
	}
	begin := time.Now()
	st, head, body, err := ftRoundTrip(c, br, req)
	if err != nil {
		t.Fatalf("after the warm-up: %v (got %q)", err, head+body)
	}
	return st, head, body, time.Since(begin)
}

func TestFaultsFrozenBackendPOST(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flags  []string
		isFail func(head, body string) bool
	}{
		{"classic", nil, func(head, body string) bool { return head+body == classic500 }},
		{"gateway", []string{"--error-codes", "gateway"}, func(head, body string) bool { return strings.HasPrefix(head, "HTTP/1.1 504 ") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The frozen backend reports 0 entries and the good one 100: the classic policy
			// sends the first request to the frozen one.
			frozen := ftStartBackend(t, 0, ftFreezesAfterWarmUp)
			good := ftStartBackend(t, 100, func(req *http.Request, _ []byte) string { return ftAnswer("200 OK", "good "+req.Method) })
			lb := startLB(t, []string{frozen.Port, good.Port}, append([]string{"--response-timeout", "2s"}, tc.flags...)...)
			waitBackendsUp(t, lb, 2)
			st, head, body, took := ftWarmUp(t, lb, "POST /p HTTP/1.1\r\nHost: lb\r\nX-Ft-Id: post1\r\nContent-Length: 4\r\n\r\nbody")
			if !tc.isFail(head, string(body)) {
				t.Errorf("POST on the frozen backend: got %d %q, want the load balancer's error after the response timeout", st, head+string(body))
			}
			if n := frozen.times("post1"); n != 1 {
				t.Errorf("the frozen backend received the POST %d times, want 1", n)
			}
			if n := good.times("post1"); n != 0 {
				t.Errorf("the good backend received the POST %d times, want 0 (never sent twice)", n)
			}
			// Behavioural bounds far from the expected 2 s: not given up at the stall check
			// (a lone request is judged stalled after four stall times, ~1 s), not left to the
			// default 10 s timeout.
			if took < 1500*time.Millisecond || took > 9*time.Second {
				t.Errorf("POST answered after %v, want about the 2 s response timeout", took)
			}
			if n := len(ftLogLines(lb, "backend ejected", frozen.Addr)); n == 0 || !strings.Contains(ftLogLines(lb, "backend ejected", frozen.Addr)[0], `reason="stalled:`) {
				t.Errorf("frozen backend: got %d ejection lines %q, want one with a \"stalled:\" reason", n, ftLogLines(lb, "backend ejected", frozen.Addr))
			}
			t.Logf("POST answered %q after %v", head, took.Round(time.Millisecond))
		})
	}

	t.Run("GET goes elsewhere", func(t *testing.T) {
		// The counterpart: an idempotent request held by the frozen backend is re-sent.
		frozen := ftStartBackend(t, 0, ftFreezesAfterWarmUp)
		good := ftStartBackend(t, 100, func(req *http.Request, _ []byte) string { return ftAnswer("200 OK", "good "+req.Method) })
		lb := startLB(t, []string{frozen.Port, good.Port}, "--response-timeout", "2s")
		waitBackendsUp(t, lb, 2)
		st, head, body, took := ftWarmUp(t, lb, "GET /g HTTP/1.1\r\nHost: lb\r\nX-Ft-Id: get1\r\n\r\n")
		if st != 200 || string(body) != "good GET" {
			t.Errorf("GET on the frozen backend: got %q, want 200 \"good GET\" from the other backend", head+string(body))
		}
		if n := frozen.times("get1"); n != 1 {
			t.Errorf("the frozen backend received the GET %d times, want 1", n)
		}
		if n := good.times("get1"); n != 1 {
			t.Errorf("the good backend received the GET %d times, want 1", n)
		}
		t.Logf("GET answered after %v", took.Round(time.Millisecond))
	})
}
