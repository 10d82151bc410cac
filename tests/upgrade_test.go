package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// keepAliveGet sends GET /f on *c (dialling when nil) and reads the answer. A connection the
// load balancer closed while it was idle, before any byte of an answer (it drained), is what
// every HTTP client retries on a new connection: that is a retry, not a failure. It returns
// whether the request was answered 200 with the whole body.
func keepAliveGet(addr string, c *net.Conn, br **bufio.Reader, retries *int) error {
	for attempt := 0; ; attempt++ {
		fresh := *c == nil
		if fresh {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
			*c, *br = nc, bufio.NewReader(nc)
		}
		conn := *c
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		_, werr := io.WriteString(conn, "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n")
		var st int
		var hd string
		var err error
		if werr == nil {
			st, hd, _, err = readResponseHead(*br)
		}
		if werr != nil || err != nil {
			conn.Close()
			*c = nil
			closedIdle := werr != nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
			if !fresh && closedIdle && attempt == 0 {
				*retries++
				continue
			}
			return fmt.Errorf("status %d: write %v, read %v", st, werr, err)
		}
		body := make([]byte, 5)
		if _, err := io.ReadFull(*br, body); err != nil || st != 200 || string(body) != "hello" {
			conn.Close()
			*c = nil
			return fmt.Errorf("status %d, body %q: %v", st, body, err)
		}
		if strings.Contains(strings.ToLower(hd), "connection: close") {
			conn.Close()
			*c = nil
		}
		return nil
	}
}

// SIGUSR2 under load: the running process starts the binary at its path again, hands it the
// listening sockets, and drains once the new one is ready; no request fails, whether on
// keep-alive connections, on a new connection each, a 20 MiB download or an upload.
func TestUpgradeUnderLoadLosesNothing(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16) // 20 MiB
	bigSum := sha256.Sum256(big)
	mustWriteFile(t, filepath.Join(dir, "big"), big)
	upload := bytes.Repeat([]byte("u"), 1<<20)
	a, b := startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")
	// The binary at a path of its own, where an upgrade would install the new one.
	bin := filepath.Join(t.TempDir(), "loadbalancer")
	data, err := os.ReadFile(buildBinary(t, "loadbalancer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	old := startLBBinary(t, bin, ports(a, b), "--admin-addr", admin, "-N", "64", "-R", "1000000")
	waitBackendsUp(t, old, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Each goroutine counts in its own element; they are added up after wg.Wait.
	type tally struct {
		ok, retried int
		failures    []string
	}
	tallies := make([]tally, 8)
	hc := &http.Client{Timeout: 60 * time.Second}
	for i := range tallies {
		tl := &tallies[i]
		wg.Go(func() {
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				r := 0
				switch {
				case i < 4:
					err = keepAliveGet(old.Addr, &c, &br, &r)
				case i == 6: // 20 MiB downloads, checked whole
					err = download(hc, old.Addr, bigSum)
				case i == 7: // 1 MiB uploads
					err = uploadTo(hc, old.Addr, upload)
				default:
					var raw []byte
					raw, err = closeGet(old.Addr)
					if err == nil && (!bytes.HasPrefix(raw, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(raw, []byte("hello"))) {
						err = fmt.Errorf("answer %q", raw)
					}
				}
				tl.retried += r
				if err != nil {
					tl.failures = append(tl.failures, err.Error())
				} else {
					tl.ok++
				}
			}
		})
	}

	time.Sleep(500 * time.Millisecond)
	old.Signal(syscall.SIGUSR2)
	if code, err := old.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("the old process: exit %d, %v\n%s", code, err, old.Stderr())
	}
	m := regexp.MustCompile(`upgrade: new process started.* pid=(\d+)`).FindStringSubmatch(old.Stderr())
	if m == nil {
		t.Fatalf("no new process in the log:\n%s", old.Stderr())
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	})
	time.Sleep(500 * time.Millisecond) // the new process alone
	close(stop)
	wg.Wait()
	ok, retried := 0, 0
	var failures []string
	for _, tl := range tallies {
		ok, retried, failures = ok+tl.ok, retried+tl.retried, append(failures, tl.failures...)
	}

	t.Logf("%d requests ok, %d retried after an idle connection was closed, %d failed", ok, retried, len(failures))
	for i, f := range failures {
		if i == 10 {
			break
		}
		t.Errorf("request failed: %s", f)
	}
	if ok < 100 {
		t.Errorf("only %d requests went through", ok)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the new process %d is not running: %v", pid, err)
	}
	if st, _ := adminGet(t, admin, "/readyz"); st != 200 {
		t.Errorf("the new process's admin listener: /readyz %d", st)
	}

	// A second upgrade, from the process the first one started: it hands over in turn (the
	// first upgrade's environment must not mislead the third process).
	_ = syscall.Kill(pid, syscall.SIGUSR2)
	waitFor(t, "the second process to hand over and exit", func() bool { return syscall.Kill(pid, 0) != nil })
	all := regexp.MustCompile(`upgrade: new process started.* pid=(\d+)`).FindAllStringSubmatch(old.Stderr(), -1)
	if len(all) != 2 {
		t.Fatalf("want two upgrades in the log, got %d:\n%s", len(all), old.Stderr())
	}
	third, _ := strconv.Atoi(all[1][1])
	t.Cleanup(func() { _ = syscall.Kill(third, syscall.SIGKILL) })
	if st, _ := get(t, old.Addr, "f"); st != 200 {
		t.Errorf("GET through the third process: %d", st)
	}
	if syscall.Kill(third, 0) != nil {
		t.Errorf("the third process %d is not running", third)
	}
	_ = syscall.Kill(third, syscall.SIGTERM)
}

// download GETs /big and checks it whole.
func download(hc *http.Client, addr string, sum [32]byte) error {
	resp, err := hc.Get("http://" + addr + "/big")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(h.Sum(nil), sum[:]) {
		return fmt.Errorf("download: status %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	return nil
}

// uploadTo PUTs body to /up.
func uploadTo(hc *http.Client, addr string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/up", bytes.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload: status %d", resp.StatusCode)
	}
	return nil
}

// closeGet sends GET /f with Connection: close on a new connection and reads until the close.
func closeGet(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}
