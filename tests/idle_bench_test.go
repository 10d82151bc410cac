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

// idleRSSTargetMiB is the resident-memory target for idleConns idle connections (issue 15's,
// after issue 4's 64 MiB).
const idleRSSTargetMiB = 40

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
	lb := startIdleLB(b)
	before := vmRSS(b, lb.Cmd.Process.Pid)

	b.ResetTimer()
	conns := openIdle(b, lb, idleConns)
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

// floodConns is how many connections BenchmarkFloodRSS opens at once and then closes.
const floodConns = 12000

// BenchmarkFloodRSS opens floodConns connections, each with one request, closes them all, and
// follows the load balancer's resident memory for up to 30 s: MiB-rss-before (before the
// flood), MiB-rss-flood (with all of them open), MiB-rss-after (when it is back under twice the
// value before, or at 30 s) and s-to-recover (how long that took; 30 when it did not). The
// target is back under twice the value before within 30 s.
//
//	go test -run '^$' -bench FloodRSS -benchtime 1x ./tests/
func BenchmarkFloodRSS(b *testing.B) {
	raiseNoFile(b, floodConns+1000)
	lb := startIdleLB(b)
	before := vmRSS(b, lb.Cmd.Process.Pid)
	b.ResetTimer()
	conns := openIdle(b, lb, floodConns)
	time.Sleep(time.Second)
	flood := vmRSS(b, lb.Cmd.Process.Pid)
	for _, c := range conns {
		c.Close()
	}
	start := time.Now()
	after := flood
	for time.Since(start) < 30*time.Second {
		time.Sleep(500 * time.Millisecond)
		if after = vmRSS(b, lb.Cmd.Process.Pid); after < 2*before {
			break
		}
	}
	took := time.Since(start)
	b.StopTimer()
	// The load balancer still serves.
	if err := idleGet(lb.Addr); err != nil {
		b.Fatalf("after the flood: %v", err)
	}
	b.ReportMetric(float64(before)/(1<<20), "MiB-rss-before")
	b.ReportMetric(float64(flood)/(1<<20), "MiB-rss-flood")
	b.ReportMetric(float64(after)/(1<<20), "MiB-rss-after")
	b.ReportMetric(took.Seconds(), "s-to-recover")
	if after >= 2*before {
		b.Logf("VmRSS 30 s after the flood is %.1f MiB, not back under twice the %.1f MiB before", float64(after)/(1<<20), float64(before)/(1<<20))
	}
}

// startIdleLB starts a backend and the load balancer in front of it, for connection floods.
func startIdleLB(b *testing.B) *Proc {
	b.Helper()
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
	return lb
}

// openIdle opens n keep-alive connections to lb, 32 at a time, each served one request and left
// open and idle; they are closed when the benchmark ends.
func openIdle(b *testing.B, lb *Proc, n int) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, n)
	b.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := range n {
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
	return conns
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
