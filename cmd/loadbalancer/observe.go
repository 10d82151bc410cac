package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/accesslog"
	"github.com/loadbalancer/loadbalancer/actors/admin"
	"github.com/loadbalancer/loadbalancer/actors/lb"
	"github.com/loadbalancer/loadbalancer/messages"
)

// accessLog is the running access log writer.
type accessLog struct {
	pid  *actor.PID
	done chan struct{}
}

// startAccessLog opens --access-log and spawns its writer, and points the Forwarders at it. A
// path that cannot be opened is an error at start-up.
func startAccessLog(o *options, system *actor.ActorSystem, cfg *lb.Config, log *slog.Logger) (*accessLog, error) {
	if o.accessLog == "" {
		return nil, nil
	}
	f, err := accesslog.Open(o.accessLog)
	if err != nil {
		return nil, err
	}
	free := make(chan []byte, 16)
	a := &accessLog{done: make(chan struct{})}
	a.pid = system.Root.Spawn(accesslog.Props(&accesslog.Config{Path: o.accessLog, File: f, Free: free,
		Done: a.done, Logger: log}))
	fc := cfg.Acceptor.Forwarder
	fc.AccessLog, fc.AccessLogFormat, fc.AccessLogFree = a.pid, o.accessLogFormat, free
	return a, nil
}

// close stops the writer once the event loops have sent their last lines (loopsDone), and waits
// until the file is written and closed.
func (a *accessLog) close(system *actor.ActorSystem, loopsDone <-chan struct{}, log *slog.Logger) {
	if a == nil {
		return
	}
	select {
	case <-loopsDone:
	case <-time.After(5 * time.Second):
		log.Warn("event loops still running; the access log may miss their last lines")
	}
	// A poison pill, not Stop: it comes after the batches already in the mailbox, where a
	// Stop (a system message) would overtake them.
	_ = system.Root.PoisonFuture(a.pid).Wait()
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		log.Warn("the access log did not finish writing in 5s")
	}
}

// reopenOnUSR1 reopens the access log on every SIGUSR1 (logrotate's signal) until stop is
// closed. Without an access log, SIGUSR1 is logged and ignored rather than killing the process.
func reopenOnUSR1(system *actor.ActorSystem, a *accessLog, log *slog.Logger, stop <-chan struct{}) {
	onSignal(syscall.SIGUSR1, stop, func() {
		if a == nil {
			log.Info("SIGUSR1: no access log to reopen")
			return
		}
		system.Root.Send(a.pid, &messages.ReopenAccessLog{})
	})
}

// onSignal runs fn on a goroutine of its own for every sig, one at a time, until stop is
// closed.
func onSignal(sig os.Signal, stop <-chan struct{}, fn func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, sig)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-stop:
				return
			case <-ch:
				fn()
			}
		}
	}()
}

// listenAdmin binds --admin-addr, before anything starts serving: a bad address stops the
// start-up before the proxy has taken a request.
func listenAdmin(o *options) (net.Listener, error) {
	if o.adminAddr == "" {
		return nil, nil
	}
	if ln, err := inheritedListener(envAdminFD); ln != nil || err != nil {
		return ln, err
	}
	ln, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: %w", err)
	}
	return ln, nil
}

// startAdmin serves the admin listener on ln (from listenAdmin; nil: none), pointed at the
// actors under root, with the runtime API going through ctl.
func startAdmin(o *options, ln net.Listener, system *actor.ActorSystem, root *actor.PID, cfg *lb.Config,
	listen string, a *accessLog, ctl admin.Control, log *slog.Logger) (*admin.Server, error) {
	if ln == nil {
		return nil, nil
	}
	token := ""
	if o.adminTokenFile != "" {
		b, err := os.ReadFile(o.adminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("--admin-token-file: %s holds no token", o.adminTokenFile)
		}
	}
	child := func(name string) *actor.PID { return actor.NewPID(root.Address, root.Id+"/"+name) }
	t := admin.Targets{Dispatcher: child("dispatcher"), Health: child("health"), Acceptor: child("acceptor")}
	if a != nil {
		t.AccessLog = a.pid
	}
	names := make([]string, len(cfg.Dispatcher.Backends))
	for i, b := range cfg.Dispatcher.Backends {
		names[i] = b.Addr
	}
	policy := o.policy.Name
	if policy == "" {
		policy = "classic"
	}
	s, err := admin.Start(admin.Config{Listener: ln, System: system, Targets: t, Backends: names,
		Version: fullVersion(), Listen: listen, Policy: policy, HealthCheck: o.check.Kind.String(),
		HealthInterval: o.healthInterval, Loops: cfg.Acceptor.Loops, Control: ctl, Token: token, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: %w", err)
	}
	log.Info("admin listening", "url", "http://"+s.Addr()+"/", "metrics", "http://"+s.Addr()+"/metrics")
	return s, nil
}
