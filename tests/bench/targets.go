package main

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

// smallBody is what the backends answer on /small.
const smallBody = "small response from the backend\n"

// env is what every part of the harness shares: tools, the temporary directory, the backends.
type env struct {
	cfg      config
	dir      string // temporary directory: configs, logs, pid files, temp paths
	www      string // the backends' document root
	nginx    string // paths of the tools; "" when not installed
	haproxy  string
	caddy    string
	wrk      string
	user     string     // for nginx's "user" directive, when the harness runs as root
	backends []*backend // the two nginx backends, running from start to end
	// hetero is the hetero scenario's httpserver backends while it runs, otherwise nil.
	hetero []*backend
	// active is the backends the proxies start with and the counters are read from: backends,
	// or hetero while that scenario runs.
	active []*backend
	used   map[int]bool // ports handed out
	client *http.Client // for readiness checks and counters, no keep-alive
	// logDir holds the access logs of the rows that write one (ours/access-log): a directory
	// of its own under $TMPDIR or /tmp, not under dir, which is on tmpfs (/dev/shm) by default,
	// where the lines would never reach a disk. "" when no such row was asked for.
	logDir string
}

// backend is one nginx backend, or one httpserver backend of the hetero scenario.
type backend struct {
	name       string
	port       int
	proc       *proc
	uploadLog  string // nginx only
	httpserver bool   // counters come from /healthcheck, not stub_status
}

// target is a row of the tables: a proxy, or "direct", the first backend on its own.
type target struct {
	name        string
	port        int
	proc        *proc
	start       func(port int) (*proc, error) // nil for direct, which is always running
	unavailable string                        // why it cannot run at all; "" when it can
	version     string
	// scenarios lists the scenarios the row runs in; nil means every one.
	scenarios []string
	// bin and flags are ours (and base, and the variants of ours): the binary, and the flags
	// that come after the usual ones and $LB_FLAGS.
	bin   string
	flags []string
	// admin is the --admin-addr of the running row of ours (not base), whose /metrics the
	// harness scrapes during the runs; a fresh port at every start.
	admin string
	// accessLog and logFormat are the access log's path and format, for a row that writes one.
	accessLog, logFormat string
}

// runsIn reports whether t is a row of scenario key (for direct, $BASELINE decides too).
func (t *target) runsIn(key string) bool {
	return t.scenarios == nil || slices.Contains(t.scenarios, key)
}

// isOurs reports whether t is our load balancer under test (not base).
func (t *target) isOurs() bool {
	return t.name == "ours" || strings.HasPrefix(t.name, "ours/")
}

// file is t's name as a file name ("ours/peak-ewma" → "ours-peak-ewma").
func (t *target) file() string { return strings.ReplaceAll(t.name, "/", "-") }

