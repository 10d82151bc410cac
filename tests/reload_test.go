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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeConfig writes a config file atomically (rename), as a deploy tool would.
func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// loadResult counts what a load goroutine saw.
type loadResult struct {
	ok, failed int
	errs       []string
}

func (r *loadResult) fail(format string, args ...any) {
	r.failed++
	if len(r.errs) < 10 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

// 50 SIGHUP reloads alternating two configurations that add, remove and reweight backends, under
// keep-alive and new-connection requests, 20 MiB downloads and uploads: no request fails, no
// body is cut. A bad configuration on reload leaves the running one serving. A backend removed
// by the last reload gets no new request.
func TestReloadUnderLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16) // 20 MiB
	bigSum := sha256.Sum256(big)
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	mustWriteFile(t, filepath.Join(dir, "big"), big)
	// The backends keep no request log (it would hold every upload whole): who served what is
	// in the load balancer's access log.
	var backends [3]*Proc
	for i := range backends {
		backends[i] = startHTTPServer(t, dir, "-L")
	}
	accessLog := filepath.Join(t.TempDir(), "access.log")
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(backends[i].Port) }
	port := freePort(t)
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	head := fmt.Sprintf("listen: 127.0.0.1:%d\nadmin_addr: %s\naccess_log: %s\nconnections: 64\nrequests: 1000000\nhealth_interval: 300ms\n",
		port, admin, accessLog)
	configA := head + "backends:\n  - address: " + addr(0) + "\n  - address: " + addr(1) + "\n"
	// B also changes settings a reload applies: the policy, the budget, a timeout.
	configB := head + "policy: least-request\nmax_per_backend: 100\nconnect_timeout: 1s\n" +
		"backends:\n  - address: " + addr(1) + "\n    weight: 3\n  - address: " + addr(2) + "\n"
	path := filepath.Join(t.TempDir(), "lb.yaml")
	writeConfig(t, path, configA)
	lb := startProc(t, buildBinary(t, "loadbalancer"), port, t.TempDir(), "--config", path)
	waitBackendsUp(t, lb, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]*loadResult, 0, 8)
	run := func(f func(r *loadResult)) {
		r := &loadResult{}
		results = append(results, r)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				f(r)
			}
		})
	}
	// Keep-alive: one connection each, reopened only when the load balancer closes it after
	// an answer.
	for range 3 {
		var c net.Conn
		var br *bufio.Reader
		run(func(r *loadResult) {
			if c == nil {
				var err error
				if c, err = net.DialTimeout("tcp", lb.Addr, 5*time.Second); err != nil {
					r.fail("dial: %v", err)
					return
				}
				br = bufio.NewReader(c)
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
				r.fail("keep-alive write: %v", err)
				c.Close()
				c = nil
				return
			}
			st, hd, _, err := readResponseHead(br)
			if err != nil || st != 200 {
				r.fail("keep-alive: status %d, %v", st, err)
				c.Close()
				c = nil
				return
			}
			body := make([]byte, 5)
			if _, err := io.ReadFull(br, body); err != nil || string(body) != "hello" {
				r.fail("keep-alive body %q: %v", body, err)
			} else {
				r.ok++
			}
			if strings.Contains(strings.ToLower(hd), "connection: close") {
				c.Close()
				c = nil
			}
		})
	}
	// A new connection per request.
	for range 2 {
		run(func(r *loadResult) {
			c, err := net.DialTimeout("tcp", lb.Addr, 5*time.Second)
			if err != nil {
				r.fail("dial: %v", err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"); err != nil {
				r.fail("new connection write: %v", err)
				return
			}
			raw, err := io.ReadAll(c)
			if err != nil || !bytes.HasPrefix(raw, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(raw, []byte("hello")) {
				r.fail("new connection: %q %v", raw, err)
				return
			}
			r.ok++
		})
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	// 20 MiB downloads, checked whole.
	run(func(r *loadResult) {
		resp, err := hc.Get("http://" + lb.Addr + "/big")
		if err != nil {
			r.fail("download: %v", err)
			return
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || resp.StatusCode != 200 || n != int64(len(big)) || !bytes.Equal(h.Sum(nil), bigSum[:]) {
			r.fail("download: status %d, %d bytes, %v", resp.StatusCode, n, err)
			return
		}
		r.ok++
	})
	// 1 MiB uploads, one after the other, to the same name (the backends share the directory:
	// a name each would fill the disk).
	upload := bytes.Repeat([]byte("u"), 1<<20)
	run(func(r *loadResult) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+lb.Addr+"/up", bytes.NewReader(upload))
		resp, err := hc.Do(req)
		if err != nil {
			r.fail("upload: %v", err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			r.fail("upload: status %d", resp.StatusCode)
			return
		}
		r.ok++
	})

	reloads := 0
	waitReloads := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d reloads", n), func() bool {
			return strings.Count(lb.Stderr(), "msg=reloaded") >= n
		})
	}
	for i := range 50 {
		time.Sleep(40 * time.Millisecond)
		if i%2 == 0 {
			writeConfig(t, path, configB)
		} else {
			writeConfig(t, path, configA)
		}
		lb.Signal(syscall.SIGHUP)
		reloads++
		waitReloads(reloads)
		if i == 25 {
			// A bad configuration on reload: refused, and the running one keeps serving.
			writeConfig(t, path, head+"backends:\n  - adress: 127.0.0.1:1\n")
			lb.Signal(syscall.SIGHUP)
			waitFor(t, "the bad reload refused", func() bool {
				return strings.Contains(lb.Stderr(), "reload refused")
			})
		}
	}
	// The last reload (i = 49) applied configA: backend 2 is out. Let the requests it had
	// finish (and their log lines come out), then it must get no new one.
	servedBy := func(addr string) int {
		n := 0
		for _, l := range readAccessLog(t, accessLog) {
			if l.Backend == addr {
				n++
			}
		}
		return n
	}
	time.Sleep(time.Second)
	before := servedBy(addr(2))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // the last batch of log lines
	after := servedBy(addr(2))

	total, failed := 0, 0
	for _, r := range results {
		total += r.ok
		failed += r.failed
		for _, e := range r.errs {
			t.Errorf("load: %s", e)
		}
	}
	t.Logf("%d reloads, %d requests ok, %d failed", reloads, total, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the reloads", failed)
	}
	if total < 100 {
		t.Errorf("only %d requests went through: the load did not run", total)
	}
	if after != before {
		t.Errorf("backend 2 got %d requests after its removal was applied", after-before)
	}
	if after == 0 {
		t.Errorf("backend 2 never got a request: the reloads did not add it")
	}
	if out := lb.Stderr(); !strings.Contains(out, "settings_changed=") || strings.Contains(out, "needs_restart") {
		t.Errorf("the reloads' log: want settings_changed and no needs_restart")
	}
	fams, _ := scrape(t, admin)
	if got := sumWhere(fams, "loadbalancer_config_reloads_total", map[string]string{"result": "applied"}); got != 50 {
		t.Errorf("reloads applied: %v, want 50", got)
	}
	if got := sumWhere(fams, "loadbalancer_config_reloads_total", map[string]string{"result": "refused"}); got != 1 {
		t.Errorf("reloads refused: %v, want 1", got)
	}
}

