// Command loadbalancer is an HTTP/1.1 load balancer: it listens on one port and forwards each
// request to the least-loaded live backend, with at most N requests in flight, health-checking
// the backends at start-up, every few seconds and after every R requests.
//
//	loadbalancer [-N connections] [-R requests] [flags] PORT SERVER[@WEIGHT] [SERVER ...]
//	loadbalancer --config FILE [--check] [flags] [PORT [SERVER[@WEIGHT] ...]]
//
// See --help for every flag, and cmd/CONTRACT.md for the classic contract it keeps.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/loadbalancer/loadbalancer/actors/lb"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// version is set at build time with -ldflags "-X main.version=..."; "dev" means it was not
// (go build, go install), and buildVersion falls back to what the Go toolchain recorded.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it returns the exit status (2 for bad arguments, 1 for errors in
// the --config file only, for any error with --check, or when the load balancer cannot start, 0
// after --help, --version, a --check that found nothing wrong, or a signal). The help and the version go to
// stdout, everything else to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stdout)
	var probs problems
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, "loadbalancer", fullVersion())
		return 0
	case errors.As(err, &probs) && (opts.checkOnly || opts.configPath != ""):
		// One problem a line: the file's at FILE:LINE:COL, the command line's after them.
		for _, p := range probs {
			if p.file == "" {
				fmt.Fprint(stderr, "loadbalancer: ")
			}
			fmt.Fprintln(stderr, p)
		}
		if opts.checkOnly || probs.inFileOnly() {
			return 1
		}
		fmt.Fprint(stderr, usageLine)
		fmt.Fprintln(stderr, "Run 'loadbalancer --help' for every flag.")
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "loadbalancer: %v\n%s", err, usageLine)
		fmt.Fprintln(stderr, "Run 'loadbalancer --help' for every flag.")
		return 2
	}
	if opts.checkOnly {
		name, plural := "loadbalancer", "s"
		if opts.configPath != "" {
			name = opts.configPath
		}
		if len(opts.backends) == 1 {
			plural = ""
		}
		fmt.Fprintf(stdout, "%s: ok (%d backend%s, listen %s)\n", name, len(opts.backends), plural,
			net.JoinHostPort(opts.bind, strconv.Itoa(opts.port)))
		return 0
	}
	log := newLogger(opts, stderr)
	if opts.file != nil {
		for _, key := range opts.file.overridden {
			log.Debug("config key overridden by the command line", "file", opts.configPath, "key", key)
		}
	}
	uuid.EnableRandPool() // X-Request-ID without a crypto/rand read and an allocation per request
	if opts.pprofAddr != "" {
		if err := servePprof(opts.pprofAddr, log); err != nil {
			if os.Getenv(envParent) == "" {
				fmt.Fprintf(stderr, "loadbalancer: --pprof-addr: %v\n", err)
				return 1
			}
			// An upgrade's new process: the old one holds the port until it has drained.
			log.Warn("no profile server in this upgraded process: the old one holds its port", "err", err)
		}
	}

	// No TCP keep-alive probes on client connections: the idle and body timeouts already end
	// dead ones, and enabling them costs three setsockopt calls per accepted connection. A
	// tunnel (after 101), which has no deadlines, turns them on for its two connections.
	lc := net.ListenConfig{KeepAlive: -1}
	// An upgrade's new process takes over the old one's socket (see upgrade.go).
	ln, err := inheritedProxyListener()
	if err == nil && ln == nil {
		ln, err = lc.Listen(context.Background(), "tcp", net.JoinHostPort(opts.bind, fmt.Sprint(opts.port)))
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadbalancer: cannot listen: %v\n", err)
		return 1
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()

	cfg := opts.config(ln, log)
	// The event loops never look a name up: backends given by name are resolved here, once.
	if cfg.Acceptor.Forwarder.Resolved, err = resolveBackends(cfg.Dispatcher.Backends); err != nil {
		fmt.Fprintf(stderr, "loadbalancer: %v\n", err)
		return 1
	}
	if cfg.Acceptor.RawWait {
		// Each event loop keeps its P even while it sleeps in epoll_wait (no system-call
		// bookkeeping, no P hand-offs per wait), so the loops get Ps of their own on top of the
		// ones the rest of the process (health checks, timers, the collector) runs on.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + cfg.Acceptor.Loops)
	}
	adminLn, err := listenAdmin(opts)
	if err != nil {
		fmt.Fprintf(stderr, "loadbalancer: %v\n", err)
		return 1
	}
	alog, err := startAccessLog(opts, system, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "loadbalancer: --access-log: %v\n", err)
		return 1
	}
	loopsDone := make(chan struct{})
	cfg.Acceptor.Stopped = loopsDone
	stopSignals := make(chan struct{})
	defer close(stopSignals)
	reopenOnUSR1(system, alog, log, stopSignals)
	root := system.Root.Spawn(lb.Props(cfg))
	// Every configuration change (SIGHUP, the runtime API) runs on the controller's goroutine.
	ctl := newController(&reloader{args: args, cur: opts, system: system, root: root, log: log}, stopSignals)
	reloadOnHUP(ctl, stopSignals)
	noUpgrade := make(chan struct{}) // closed when the drain begins: no upgrade from then on
	up := &upgrader{exe: executable(), args: args, ln: ln, adminLn: adminLn, log: log, handedOver: make(chan bool, 1)}
	upgradeOnUSR2(up, noUpgrade)
	adm, err := startAdmin(opts, adminLn, system, root, cfg, ln.Addr().String(), alog, ctl, log)
	if err != nil {
		fmt.Fprintf(stderr, "loadbalancer: %v\n", err)
		_ = system.Root.StopFuture(root).Wait()
		alog.close(system, loopsDone, log)
		return 1
	}
	addrs := make([]string, len(cfg.Dispatcher.Backends))
	for i, b := range cfg.Dispatcher.Backends {
		addrs[i] = b.Addr
	}
	attrs := []any{"addr", ln.Addr().String(), "backends", addrs, "n", opts.n, "r", opts.r,
		"health_check", opts.check.Kind.String(), "policy", opts.policy.Name, "version", fullVersion()}
	if opts.configPath != "" {
		attrs = append(attrs, "config", opts.configPath)
	}
	log.Info("listening", attrs...)
	// Last: an upgrade's new process tells the old one to go only once nothing here can fail.
	takeOver(system, root, opts.healthTimeout+5*time.Second, log)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	sig := <-sigs
	close(noUpgrade)
	if <-up.handedOver && adm != nil {
		adm.Close() // the new process serves the admin socket from now on
		adm = nil
	}
	log.Info("draining", "signal", sig.String(), "drain_timeout", opts.drainTimeout.String())

	done := reply.New(system, 1)
	defer done.Close()
	deadline := time.Now().Add(opts.drainTimeout)
	system.Root.Send(root, &messages.Drain{Deadline: deadline, ReplyTo: done.PID()})
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	select {
	case <-done.C:
		log.Info("drained")
	case <-ctx.Done():
		log.Warn("drain timeout; closing remaining connections")
	case sig := <-sigs:
		log.Warn("second signal; stopping now", "signal", sig.String())
	}
	if adm != nil {
		adm.Close()
	}
	_ = system.Root.StopFuture(root).Wait()
	alog.close(system, loopsDone, log)
	log.Info("stopped")
	return 0
}