func newEnv(cfg config) (e *env, err error) {
	// The backends spool uploads to temporary files: keep them off the disk when $TMPDIR does
	// not say otherwise.
	dir, err := "", errors.New("TMPDIR is set")
	if os.Getenv("TMPDIR") == "" {
		dir, err = os.MkdirTemp("/dev/shm", "lb-bench-")
	}
	if err != nil {
		if dir, err = os.MkdirTemp("", "lb-bench-"); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	e = &env{cfg: cfg, dir: dir, www: filepath.Join(dir, "www"), used: map[int]bool{},
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if cfg.wantsAccessLog() {
		if e.logDir, err = os.MkdirTemp("", "lb-bench-log-"); err != nil {
			return nil, err
		}
		logDir := e.logDir
		defer func() {
			if err != nil {
				os.RemoveAll(logDir)
			}
		}()
	}
	e.nginx, _ = lookTool("nginx")
	e.haproxy, _ = lookTool("haproxy")
	e.caddy, _ = lookTool("caddy")
	e.wrk, _ = lookTool("wrk")
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			e.user = u.Username
		}
	}
	if err := os.MkdirAll(e.www, 0o755); err != nil {
		return nil, err
	}
	big := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(e.www, "1m"), big, 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

// missing lists the tools that are not installed, by Debian package name.
func (e *env) missing() []string {
	var m []string
	for _, t := range []struct{ pkg, path string }{{"haproxy", e.haproxy}, {"nginx", e.nginx}, {"caddy", e.caddy}, {"wrk", e.wrk}} {
		if t.path == "" {
			m = append(m, t.pkg)
		}
	}
	return m
}

// freePort asks the kernel for a free port on 127.0.0.1 (and never hands the same one out twice).
func (e *env) freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !e.used[port] {
			e.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}

// render writes templates/<name>.tmpl, filled in with data, to the temporary directory.
func (e *env) render(name, file string, data any) (string, error) {
	path := filepath.Join(e.dir, file)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := templates.ExecuteTemplate(f, name+".tmpl", data); err != nil {
		f.Close()
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	return path, f.Close()
}

// nginxTempDirs creates the parent of the temp paths an nginx config names (nginx creates
// only the last level itself).
func (e *env) nginxTempDirs(prefix string) error {
	return os.MkdirAll(filepath.Join(e.dir, prefix+"-tmp"), 0o755)
}

// startBackends starts the two nginx backends and waits until both answer.
func (e *env) startBackends(ctx context.Context) error {
	for i := 1; i <= 2; i++ {
		port, err := e.freePort()
		if err != nil {
			return err
		}
		b := &backend{name: "backend" + strconv.Itoa(i), port: port}
		b.uploadLog = filepath.Join(e.dir, b.name+".upload.log")
		if err := e.nginxTempDirs(b.name); err != nil {
			return err
		}
		conf, err := e.render("backend.conf", b.name+".conf", map[string]any{
			"Name": b.name, "Port": port, "Dir": e.dir, "Root": e.www, "User": e.user,
			"SmallBody": strings.ReplaceAll(smallBody, "\n", `\n`),
		})
		if err != nil {
			return err
		}
		p, err := startProc(b.name, []string{e.nginx, "-p", e.dir + "/", "-e", filepath.Join(e.dir, b.name+".error.log"), "-c", conf},
			nil, e.dir, filepath.Join(e.dir, b.name+".out"))
		if err != nil {
			return err
		}
		b.proc = p
		e.backends = append(e.backends, b)
		if err := e.waitReady(ctx, p, port); err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
	}
	e.active = e.backends
	return nil
}

func (e *env) stopBackends() {
	e.stopHetero()
	for _, b := range e.backends {
		if b.proc != nil {
			b.proc.stop()
		}
	}
}

// heteroBackendsFlags are the flags of every hetero backend, besides its port and --delay:
// counters and /healthcheck for the load balancers' classic health check, loopback only.
var heteroBackendsFlags = []string{"-L", "--bind", "127.0.0.1"}

// startHetero starts one httpserver per $HETERO_DELAYS entry, each with that --delay, serving
// a directory that holds "small" (smallBody); waits until each answers, and makes them the
// active backends. On an error it stops those it started.
func (e *env) startHetero(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			e.stopHetero()
		}
	}()
	root := filepath.Join(e.dir, "hetero-www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "small"), []byte(smallBody), 0o644); err != nil {
		return err
	}
	for i, d := range e.cfg.heteroDelays {
		port, err := e.freePort()
		if err != nil {
			return err
		}
		b := &backend{name: "server" + strconv.Itoa(i+1), port: port, httpserver: true}
		argv := append([]string{e.cfg.serverBin, strconv.Itoa(port)}, heteroBackendsFlags...)
		argv = append(argv, "--delay", d.String())
		p, err := startProc(b.name, argv, nil, root, filepath.Join(e.dir, b.name+".log"))
		if err != nil {
			return err
		}
		b.proc = p
		e.hetero = append(e.hetero, b)
		if err := e.waitReady(ctx, p, port); err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
	}
	e.active = e.hetero
	return nil
}

