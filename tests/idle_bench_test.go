package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// idleConns is how many idle keep-alive client connections BenchmarkIdleConnectionsRSS holds.
const idleConns = 10000

// idleRSSTargetMiB is the resident-memory target of issue 4 for idleConns idle connections.
const idleRSSTargetMiB = 64

// BenchmarkIdleConnectionsRSS opens idleConns keep-alive client connections to the load
// balancer, each of which sends one request, reads the answer and then stays open and idle,
// and reports the load balancer's resident memory (VmRSS) with all of them open: MiB-rss, with
// MiB-rss-before (after start-up and a few requests) and KiB-per-conn (the difference per
// connection). The target is under 64 MiB in total.
//
//	go test -run '^$' -bench IdleConnectionsRSS -benchtime 1x ./tests/
//
// It needs an open-files limit of a little over idleConns in this process and in the load
// balancer (each holds one end of every connection, plus upstream and health-check sockets);
// it raises the soft limit towards the hard one and skips when that is not enough.
func BenchmarkIdleConnectionsRSS(b *testing.B) {
	raiseNoFile(b, idleConns+1000)

	dir := b.TempDir()
	mustWriteFile(b, filepath.Join(dir, "f"), []byte("idle"))
	backend := startHTTPServer(b, dir, "-L")
	port := freePort(b)
	lb := startProc(b, buildBinary(b, "loadbalancer"), port, b.TempDir(),
		"--bind", "127.0.0.1", strconv.Itoa(port), strconv.Itoa(backend.Port), "--max-conns", "20000")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(lb.Stderr(), "backend up") {
		if time.Now().After(deadline) {
			b.Fatalf("the backend never came up:\n%s", lb.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 10 {
		if err := idleGet(lb.Addr); err != nil {
			b.Fatal(err)
		}
	}
	before := vmRSS(b, lb.Cmd.Process.Pid)

	b.ResetTimer()
	conns := make([]net.Conn, idleConns)
	b.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, idleConns)
	next := make(chan int, idleConns)
	for i := range idleConns {
		next <- i
	}
	close(next)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := idleOpen(lb.Addr)
				conns[i] = c
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// With every connection open and idle, a new client is still served.
	if err := idleGet(lb.Addr); err != nil {
		b.Fatalf("a new client with %d idle connections open: %v", idleConns, err)
	}
	// Let the load balancer's runtime settle (a GC cycle returns what the handshakes left).
	time.Sleep(2 * time.Second)
	after := vmRSS(b, lb.Cmd.Process.Pid)
	b.StopTimer()

	// The connections are still open: the load balancer has not shed them.
	for _, i := range []int{0, idleConns / 2, idleConns - 1} {
		if _, err := io.WriteString(conns[i], "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
			b.Fatalf("idle connection %d: %v", i, err)
		}
		if err := idleReadAnswer(bufio.NewReader(conns[i])); err != nil {
			b.Fatalf("idle connection %d: %v", i, err)
		}
	}

	mib := float64(after) / (1 << 20)
	b.ReportMetric(mib, "MiB-rss")
	b.ReportMetric(float64(before)/(1<<20), "MiB-rss-before")
	b.ReportMetric(float64(after-before)/1024/idleConns, "KiB-per-conn")
	if mib >= idleRSSTargetMiB {
		b.Logf("VmRSS with %d idle connections is %.1f MiB, above the %d MiB target", idleConns, mib, idleRSSTargetMiB)
	}
}

// raiseNoFile raises this process's soft open-files limit towards the hard limit (children,
// such as the load balancer, inherit it) and skips the benchmark when it cannot reach need.
func raiseNoFile(b *testing.B, need uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot read the open-files limit: %v", err)
	}
	old := lim
	// Setting it explicitly, even to the value Go raised it to at start-up, makes the
	// children inherit it instead of the original soft limit.
	lim.Cur = min(lim.Max, max(need, 2*idleConns+1000))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot raise the open-files limit to %d (hard limit %d): %v", lim.Cur, lim.Max, err)
	}
	b.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	if lim.Cur < need {
		b.Skipf("open-files limit %d (hard limit %d) is below the %d needed for %d idle connections; raise it with ulimit -Hn",
			lim.Cur, lim.Max, need, idleConns)
	}
}

// idleOpen opens a connection, makes one request on it, and leaves it open.
func idleOpen(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, "GET /f HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		return c, err
	}
	if err := idleReadAnswer(bufio.NewReaderSize(c, 256)); err != nil {
		return c, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// idleGet makes one request on a fresh connection.
func idleGet(addr string) error {
	c, err := idleOpen(addr)
	if c != nil {
		c.Close()
	}
	return err
}

// idleReadAnswer reads one response and checks it is the 200 with the file.
func idleReadAnswer(br *bufio.Reader) error {
	st, head, n, err := readResponseHead(br)
	if err != nil {
		return err
	}
	body := make([]byte, max(n, 0))
	if _, err := io.ReadFull(br, body); err != nil {
		return err
	}
	if st != 200 || string(body) != "idle" {
		return fmt.Errorf("got %q%q, want 200 idle", head, body)
	}
	return nil
}

// vmRSS returns the resident set size of process pid, from /proc/<pid>/status.
func vmRSS(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS line %q", l)
			}
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