// buildVersion is the version --version prints after the program's name: the one make set,
// or else what the Go toolchain recorded in the binary (bi, nil when there is none): the
// module's version, the VCS revision and whether the tree was modified, when recorded (go
// build -buildvcs=false records none), and the Go version.
func buildVersion(v string, bi *debug.BuildInfo) string {
	if v != "dev" {
		return v
	}
	goVersion := runtime.Version()
	if bi == nil {
		return "(devel), " + goVersion
	}
	if bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	mod := bi.Main.Version
	if mod == "" {
		mod = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	out := mod
	// A pseudo-version (v0.0.0-20260101000000-0123456789ab+dirty) names the commit already.
	if rev = rev[:min(len(rev), 12)]; rev != "" && !strings.Contains(mod, rev) {
		out += ", commit " + rev
		if modified == "true" {
			out += " (modified)"
		}
	}
	return out + ", " + goVersion
}

// fullVersion is this binary's buildVersion, for --version and the start-up log line.
func fullVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return buildVersion(version, bi)
}

func newLogger(o *options, w io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.logLevel, ReplaceAttr: readableDurations}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// readableDurations is the log handlers' ReplaceAttr: it writes a time.Duration as
// time.Duration.String does ("1.5s", "250ms"), where the JSON handler would write integer
// nanoseconds. The text handler writes them so already; both go through it, so both agree.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// servePprof serves net/http/pprof on addr, for profiling a running load balancer.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving profiles", "addr", ln.Addr().String())
	return nil
}

// pprofMux serves net/http/pprof under /debug/pprof/: the index and the named runtime
// profiles (heap, goroutine, allocs and the others, through pprof.Index), and the four
// handlers the index links to that are not named profiles.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// resolveBackends resolves every backend given by name (not as IP and port), each within 5 s,
// and returns the address each was resolved to (the first, IPv4 preferred).
func resolveBackends(backends []messages.Backend) (map[string]netip.AddrPort, error) {
	resolved := map[string]netip.AddrPort{}
	for _, b := range backends {
		if _, err := netip.ParseAddrPort(b.Addr); err == nil {
			continue
		}
		host, port, err := net.SplitHostPort(b.Addr)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %v", b.Addr, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("backend %s: bad port", b.Addr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("cannot resolve backend %s: %v", b.Addr, err)
		}
		ip := ips[0]
		for _, a := range ips {
			if a.Unmap().Is4() {
				ip = a
				break
			}
		}
		resolved[b.Addr] = netip.AddrPortFrom(ip.Unmap(), uint16(p))
	}
	return resolved, nil
}