// stopHetero stops the hetero backends, if running, and makes the nginx backends active again.
func (e *env) stopHetero() {
	for _, b := range e.hetero {
		b.proc.stop()
	}
	e.hetero = nil
	e.active = e.backends
}

// waitReady polls GET /small on port until it answers smallBody, p exits, or 15 s pass.
func (e *env) waitReady(ctx context.Context, p *proc, port int) error {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/small"
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !p.alive() {
			return &startError{fmt.Sprintf("exited (%v)", p.waitErr), p.logTail(15)}
		}
		resp, err := e.client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == smallBody {
				return nil
			}
			err = fmt.Errorf("GET /small: %s %q", resp.Status, body)
		}
		last = err
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return &startError{fmt.Sprintf("not ready after 15s (%v)", last), p.logTail(15)}
}

// startError is a process that did not come up: what happened, and the end of its log.
type startError struct {
	what, log string
}

// Error is one line: what happened and the log's last line, which usually says why.
func (e *startError) Error() string {
	lines := strings.Split(e.log, "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return e.what + ": " + last
	}
	return e.what
}

// detail is the error with the end of the log, for the console.
func (e *startError) detail() string {
	return e.what + "; its log ends:\n" + indent(e.log)
}

// errorDetail is err, with the end of the log if it is a startError.
func errorDetail(err error) string {
	var se *startError
	if errors.As(err, &se) {
		return se.detail()
	}
	return err.Error()
}

// targets lists the rows, in turn order: direct first, then the proxies.
func (e *env) targets() []*target {
	b0 := e.backends[0]
	ts := []*target{{name: "direct", port: b0.port, proc: b0.proc, version: toolVersion(e.nginx)}}
	// ours and base run everywhere but in hetero, which has rows of ours for its policies.
	notHetero := slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return s == "hetero" })
	for _, name := range e.cfg.proxies {
		t := &target{name: name}
		t.start = func(port int) (*proc, error) { return e.startLB(t, port) }
		switch name {
		case "ours":
			t.bin, t.scenarios = e.cfg.lbBin, notHetero
			t.findBinary(e.cfg.lbBin, "run `make build` first, or set LB_BIN")
		case "base":
			t.bin, t.scenarios = e.cfg.baseBin, notHetero
			t.findBinary(e.cfg.baseBin, "BASE_BIN")
		case "haproxy":
			t.start = e.startHAProxy
			if e.haproxy == "" {
				t.unavailable = "not installed"
			} else {
				t.version = toolVersion(e.haproxy)
			}
		case "nginx":
			t.start = e.startNginx
			t.version = toolVersion(e.nginx)
		case "caddy":
			t.start = e.startCaddy
			if e.caddy == "" {
				t.unavailable = "not installed"
			} else {
				t.version = toolVersion(e.caddy)
			}
		default:
			v := variantNamed(name)
			t.bin, t.flags, t.scenarios = e.cfg.lbBin, v.flags, v.scenarios
			if v.accessLog != "" {
				t.accessLog, t.logFormat = filepath.Join(e.logDir, t.file()+".log"), v.accessLog
			}
			t.findBinary(e.cfg.lbBin, "run `make build` first, or set LB_BIN")
		}
		// A row for none of the scenarios that run (a variant of ours) is left out.
		if !slices.ContainsFunc(e.cfg.scenarios, t.runsIn) {
			continue
		}
		ts = append(ts, t)
	}
	return ts
}

// findBinary sets t's version from the build of ours at bin, or marks t unavailable with hint.
func (t *target) findBinary(bin, hint string) {
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		t.unavailable = bin + " not found (" + hint + ")"
		return
	}
	t.version = toolVersion(bin)
}

func (e *env) backendPorts() []int {
	var ps []int
	for _, b := range e.active {
		ps = append(ps, b.port)
	}
	return ps
}

// healthChecks reports whether the peers run active health checks against the backends: only
// in front of the hetero backends (see doc.go).
func (e *env) healthChecks() bool { return e.hetero != nil }

