// Command loadbalancer is an HTTP/1.1 load balancer: it listens on one port and forwards each
// request to the least-loaded live backend, with at most N requests in flight, health-checking
// the backends at start-up, every few seconds and after every R requests.
//
//	loadbalancer [-N connections] [-R requests] [flags] PORT SERVER[@WEIGHT] [SERVER ...]
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
	"strconv"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/loadbalancer/loadbalancer/actors/lb"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	opts, err := parseArgs(args, stderr)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errVersion):
		fmt.Fprintln(os.Stdout, "loadbalancer", version)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "loadbalancer: %v\n%s", err, usageLine)
		fmt.Fprintln(stderr, "Run 'loadbalancer --help' for every flag.")
		return 2
	}
	log := newLogger(opts, stderr)
	uuid.EnableRandPool() // X-Request-ID without a crypto/rand read and an allocation per request
	if opts.pprofAddr != "" {
		if err := servePprof(opts.pprofAddr, log); err != nil {
			fmt.Fprintf(stderr, "loadbalancer: --pprof-addr: %v\n", err)
			return 1
		}
	}

	// No TCP keep-alive probes on client connections: the idle and body timeouts already end
	// dead ones, and enabling them costs three setsockopt calls per accepted connection. A
	// tunnel (after 101), which has no deadlines, turns them on for its two connections.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(opts.bind, fmt.Sprint(opts.port)))
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
	root := system.Root.Spawn(lb.Props(cfg))
	addrs := make([]string, len(cfg.Dispatcher.Backends))
	for i, b := range cfg.Dispatcher.Backends {
		addrs[i] = b.Addr
	}
	log.Info("listening", "addr", ln.Addr().String(), "backends", addrs, "n", opts.n, "r", opts.r,
		"health_check", opts.check.Kind.String(), "policy", opts.policy.Name, "version", version)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	sig := <-sigs
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
	_ = system.Root.StopFuture(root).Wait()
	log.Info("stopped")
	return 0
}

func newLogger(o *options, w io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// servePprof serves net/http/pprof on addr, for profiling a running load balancer.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving profiles", "addr", ln.Addr().String())
	return nil
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
