package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// startLBAdmin starts the load balancer with an admin listener on a free port and returns it
// with the admin address.
func startLBAdmin(t *testing.T, backends []string, flags ...string) (*Proc, string) {
	t.Helper()
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	lb := startLB(t, backends, append([]string{"--admin-addr", admin}, flags...)...)
	waitFor(t, "the admin listener", func() bool {
		c, err := net.DialTimeout("tcp", admin, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return lb, admin
}

// adminGet fetches path from the admin listener.
func adminGet(t *testing.T, admin, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches and parses /metrics.
func scrape(t *testing.T, admin string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	st, body := adminGet(t, admin, "/metrics")
	if st != 200 {
		t.Fatalf("/metrics: status %d: %s", st, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams, body
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sumWhere adds up the counter or gauge values of family name whose labels match want.
func sumWhere(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			if label(m, k) != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// The metrics count exactly what was sent, by backend and status class, with the answers the
// load balancer made itself by reason; every family of the issue is there with per-backend
// labels; promtool accepts the output.
func TestObserveMetricsCountWhatWasSent(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	a, b := startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")
	lb, admin := startLBAdmin(t, ports(a, b), "-R", "1000000")
	waitBackendsUp(t, lb, 2)

	const ok, missing, bad = 40, 7, 3
	for range ok {
		if st, _ := get(t, lb.Addr, "f"); st != 200 {
			t.Fatalf("GET /f: %d", st)
		}
	}
	for range missing {
		if st, _ := get(t, lb.Addr, "nothing-here"); st != 404 {
			t.Fatalf("GET /nothing-here: %d", st)
		}
	}
	for range bad {
		raw := rawExchange(t, lb.Addr, []byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
			t.Fatalf("malformed request: %q", raw)
		}
	}
	// A request is counted when it has ended; the last ones end as their answers go out.
	var fams map[string]*dto.MetricFamily
	var text string
	waitFor(t, "every request counted", func() bool {
		fams, text = scrape(t, admin)
		return sumWhere(fams, "loadbalancer_requests_total", nil) == ok+missing+bad
	})
	check := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("2xx", sumWhere(fams, "loadbalancer_requests_total", map[string]string{"code": "2xx"}), ok)
	check("4xx", sumWhere(fams, "loadbalancer_requests_total", map[string]string{"code": "4xx"}), missing+bad)
	check("4xx without a backend", sumWhere(fams, "loadbalancer_requests_total", map[string]string{"code": "4xx", "backend": "none"}), bad)
	check("GET", sumWhere(fams, "loadbalancer_requests_total", map[string]string{"method": "GET"}), ok+missing)
	// A head that does not parse has no method the load balancer can trust.
	check("other methods", sumWhere(fams, "loadbalancer_requests_total", map[string]string{"method": "other"}), bad)
	check("bad_request answers", sumWhere(fams, "loadbalancer_local_responses_total", map[string]string{"reason": "bad_request"}), bad)
	check("duration observations", sumWhere(fams, "loadbalancer_request_duration_seconds", nil), ok+missing+bad)
	check("upstream header observations", sumWhere(fams, "loadbalancer_upstream_header_duration_seconds", nil), ok+missing)
	// One connection per request, and the harness's own check that the port is open.
	check("client connections accepted", sumWhere(fams, "loadbalancer_client_connections_accepted_total", nil), ok+missing+bad+1)
	check("backends up", sumWhere(fams, "loadbalancer_backend_up", nil), 2)
	check("in flight", sumWhere(fams, "loadbalancer_requests_in_flight", nil), 0)
	for _, p := range []*Proc{a, b} {
		addr := "127.0.0.1:" + strconv.Itoa(p.Port)
		if sumWhere(fams, "loadbalancer_requests_total", map[string]string{"backend": addr}) <= 0 {
			t.Errorf("no requests counted for backend %s", addr)
		}
		if sumWhere(fams, "loadbalancer_health_checks_total", map[string]string{"backend": addr, "result": "pass"}) < 1 {
			t.Errorf("no passed health check counted for backend %s", addr)
		}
		if sumWhere(fams, "loadbalancer_backend_state", map[string]string{"backend": addr, "state": "up"}) != 1 {
			t.Errorf("backend %s is not in state up", addr)
		}
	}
	for _, name := range []string{"requests_total", "request_failures_total", "local_responses_total",
		"request_duration_seconds", "upstream_header_duration_seconds", "retries_total", "request_bytes_total",
		"response_bytes_total", "upstream_connections_opened_total", "upstream_connections_reused_total",
		"upstream_connections_stale_total", "upstream_connect_failures_total", "requests_in_flight", "backend_requests_in_flight", "queue_length",
		"queue_wait_seconds", "ready", "backend_up", "backend_state", "backend_ejections_total",
		"health_checks_total", "health_check_duration_seconds", "client_connections_open",
		"client_connections_accepted_total", "client_connections_refused_total", "forwarder_crashes_total",
		"build_info"} {
		if fams["loadbalancer_"+name] == nil {
			t.Errorf("family loadbalancer_%s missing", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	promtoolCheck(t, text)

	// The proxy port forwards /metrics like any path: nothing of the admin listener is there.
	if st, _ := get(t, lb.Addr, "metrics"); st != 404 {
		t.Errorf("GET /metrics on the proxy port: %d, want the backend's 404", st)
	}
}

// promtoolCheck runs `promtool check metrics` on text; it skips when promtool is missing,
// except in CI, which must have it.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Log("promtool not found; skipping its check")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// /healthz answers while the process runs; /readyz is 200 once a backend is up and turns 503,
// with a one-line reason, when every backend has died.
func TestObserveReadyzFlipsWhenBackendsDie(t *testing.T) {
	a := startHTTPServer(t, "", "-L")
	lb, admin := startLBAdmin(t, ports(a), "--health-interval", "200ms")
	waitBackendsUp(t, lb, 1)
	waitFor(t, "ready", func() bool { st, _ := adminGet(t, admin, "/readyz"); return st == 200 })
	if st, body := adminGet(t, admin, "/healthz"); st != 200 {
		t.Fatalf("/healthz: %d %s", st, body)
	}
	a.Kill()
	var body string
	waitFor(t, "not ready", func() bool {
		var st int
		st, body = adminGet(t, admin, "/readyz")
		return st == 503
	})
	if !strings.Contains(body, "no backend is up") || strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Errorf("/readyz body: %q, want one line saying no backend is up", body)
	}
	if st, _ := adminGet(t, admin, "/healthz"); st != 200 {
		t.Errorf("/healthz with every backend down: %d, want 200 (the process is alive)", st)
	}
}

// logLine is one JSON access log line.
type logLine struct {
	Time      string   `json:"time"`
	Client    string   `json:"client"`
	Method    string   `json:"method"`
	Target    string   `json:"target"`
	Status    int      `json:"status"`
	BytesOut  int64    `json:"bytes_out"`
	Duration  float64  `json:"duration_ms"`
	Head      *float64 `json:"upstream_head_ms"`
	Backend   string   `json:"backend"`
	Outcome   string   `json:"outcome"`
	Reason    string   `json:"reason"`
	RequestID string   `json:"request_id"`
	UserAgent string   `json:"user_agent"`
}

// readLog parses every line of the JSON access logs at paths (in order).
func readAccessLog(t *testing.T, paths ...string) []logLine {
	t.Helper()
	var out []logLine
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var l logLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: line %q does not parse: %v", p, sc.Text(), err)
			}
			out = append(out, l)
		}
	}
	return out
}

// waitLogLines waits until the access log at path has n lines (they are written in batches).
func waitLogLines(t *testing.T, path string, n int) []logLine {
	t.Helper()
	var lines []logLine
	waitFor(t, fmt.Sprintf("%d access log lines in %s", n, path), func() bool {
		lines = readAccessLog(t, path)
		return len(lines) >= n
	})
	if len(lines) != n {
		t.Fatalf("%d access log lines, want %d", len(lines), n)
	}
	return lines
}

// The access log has one parseable line per request, the load balancer's own 400, 500, 503 and
// 504 answers included, with their reasons.
func TestObserveAccessLogOneLinePerRequest(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	good := startHTTPServer(t, dir, "-L")
	logA := filepath.Join(t.TempDir(), "a.log")
	lbA := startLB(t, ports(good), "--access-log", logA)
	waitBackendsUp(t, lbA, 1)
	st, _, _ := do(t, lbA.Addr, "GET /f HTTP/1.1\r\nHost: lb\r\nUser-Agent: observe-test\r\nX-Request-ID: rid-1\r\n\r\n")
	if st != 200 {
		t.Fatalf("GET /f: %d", st)
	}
	if st, _ := get(t, lbA.Addr, "missing"); st != 404 {
		t.Fatalf("GET /missing: %d", st)
	}
	rawExchange(t, lbA.Addr, []byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	// Each event loop writes its own batches, so lines from different connections may come in
	// any order: they are matched by status, which differs.
	lines := waitLogLines(t, logA, 3)
	byStatus := map[int]logLine{}
	for _, l := range lines {
		byStatus[l.Status] = l
	}
	want := []struct {
		status          int
		outcome, reason string
		routed          bool
		target, rid, ua string
	}{
		{200, "ok", "", true, "/f", "rid-1", "observe-test"},
		{404, "ok", "", true, "/missing", "", ""},
		{400, "local", "bad_request", false, "", "", ""}, // no method or target: the head did not parse
	}
	backendAddr := "127.0.0.1:" + strconv.Itoa(good.Port)
	for i, w := range want {
		l, ok := byStatus[w.status]
		if !ok {
			t.Errorf("no line with status %d in %+v", w.status, lines)
			continue
		}
		if l.Status != w.status || l.Outcome != w.outcome || l.Reason != w.reason {
			t.Errorf("line %d: status %d outcome %q reason %q, want %d %q %q", i, l.Status, l.Outcome, l.Reason, w.status, w.outcome, w.reason)
		}
		if w.routed != (l.Backend == backendAddr) || w.routed != (l.Head != nil) {
			t.Errorf("line %d: backend %q head %v, want routed=%v", i, l.Backend, l.Head, w.routed)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
			t.Errorf("line %d: time %q: %v", i, l.Time, err)
		}
		if !strings.HasPrefix(l.Client, "127.0.0.1:") || l.Method != map[bool]string{true: "GET"}[w.target != ""] ||
			l.Target != w.target || l.UserAgent != w.ua {
			t.Errorf("line %d: %+v", i, l)
		}
		if w.rid != "" && l.RequestID != w.rid || w.rid == "" && w.routed && len(l.RequestID) != 36 {
			t.Errorf("line %d: request_id %q", i, l.RequestID)
		}
	}
	if l := byStatus[200]; l.BytesOut <= 5 {
		t.Errorf("the 200: bytes_out %d, want the whole response", l.BytesOut)
	}

	// No backend (its port is closed): the classic 500, logged with its reason.
	logB := filepath.Join(t.TempDir(), "b.log")
	lbB := startLB(t, []string{strconv.Itoa(freePort(t))}, "--access-log", logB)
	if st, _ := get(t, lbB.Addr, "f"); st != 500 {
		t.Fatalf("GET with no backend: %d", st)
	}
	if l := waitLogLines(t, logB, 1)[0]; l.Status != 500 || l.Outcome != "local" || l.Reason != "no_backend" {
		t.Errorf("no backend: %+v", l)
	}

	// The same in gateway mode: 503.
	logD := filepath.Join(t.TempDir(), "d.log")
	lbD := startLB(t, []string{strconv.Itoa(freePort(t))}, "--access-log", logD, "--error-codes", "gateway")
	if st, _ := get(t, lbD.Addr, "f"); st != 503 {
		t.Fatalf("GET with no backend, gateway mode: %d", st)
	}
	if l := waitLogLines(t, logD, 1)[0]; l.Status != 503 || l.Outcome != "local" || l.Reason != "no_backend" {
		t.Errorf("no backend, gateway mode: %+v", l)
	}

	// A backend that never answers: 504 in gateway mode after the response timeout.
	silentPort := fakeBackend(t, silent)
	logC := filepath.Join(t.TempDir(), "c.log")
	lbC := startLB(t, []string{silentPort}, "--access-log", logC, "--access-log-format", "json",
		"--health-check", "none", "--error-codes", "gateway", "--response-timeout", "300ms", "--stall-after", "0")
	if st, _ := get(t, lbC.Addr, "f"); st != 504 {
		t.Fatalf("GET from a silent backend: %d", st)
	}
	if l := waitLogLines(t, logC, 1)[0]; l.Status != 504 || l.Outcome != "local" || l.Reason != "upstream_timeout" || l.Backend == "" {
		t.Errorf("silent backend: %+v", l)
	}
}

// Rotation: the log is renamed and SIGUSR1 sent while requests keep coming; the old file and the
// new one together hold every request exactly once.
func TestObserveAccessLogRotationLosesNothing(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	good := startHTTPServer(t, dir, "-L")
	logDir := t.TempDir()
	path := filepath.Join(logDir, "access.log")
	lb := startLB(t, ports(good), "--access-log", path, "--access-log-format", "json", "-R", "1000000")
	waitBackendsUp(t, lb, 1)

	c := dial(t, lb.Addr)
	br := bufio.NewReader(c)
	sent := 0
	send := func(n int) {
		for range n {
			sent++
			req := fmt.Sprintf("GET /f HTTP/1.1\r\nHost: lb\r\nX-Request-ID: req-%d\r\n\r\n", sent)
			if st, _ := exchange(t, c, br, req); st != 200 {
				t.Fatalf("request %d: %d", sent, st)
			}
		}
	}
	send(300)
	rotated := filepath.Join(logDir, "access.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	send(50) // lines still going to the renamed file (or buffered)
	lb.Signal(syscall.SIGUSR1)
	waitFor(t, "the new log file", func() bool { _, err := os.Stat(path); return err == nil })
	send(300)
	c.Close()
	lb.Signal(syscall.SIGTERM)
	if code, err := lb.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit: %d %v\n%s", code, err, lb.Stderr())
	}
	lines := readAccessLog(t, rotated, path)
	if len(lines) != sent {
		t.Fatalf("%d lines in the old and new files, want %d (one per request)", len(lines), sent)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l.RequestID] || !strings.HasPrefix(l.RequestID, "req-") {
			t.Fatalf("request ID %q logged twice, or not one the test sent", l.RequestID)
		}
		seen[l.RequestID] = true
	}
	if n := len(readAccessLog(t, path)); n == 0 {
		t.Errorf("the reopened file is empty: the lines after SIGUSR1 went elsewhere")
	}
}