// lbFlags is the command line of a row of ours between the binary and the ports: -N high
// enough never to throttle, health-check rounds on the 3 s tick only (-R so high that request
// counts never trigger one, as the peers run no request-triggered checks), warnings only; then
// $LB_FLAGS, then the row's own flags (a variant's), which override, and its access log. Not
// --admin-addr, which startLB adds for the rows of ours (not base) with a port of the moment.
func (e *env) lbFlags(t *target) []string {
	args := []string{"-N", "4096", "-R", "1000000", "--bind", "127.0.0.1", "--log-level", "warn"}
	args = append(args, e.cfg.lbFlags...)
	args = append(args, t.flags...)
	if t.accessLog != "" {
		args = append(args, "--access-log", t.accessLog, "--access-log-format", t.logFormat)
	}
	return args
}

// startLB starts a row of ours (or base) on port, in front of the active backends. A row of
// ours also gets an admin listener on a free port (--admin-addr, last, so that it wins), whose
// /metrics measure scrapes; base, which may predate the flag, runs without.
func (e *env) startLB(t *target, port int) (*proc, error) {
	args := append([]string{t.bin}, e.lbFlags(t)...)
	t.admin = ""
	if t.isOurs() {
		ap, err := e.freePort()
		if err != nil {
			return nil, err
		}
		t.admin = "127.0.0.1:" + strconv.Itoa(ap)
		args = append(args, "--admin-addr", t.admin)
	}
	args = append(args, strconv.Itoa(port))
	for _, p := range e.backendPorts() {
		args = append(args, strconv.Itoa(p))
	}
	return startProc(t.name, args, nil, e.dir, filepath.Join(e.dir, t.file()+".log"))
}

func (e *env) startHAProxy(port int) (*proc, error) {
	conf, err := e.render("haproxy.cfg", "haproxy.cfg", map[string]any{
		"Port": port, "Backends": e.backendPorts(), "Check": e.healthChecks()})
	if err != nil {
		return nil, err
	}
	return startProc("haproxy", []string{e.haproxy, "-db", "-f", conf}, nil, e.dir, filepath.Join(e.dir, "haproxy.log"))
}

func (e *env) startNginx(port int) (*proc, error) {
	if err := e.nginxTempDirs("nginx"); err != nil {
		return nil, err
	}
	conf, err := e.render("nginx.conf", "nginx.conf", map[string]any{
		"Port": port, "Backends": e.backendPorts(), "Dir": e.dir, "User": e.user})
	if err != nil {
		return nil, err
	}
	return startProc("nginx", []string{e.nginx, "-p", e.dir + "/", "-e", filepath.Join(e.dir, "nginx.error.log"), "-c", conf},
		nil, e.dir, filepath.Join(e.dir, "nginx.log"))
}

func (e *env) startCaddy(port int) (*proc, error) {
	home := filepath.Join(e.dir, "caddy-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	conf, err := e.render("Caddyfile", "Caddyfile", map[string]any{
		"Port": port, "Backends": e.backendPorts(), "Dir": e.dir, "Check": e.healthChecks()})
	if err != nil {
		return nil, err
	}
	// Caddy keeps its state under $HOME and the XDG directories: all inside the temp directory.
	envv := []string{"GOMAXPROCS=2", "HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home}
	return startProc("caddy", []string{e.caddy, "run", "--config", conf, "--adapter", "caddyfile"},
		envv, e.dir, filepath.Join(e.dir, "caddy.log"))
}

// launch starts t on a fresh port and waits until it proxies GET /small.
func (e *env) launch(ctx context.Context, t *target) error {
	if t.start == nil {
		return nil
	}
	port, err := e.freePort()
	if err != nil {
		return err
	}
	p, err := t.start(port)
	if err != nil {
		return err
	}
	if err := e.waitReady(ctx, p, port); err != nil {
		p.stop()
		return err
	}
	t.port, t.proc = port, p
	return nil
}

