package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Binary upgrade without a failed request (SIGUSR2), as nginx does it: the running process
// starts the binary at its own path again (the new one, once installed there), with the same
// arguments, handing it its listening sockets: the proxy's and the admin listener's. Both
// processes then accept from the same sockets, so no connection waits in a backlog that closes.
// Once the new process is ready (its first health round done) it sends the old one SIGTERM, and
// the old one drains as on any SIGTERM: it takes what it has accepted to the end and exits. If
// the new process fails before it is ready, the old one goes on alone and says so.

// The environment of an upgrade's new process.
const (
	envListenFD = "LOADBALANCER_LISTEN_FD" // the proxy's listening socket
	envAdminFD  = "LOADBALANCER_ADMIN_FD"  // the admin listener's, when there is one
	envParent   = "LOADBALANCER_UPGRADE_FROM"
)

// inheritedListener returns the listening socket named by the environment variable env (an
// upgrade's), or nil.
func inheritedListener(env string) (net.Listener, error) {
	fd, err := inheritedFD(env)
	if fd < 0 || err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), env)
	defer f.Close() // FileListener works on a duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return ln, nil
}

// inheritedFD is the descriptor the environment variable env names (an upgrade's), or -1 when
// it is not set.
func inheritedFD(env string) (int, error) {
	s := os.Getenv(env)
	if s == "" {
		return -1, nil
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return -1, fmt.Errorf("%s=%q: not a file descriptor", env, s)
	}
	return fd, nil
}

// upgrader starts the new process on SIGUSR2.
type upgrader struct {
	exe     string // this binary's path, as started (the new binary is installed there)
	args    []string
	ln      net.Listener
	adminLn net.Listener
	log     *slog.Logger
	// started: a new process runs (owned by the relay goroutine); ended tells the relay that it
	// has exited.
	started bool
	ended   chan struct{}
	// handedOver says, when the drain begins (stop), whether a new process was started: main
	// then stops its admin server at once, so that no API call lands on a process on its way
	// out (the new one serves the same socket).
	handedOver chan bool
}

