package tests

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The demo behind `make run` (tests/demo.sh).

// demoTimeout bounds a whole run of the demo in these tests.
const demoTimeout = 2 * time.Minute

// demo is a run of tests/demo.sh with the test's binaries.
type demo struct {
	cmd            *exec.Cmd
	stdout, stderr string        // the files its output goes to
	done           chan struct{} // closed when it has exited and err is set
	err            error
}

// startDemo starts tests/demo.sh with LB_PORT=port, in a process group of its own that is
// killed when ctx ends and at the test's clean-up, so no backend outlives the test.
func startDemo(ctx context.Context, t *testing.T, port string) *demo {
	t.Helper()
	for _, tool := range []string{"bash", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	bin := filepath.Dir(buildBinary(t, "loadbalancer"))
	buildBinary(t, "httpserver") // into the same directory
	d := &demo{
		cmd:    exec.CommandContext(ctx, "bash", "demo.sh", bin),
		stdout: filepath.Join(t.TempDir(), "stdout"),
		stderr: filepath.Join(t.TempDir(), "stderr"),
		done:   make(chan struct{}),
	}
	d.cmd.Env = append(os.Environ(), "LB_PORT="+port)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Cancel = func() error { return syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := os.Create(d.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close() // the demo has its own descriptor
	stderr, err := os.Create(d.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	d.cmd.Stdout, d.cmd.Stderr = stdout, stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	})
	return d
}

// output returns what the demo has written so far to stdout and to stderr.
func (d *demo) output() (stdout, stderr string) {
	o, _ := os.ReadFile(d.stdout)
	e, _ := os.ReadFile(d.stderr)
	return string(o), string(e)
}

// exitCode waits for the demo to exit and returns its exit status (-1 if a signal ended it).
func (d *demo) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(demoTimeout):
		t.Fatalf("the demo still runs after %v", demoTimeout)
	}
	var ee *exec.ExitError
	if d.err != nil && !errors.As(d.err, &ee) {
		t.Fatal(d.err)
	}
	return d.cmd.ProcessState.ExitCode()
}

// A port the load balancer cannot listen on stops the demo at once with a clear message, before
// the banner and before any backend starts.
func TestDemoPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, tt := range []struct {
		name, port string
		want       []string
	}{
		{"port in use", taken, []string{"make run: port " + taken + " is already in use", "LB_PORT="}},
		{"not a port", "eighty", []string{"make run: LB_PORT=eighty is not a port number (1-65535)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The check comes before anything starts: a demo still running after this is
			// killed (its exit then reads -1).
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d := startDemo(ctx, t, tt.port)
			code := d.exitCode(t)
			stdout, stderr := d.output()
			if code != 1 || stdout != "" {
				t.Errorf("got exit %d and stdout %q, want exit 1 and no banner; stderr:\n%s", code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// The demo serves on LB_PORT, on 127.0.0.1 only (the backends too), and Ctrl-C stops it all.
func TestDemoRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	port := freePort(t)
	d := startDemo(ctx, t, strconv.Itoa(port))

	var banner string
	for deadline := time.Now().Add(demoTimeout); ; time.Sleep(50 * time.Millisecond) {
		stdout, stderr := d.output()
		if strings.Contains(stdout, "Press Ctrl-C") {
			banner = stdout
			break
		}
		select {
		case <-d.done:
			t.Fatalf("the demo exited (%v) before its banner; stdout:\n%s\nstderr:\n%s", d.err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner after %v; stdout:\n%s\nstderr:\n%s", demoTimeout, stdout, stderr)
		}
	}
	_, rest, _ := strings.Cut(banner, "in front of backends on ports ")
	list, _, _ := strings.Cut(rest, ".\n")
	backends := strings.Fields(list)
	if !strings.Contains(banner, "http://127.0.0.1:"+strconv.Itoa(port)+"/") || len(backends) != 3 {
		t.Fatalf("banner %q: want the load balancer on port %d and three backends", banner, port)
	}
	lbAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if st, body := get(t, lbAddr, "hello"); st != 200 || string(body) != "hello through the load balancer\n" {
		t.Fatalf("GET /hello: got %d %q", st, body)
	}
	// The stats page's address is in the banner, and the admin listener counts the request.
	_, rest, _ = strings.Cut(banner, "Stats page: http://")
	adminAddr, _, _ := strings.Cut(rest, "/")
	_, adminPort, err := net.SplitHostPort(adminAddr)
	if err != nil {
		t.Fatalf("banner %q: no stats page address", banner)
	}
	waitFor(t, "the request counted on the admin listener", func() bool {
		st, body := adminGet(t, adminAddr, "/metrics")
		return st == 200 && strings.Contains(body, `loadbalancer_requests_total{backend=`) &&
			strings.Contains(body, `code="2xx",method="GET"} 1`)
	})
	backends = append(backends, adminPort)

	// Bound to 127.0.0.1, not to every address: another loopback address is refused, where a
	// listener on every address (the control) accepts.
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	control, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(all.Addr().(*net.TCPAddr).Port)), 5*time.Second)
	all.Close()
	if err != nil {
		t.Logf("127.0.0.2 unreachable (%v): not checking what the demo binds", err)
	} else {
		control.Close()
		for _, p := range append([]string{strconv.Itoa(port)}, backends...) {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", p), 5*time.Second); err == nil {
				c.Close()
				t.Errorf("port %s accepts on 127.0.0.2: the demo listens beyond 127.0.0.1", p)
			}
		}
	}

	// Ctrl-C: the terminal sends SIGINT to the whole foreground group.
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	d.exitCode(t)
	for _, p := range append([]string{strconv.Itoa(port)}, backends...) {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", p), 5*time.Second); err == nil {
			c.Close()
			t.Errorf("port %s still accepts after Ctrl-C", p)
		}
	}
}