// halt stops t if the harness started it.
func (t *target) halt() {
	if t.start != nil && t.proc != nil {
		t.proc.stop()
		t.proc = nil
	}
}

// counters is what a backend says it has served so far.
type counters struct {
	// requests counts every request, the harness's readings of the counters included: one
	// each, which the caller subtracts. So are the proxies' health checks (one per backend every
	// few seconds), which are not subtracted.
	requests int64
	// accepts counts the connections the backend accepted, each reading's included; -1 when
	// the backend does not say (httpserver).
	accepts int64
}

// readCounters reads the active backends' counters: nginx's stub_status, or httpserver's
// /healthcheck, whose entries count the requests before it (and it then counts itself).
func (e *env) readCounters() ([]counters, error) {
	var out []counters
	for _, b := range e.active {
		path := "/status"
		if b.httpserver {
			path = "/healthcheck"
		}
		resp, err := e.client.Get("http://127.0.0.1:" + strconv.Itoa(b.port) + path)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		c, err := parseCounters(string(body), b.httpserver)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// parseCounters reads nginx's stub_status
//
//	Active connections: 2
//	server accepts handled requests
//	 5 5 6
//
// or, for httpserver, the /healthcheck body "<errors>\n<entries>".
func parseCounters(body string, httpserver bool) (counters, error) {
	lines := strings.Split(body, "\n")
	if httpserver {
		if len(lines) < 2 {
			return counters{}, fmt.Errorf("unexpected /healthcheck answer %q", body)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(lines[1]), 10, 64)
		if err != nil {
			return counters{}, fmt.Errorf("unexpected /healthcheck answer %q", body)
		}
		return counters{requests: n, accepts: -1}, nil
	}
	if len(lines) < 3 {
		return counters{}, fmt.Errorf("unexpected stub_status %q", body)
	}
	f := strings.Fields(lines[2])
	if len(f) != 3 {
		return counters{}, fmt.Errorf("unexpected stub_status %q", body)
	}
	var c counters
	c.accepts, _ = strconv.ParseInt(f[0], 10, 64)
	c.requests, _ = strconv.ParseInt(f[2], 10, 64)
	return c, nil
}

// uploadLogSizes is the current length of each backend's upload log.
func (e *env) uploadLogSizes() []int64 {
	var out []int64
	for _, b := range e.active {
		var n int64
		if st, err := os.Stat(b.uploadLog); err == nil {
			n = st.Size()
		}
		out = append(out, n)
	}
	return out
}

// uploadBytesSince sums the body bytes of the successful uploads each backend logged after the
// given log offsets.
func (e *env) uploadBytesSince(offsets []int64) []int64 {
	out := make([]int64, len(e.active))
	for i, b := range e.active {
		if b.uploadLog == "" {
			continue
		}
		f, err := os.Open(b.uploadLog)
		if err != nil {
			continue
		}
		if _, err := f.Seek(offsets[i], io.SeekStart); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				// $content_length $request_length $status
				fs := strings.Fields(sc.Text())
				if len(fs) == 3 && fs[2] == "200" {
					n, _ := strconv.ParseInt(fs[0], 10, 64)
					out[i] += n
				}
			}
		}
		f.Close()
	}
	return out
}

// toolVersion is the first line a program prints about its version.
func toolVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var args []string
	switch filepath.Base(path) {
	case "nginx", "haproxy", "wrk":
		args = []string{"-v"}
	case "caddy":
		args = []string{"version"}
	default:
		args = []string{"--version"}
	}
	out, _ := exec.CommandContext(ctx, path, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimPrefix(line, "nginx version: ")
	line = strings.TrimPrefix(line, "HAProxy version ")
	if i := strings.Index(line, " - https://"); i > 0 {
		line = line[:i]
	}
	if i := strings.Index(line, " Copyright"); i > 0 {
		line = line[:i]
	}
	if f := strings.Fields(line); filepath.Base(path) == "caddy" && len(f) > 0 {
		line = f[0]
	}
	return strings.TrimSpace(line)
}

func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