// executable is the path to start again: the one this process was started from (not
// /proc/self/exe, which names the old file even after the new one replaced it).
func executable() string {
	p := os.Args[0]
	if filepath.Base(p) == p {
		if lp, err := exec.LookPath(p); err == nil {
			p = lp
		}
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// start starts the new process; the old one goes on serving until the new one says it is ready.
// The sockets go to it as raw descriptors (syscall.ForkExec): os/exec would take them with Fd,
// which puts a socket in blocking mode, for every process that shares it, and an event loop's
// accept must never block.
func (u *upgrader) start() {
	if u.started {
		u.log.Warn("SIGUSR2: an upgrade is under way already")
		return
	}
	var env []string
	for _, kv := range os.Environ() { // an earlier upgrade's keys: the first of a key would win
		if !strings.HasPrefix(kv, "LOADBALANCER_") {
			env = append(env, kv)
		}
	}
	env = append(env, envParent+"="+strconv.Itoa(os.Getpid()))
	files := []uintptr{0, 1, 2}
	var dups []int
	defer func() {
		for _, fd := range dups {
			_ = syscall.Close(fd)
		}
	}()
	for _, l := range []struct {
		ln  net.Listener
		env string
	}{{u.ln, envListenFD}, {u.adminLn, envAdminFD}} {
		if l.ln == nil {
			continue
		}
		fd, err := dupListener(l.ln)
		if err != nil {
			u.log.Error("upgrade failed: cannot hand over a listener; this one goes on", "err", err)
			return
		}
		dups = append(dups, fd)
		env = append(env, l.env+"="+strconv.Itoa(len(files)))
		files = append(files, uintptr(fd))
	}
	pid, err := syscall.ForkExec(u.exe, append([]string{u.exe}, u.args...), &syscall.ProcAttr{Env: env, Files: files})
	if err != nil {
		u.log.Error("upgrade failed: cannot start the new process; this one goes on", "exe", u.exe, "err", err)
		return
	}
	u.started = true
	u.log.Info("upgrade: new process started; this one drains when it is ready", "pid", pid, "exe", u.exe)
	go func() {
		defer func() { _ = recover() }() // a wait, a log line and a send: nothing to report
		// Reaped here; if it ends before it told this one to go, this one goes on, and may try
		// again (the relay hears of the end).
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		u.log.Warn("upgrade: the new process has exited; this one goes on", "pid", pid, "status", ws.ExitStatus(), "err", fmt.Sprint(err))
		u.ended <- struct{}{}
	}()
}

// dupListener duplicates ln's socket (the duplicate shares the socket, its mode untouched).
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(dup) // ForkExec puts it in the child at its place anyway
	return dup, nil
}

// upgradeOnUSR2 starts an upgrade on SIGUSR2 until stop is closed.
func upgradeOnUSR2(u *upgrader, stop <-chan struct{}) {
	usr2 := make(chan os.Signal, 2)
	signal.Notify(usr2, syscall.SIGUSR2)
	u.ended = make(chan struct{}, 1)
	go func() {
		defer signal.Stop(usr2)
		for {
			select {
			case <-stop:
				// Draining: an upgrade now would hand over a listener being closed. SIGUSR2
				// is ignored from here on rather than killing the process.
				signal.Ignore(syscall.SIGUSR2)
				u.handedOver <- u.started
				return
			case <-u.ended:
				u.started = false
			case <-usr2:
				u.start()
			}
		}
	}()
}

// takeOver, in an upgrade's new process, waits until the Dispatcher is ready (its first health
// round is done), then tells the old process to drain (SIGTERM).
func takeOver(system *actor.ActorSystem, root *actor.PID, wait time.Duration, log *slog.Logger) {
	s := os.Getenv(envParent)
	if s == "" {
		return
	}
	parent, err := strconv.Atoi(s)
	if err != nil || parent <= 1 {
		log.Error("upgrade: bad parent pid; the old process must be stopped by hand", "env", s)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for ctx.Err() == nil && !dispatcherReady(system, root) {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			// No backend up in this process: the old one goes on serving, and this one goes.
			log.Error("upgrade: not ready in time (no backend up); exiting, the old process goes on", "waited", wait)
			os.Exit(1)
		}
		log.Info("upgrade: ready; the old process drains", "old_pid", parent)
		if err := syscall.Kill(parent, syscall.SIGTERM); err != nil {
			log.Warn("upgrade: cannot signal the old process", "pid", parent, "err", err)
		}
	}()
}

// dispatcherReady asks the Dispatcher whether its first health report has come.
func dispatcherReady(system *actor.ActorSystem, root *actor.PID) bool {
	s, err := dispatcherStats(context.Background(), system, root, time.Second)
	if err != nil || !s.Ready {
		return false
	}
	for _, b := range s.Backends {
		if b.Up && !b.Ejected && !b.Removed {
			return true
		}
	}
	return false
}

// dispatcherStats asks the Dispatcher under root for its stats, waiting up to wait (or ctx).
func dispatcherStats(ctx context.Context, system *actor.ActorSystem, root *actor.PID, wait time.Duration) (*messages.DispatcherStats, error) {
	ep := reply.New(system, 1)
	defer ep.Close()
	system.Root.Send(child(root, "dispatcher"), &messages.StatsRequest{ReplyTo: ep.PID()})
	select {
	case m := <-ep.C:
		if s, ok := m.(*messages.DispatcherStats); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unexpected answer %T", m)
	case <-time.After(wait):
		return nil, fmt.Errorf("the dispatcher did not answer in %v", wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// inheritedProxyListener is the proxy's listening socket handed over by an upgrade, or nil. It
// stays a raw descriptor: the event loops accept on it themselves, and making a net.Listener of
// it (net.FileListener) would put the socket in blocking mode for a moment, in the old process
// too, whose loops must never block in accept.
func inheritedProxyListener() (net.Listener, error) {
	fd, err := inheritedFD(envListenFD)
	if fd < 0 || err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envListenFD, err)
	}
	var addr *net.TCPAddr
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	default:
		return nil, fmt.Errorf("%s: not a TCP socket", envListenFD)
	}
	return &rawListener{fd: fd, addr: addr}, nil
}

// rawListener is a listening socket known by its descriptor: what the Acceptor and the Engine
// need of a listener (its address, a duplicate of its descriptor, Close), and no Accept (the
// event loops accept).
type rawListener struct {
	fd     int
	addr   *net.TCPAddr
	closed bool
}

func (l *rawListener) Accept() (net.Conn, error) {
	return nil, fmt.Errorf("loadbalancer: the event loops accept on this listener")
}
func (l *rawListener) Addr() net.Addr { return l.addr }

// Close closes the descriptor once (only the Acceptor calls it).
func (l *rawListener) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	return syscall.Close(l.fd)
}

// SyscallConn implements syscall.Conn.
func (l *rawListener) SyscallConn() (syscall.RawConn, error) {
	if l.closed {
		return nil, fmt.Errorf("loadbalancer: the listener is closed")
	}
	return rawConn{l.fd}, nil
}

// rawConn is the syscall.RawConn of a rawListener: Control only.
type rawConn struct{ fd int }

func (c rawConn) Control(f func(uintptr)) error { f(uintptr(c.fd)); return nil }
func (c rawConn) Read(func(uintptr) bool) error {
	return fmt.Errorf("loadbalancer: no reads on a listener")
}
func (c rawConn) Write(func(uintptr) bool) error {
	return fmt.Errorf("loadbalancer: no writes on a listener")
}