// apiDo sends a runtime API call with the token and returns the status and body.
func apiDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The runtime API against the real process: a backend added through it is checked and then
// takes requests; one deleted drains and takes none; a bad token changes nothing.
func TestRuntimeAPIAddsAndDrainsBackends(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	logs := []string{filepath.Join(t.TempDir(), "a.log"), filepath.Join(t.TempDir(), "b.log")}
	a := startHTTPServer(t, dir, "-L", "-l", logs[0])
	b := startHTTPServer(t, dir, "-L", "-l", logs[1])
	tokenFile := filepath.Join(t.TempDir(), "token")
	mustWriteFile(t, tokenFile, []byte("s3cret\n"))
	lb, admin := startLBAdmin(t, ports(a), "--admin-token-file", tokenFile, "--health-interval", "200ms")
	waitBackendsUp(t, lb, 1)
	api := "http://" + admin + "/api/backends"
	bAddr := "127.0.0.1:" + strconv.Itoa(b.Port)

	if st, _ := apiDo(t, "POST", api, "wrong", `{"address": "`+bAddr+`"}`); st != 401 {
		t.Fatalf("a wrong token: %d, want 401", st)
	}
	if st, body := apiDo(t, "POST", api, "s3cret", `{"address": "`+bAddr+`", "wieght": 2}`); st != 400 {
		t.Fatalf("an unknown field: %d %s, want 400", st, body)
	}
	if st, body := apiDo(t, "POST", api, "s3cret", `{"address": "`+bAddr+`", "weight": 2}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	waitFor(t, "the added backend up", func() bool {
		_, body := apiDo(t, "GET", api+"/"+bAddr, "s3cret", "")
		return strings.Contains(body, `"state": "up"`) || strings.Contains(body, `"state":"up"`)
	})
	waitFor(t, "requests on the added backend", func() bool {
		get(t, lb.Addr, "f")
		return countInLog(t, logs[1], "f") > 0
	})

	aAddr := "127.0.0.1:" + strconv.Itoa(a.Port)
	if st, body := apiDo(t, "DELETE", api+"/"+aAddr, "s3cret", ""); st != 202 || !strings.Contains(body, "draining") {
		t.Fatalf("delete: %d %s, want 202 draining", st, body)
	}
	waitFor(t, "the deleted backend gone", func() bool {
		st, _ := apiDo(t, "GET", api+"/"+aAddr, "s3cret", "")
		return st == 404
	})
	before := countInLog(t, logs[0], "f")
	for range 20 {
		if st, _ := get(t, lb.Addr, "f"); st != 200 {
			t.Fatalf("GET after the delete: %d", st)
		}
	}
	if after := countInLog(t, logs[0], "f"); after != before {
		t.Errorf("the deleted backend got %d requests", after-before)
	}
	if st, body := apiDo(t, "GET", "http://"+admin+"/api/config", "s3cret", ""); st != 200 || !strings.Contains(body, bAddr) || strings.Contains(body, aAddr) {
		t.Errorf("config: %d %s", st, body)
	}
	// A reload re-applies the command line: the API's changes are gone.
	if st, body := apiDo(t, "POST", "http://"+admin+"/api/reload", "s3cret", ""); st != 200 {
		t.Fatalf("reload: %d %s", st, body)
	}
	if st, _ := apiDo(t, "GET", api+"/"+aAddr, "s3cret", ""); st != 200 {
		t.Errorf("after the reload, the command line's backend: %d, want it back", st)
	}
}
