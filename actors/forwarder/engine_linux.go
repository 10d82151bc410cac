//go:build linux

package forwarder

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/evloop"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Engine runs Forwarders as state machines on event loops, one loop per core (see package
// evloop): the loops accept on the listener (Listen) and serve what the Acceptor admits
// (AdoptOn); a loop owns a connection from then on, with its upstream connections and their idle
// pool. The Engine itself is the Acceptor's: only the Acceptor's Receive calls its methods
// (tests aside).
type Engine struct {
	cfg      *Config
	system   *actor.ActorSystem
	acceptor *actor.PID // told of every accepted socket (SocketAccepted) and every end (ConnEnded)
	workers  []*worker
	next     int
	// lfd is the Engine's duplicate of the listener's socket (Listen), closed once every loop
	// has let go of it (StopAccepting, through unlistened).
	lfd        int
	unlistened chan struct{}
}

// EngineOptions shape the event loops.
type EngineOptions struct {
	// Loops is how many event loops run (at least one).
	Loops int
	// RawWait makes the loops sleep while keeping their Ps (evloop.Loop.RawWait): for a process
	// whose GOMAXPROCS has a P per loop on top of those its other goroutines use.
	RawWait bool
}

// NewEngine starts the event loops for Forwarders configured by cfg, in system; each
// connection's end is reported to acceptor.
func NewEngine(cfg *Config, system *actor.ActorSystem, acceptor *actor.PID, opts EngineOptions) (*Engine, error) {
	e := &Engine{cfg: cfg, system: system, acceptor: acceptor}
	for i := 0; i < max(opts.Loops, 1); i++ {
		l, err := evloop.New(i)
		if err != nil {
			e.Close()
			e.Wait()
			return nil, err
		}
		w := &worker{e: e, l: l, cfg: cfg, addrs: make(map[string]unix.Sockaddr), lfd: -1}
		w.pause.w = w
		w.alogTimer.w = w
		w.conns.next, w.conns.prev = &w.conns, &w.conns
		l.OnCrashFailed = func(v any) {
			cfg.logger().Error("forwarder: panic while handling a crash", "panic", fmt.Sprint(v))
		}
		l.RawWait = opts.RawWait
		e.workers = append(e.workers, w)
		l.Start()
	}
	return e, nil
}

// Adopt gives a socket accepted elsewhere (a test's), from peer, to a loop (round robin), which
// serves it from now on. The loops' own accepts go through AdoptOn.
func (e *Engine) Adopt(fd int, peer netip.AddrPort) {
	w := e.workers[e.next]
	e.next = (e.next + 1) % len(e.workers)
	w.l.Post(w, &adoptMsg{fd: fd, peer: peer})
}

// Drain makes every connection close once its request in flight is answered (an idle one at
// once), as the Acceptor's Drain does.
func (e *Engine) Drain() {
	for _, w := range e.workers {
		w.l.Post(w, drainAll{})
	}
}

// Close closes every connection and stops the loops, without waiting for them: the Acceptor
// calls it from Receive, which may be running on a loop's own thread. Wait waits.
func (e *Engine) Close() {
	for _, w := range e.workers {
		w.l.Post(w, closeAll{})
		w.l.Stop()
	}
}

// Wait waits until every loop has ended (after Close); never from a loop's thread.
func (e *Engine) Wait() {
	for _, w := range e.workers {
		w.l.Wait()
	}
}

type adoptMsg struct {
	fd   int
	peer netip.AddrPort
}

type drainAll struct{}
type closeAll struct{}

// worker is what one loop keeps besides its sockets: its connections, buffers, idle upstream
// connections and resolved backend addresses. Only its loop's thread touches it.
type worker struct {
	e        *Engine
	l        *evloop.Loop
	cfg      *Config
	conns    conn // sentinel of the ring of live connections
	draining bool

	small, large [][]byte    // free buffers
	pipes        []*loopPipe // free (empty) pipes

	// pools holds idle upstream connections by backend, most recently used last; idleOf maps a
	// pooled descriptor to its backend (+1; 0: not pooled).
	pools  [][]idleUp
	idleOf []int32
	sweep  evloop.Timer

	addrs map[string]unix.Sockaddr

	lfd   int // the listener, while this loop accepts (-1: not)
	pause pauser

	// stats counts the requests this loop served (see account_linux.go); alog is the access log
	// batch being filled, with alogLines lines, sent on by alogTimer at the latest.
	stats     messages.TrafficStats
	alog      []byte
	alogLines int
	alogTimer logFlusher
	tc        timeCache
	rec       logRecord
}

type idleUp struct {
	fd    int
	since int64
}

const (
	smallBuf = 16 << 10
	largeBuf = 64 << 10
	// maxFreeBufs bounds each free list: a burst's buffers beyond it go to the collector.
	maxFreeBufs = 64
	// sweepEvery is how often a loop closes upstream connections idle too long.
	sweepEvery = int64(1e9)
)

func (w *worker) getBuf(large bool) []byte {
	list, size := &w.small, smallBuf
	if large {
		list, size = &w.large, largeBuf
	}
	if n := len(*list); n > 0 {
		b := (*list)[n-1]
		(*list)[n-1] = nil
		*list = (*list)[:n-1]
		return b
	}
	return make([]byte, size)
}

func (w *worker) putBuf(b []byte) {
	switch cap(b) {
	case smallBuf:
		if len(w.small) < maxFreeBufs {
			w.small = append(w.small, b[:smallBuf])
		}
	case largeBuf:
		if len(w.large) < maxFreeBufs {
			w.large = append(w.large, b[:largeBuf])
		}
	}
}

// Ready implements evloop.Handler for pooled idle upstream connections: input or a hang-up on
// one (the backend closed it, reset it, or sent something unasked) ends it; room to write
// says nothing.
func (w *worker) Ready(fd int32, events uint32) {
	if int(fd) == w.lfd {
		w.accept()
		return
	}
	if int(fd) >= len(w.idleOf) || w.idleOf[fd] == 0 || events&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) == 0 {
		return
	}
	b := int(w.idleOf[fd] - 1)
	w.idleOf[fd] = 0
	w.traffic(b).Stale++
	p := w.pools[b]
	for i := range p {
		if p[i].fd == int(fd) {
			w.pools[b] = append(p[:i], p[i+1:]...)
			break
		}
	}
	w.l.CloseFd(int(fd))
}

// Expired implements evloop.Handler: the sweep of upstream connections idle too long.
func (w *worker) Expired() {
	cutoff := w.l.Now() - int64(w.cfg.upstreamIdle())
	any := false
	for b, p := range w.pools {
		kept := p[:0]
		for _, u := range p {
			if u.since < cutoff {
				w.idleOf[u.fd] = 0
				w.l.CloseFd(u.fd)
				w.traffic(b).Stale++
				continue
			}
			kept = append(kept, u)
		}
		clear(p[len(kept):])
		w.pools[b] = kept
		any = any || len(kept) > 0
	}
	if any {
		w.l.Arm(&w.sweep, w, w.l.Now()+sweepEvery)
	}
}

// Deliver implements evloop.Handler: the Engine's messages to the loop.
func (w *worker) Deliver(msg any) {
	switch m := msg.(type) {
	case *adoptMsg:
		w.adopt(m)
	case listenMsg:
		w.lfd = m.fd
		w.listen()
	case unlistenMsg:
		if w.lfd >= 0 {
			// The connections already in the listener's backlog are taken (and served, one
			// request each) rather than reset when the listener closes.
			for range maxFinalAccepts / acceptBatch {
				if w.accept() {
					break
				}
			}
			w.l.Detach(w.lfd)
			w.l.Disarm(&w.pause.timer)
			w.lfd = -1
		}
		m.done <- struct{}{}
	case statsMsg:
		w.e.system.Root.Send(m.req.ReplyTo, w.snapshot())
	case setConfigMsg:
		w.cfg = m.cfg
	case drainAll:
		w.draining = true
		for c := w.conns.next; c != &w.conns; {
			next := c.next
			c.drain()
			c = next
		}
	case closeAll:
		for w.conns.next != &w.conns {
			w.conns.next.endedBy = endedByLB
			w.conns.next.close()
		}
		for _, p := range w.pipes {
			p.bytes = 1 // closed, not kept
			w.putPipe(p)
		}
		w.pipes = nil
		for b := range w.pools {
			for _, u := range w.pools[b] {
				w.idleOf[u.fd] = 0
				w.l.CloseFd(u.fd)
			}
			w.pools[b] = nil
		}
		w.flushLog() // the connections' last lines
	}
}

// Crashed implements evloop.Handler; the worker's own handlers do not panic but for a bug.
func (w *worker) Crashed(v any, stack []byte) {
	w.cfg.logger().Error("forwarder: event loop bookkeeping panicked", "panic", fmt.Sprint(v), "stack", string(stack))
}

// takeIdle hands out the most recently pooled connection to backend b, or -1.
func (w *worker) takeIdle(b int) int {
	if b >= len(w.pools) {
		return -1
	}
	p := w.pools[b]
	cutoff := w.l.Now() - int64(w.cfg.upstreamIdle())
	for n := len(p); n > 0; n = len(p) {
		u := p[n-1]
		p = p[:n-1]
		w.idleOf[u.fd] = 0
		if u.since >= cutoff {
			w.pools[b] = p
			return u.fd
		}
		w.l.CloseFd(u.fd)
		w.traffic(b).Stale++
	}
	w.pools[b] = p
	return -1
}

// putIdle pools fd, a clean upstream connection to backend b, or closes it when the pool is
// full.
func (w *worker) putIdle(b, fd int) {
	for b >= len(w.pools) {
		w.pools = append(w.pools, nil)
	}
	if len(w.pools[b]) >= w.cfg.maxIdlePerBackend() {
		w.l.CloseFd(fd)
		return
	}
	for fd >= len(w.idleOf) {
		w.idleOf = append(w.idleOf, 0)
	}
	w.idleOf[fd] = int32(b + 1)
	w.pools[b] = append(w.pools[b], idleUp{fd: fd, since: w.l.Now()})
	w.l.Own(fd, w)
	if !w.sweep.Armed() {
		w.l.Arm(&w.sweep, w, w.l.Now()+sweepEvery)
	}
}

// sockaddr turns a backend address into a socket address, once per loop: a literal IP and port
// as it is, a name through Config.Resolved (looked up at start-up). Nothing here blocks: a name
// that was not resolved is an error (the connect fails, and the request tries another backend).
func (w *worker) sockaddr(addr string) (unix.Sockaddr, error) {
	if sa, ok := w.addrs[addr]; ok {
		return sa, nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		var ok bool
		if ap, ok = w.cfg.Resolved[addr]; !ok {
			return nil, fmt.Errorf("forwarder: backend %s was not resolved at start-up", addr)
		}
	}
	sa := sockaddrOf(ap)
	w.addrs[addr] = sa
	return sa, nil
}

// sockaddrOf is ap as a socket address (for a dial, where the kernel copies it: one per
// dial, from the Dispatcher's table, costs an allocation, not a lookup).
func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr().Unmap(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// dial starts a non-blocking connect to addr and returns the socket; the connect completes
// when the socket turns writable (see conn.stepConnect).
func (w *worker) dial(addr string, at netip.AddrPort) (int, error) {
	var sa unix.Sockaddr
	if at.IsValid() {
		sa = sockaddrOf(at)
	} else {
		var err error
		if sa, err = w.sockaddr(addr); err != nil {
			return -1, err
		}
	}
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// sysRead is a non-blocking read(2): the byte count (0 at the end of the stream) or the errno
// (EAGAIN when nothing is waiting).
func sysRead(fd int, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// sysWrite is a non-blocking write(2) of what fits.
func sysWrite(fd int, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// connProc is a Forwarder's protoactor Process: what is sent to its PID is posted to its loop,
// and Stop closes the connection. One per connection, so a late message for an ended
// connection finds it ended.
type connProc struct{ c *conn }

func (p *connProc) SendUserMessage(_ *actor.PID, m any) { p.c.w.l.Post(p.c, m) }
func (p *connProc) SendSystemMessage(_ *actor.PID, m any) {
	if _, ok := m.(*actor.Stop); ok {
		p.c.w.l.Post(p.c, stopConn{})
	}
}
func (p *connProc) Stop(_ *actor.PID) { p.c.w.l.Post(p.c, stopConn{}) }

type stopConn struct{}

// Listen makes the loops accept on ln's socket themselves: each loop has a duplicate of it in
// its epoll set (level-triggered, EPOLLEXCLUSIVE, so a connection wakes one loop), accepts what
// is waiting, and sends each socket to the Engine's acceptor as SocketAccepted with its own
// number, to be admitted (AdoptOn, same loop) or closed. A connection never crosses threads and
// no other thread wakes for it.
func (e *Engine) Listen(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("forwarder: the listener is not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { e.lfd, derr = unix.Dup(int(fd)) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	unix.CloseOnExec(e.lfd)
	e.unlistened = make(chan struct{}, len(e.workers))
	for _, w := range e.workers {
		w.l.Post(w, listenMsg{fd: e.lfd})
	}
	return nil
}

// StopAccepting takes the listener out of every loop, each taking what is left in the backlog
// first, then closes the Engine's duplicate and sends the acceptor *messages.AcceptingStopped,
// without waiting (the Acceptor calls it from Receive). It reports false when the loops were
// not accepting (no AcceptingStopped comes then).
func (e *Engine) StopAccepting() bool {
	if e.unlistened == nil {
		return false
	}
	for _, w := range e.workers {
		w.l.Post(w, unlistenMsg{done: e.unlistened})
	}
	ch, fd, n := e.unlistened, e.lfd, len(e.workers)
	e.unlistened = nil
	sys, acceptor := e.system, e.acceptor
	go func() {
		defer func() { _ = recover() }() // a close, channel receives and a send: nothing to panic
		for range n {
			<-ch
		}
		_ = unix.Close(fd)
		sys.Root.Send(acceptor, &messages.AcceptingStopped{})
	}()
	return true
}

// AdoptOn gives the accepted socket fd to loop i, the one that accepted it.
func (e *Engine) AdoptOn(i, fd int, peer netip.AddrPort) {
	w := e.workers[i]
	w.l.Post(w, &adoptMsg{fd: fd, peer: peer})
}

type listenMsg struct{ fd int }
type unlistenMsg struct{ done chan<- struct{} }

// acceptBatch is the most connections a loop accepts per readiness of the listener, so the
// connections it already has get their turn; maxFinalAccepts the most it takes from the backlog
// when it stops accepting.
const (
	acceptBatch     = 64
	maxFinalAccepts = 4096
)

// accept takes the connections waiting on the listener, up to acceptBatch, and sends each to
// the acceptor. An error that more tries cannot cure right away (out of descriptors, memory)
// pauses accepting on this loop for acceptPause. It reports whether the backlog is empty (or
// accepting failed), as opposed to acceptBatch taken.
func (w *worker) accept() (empty bool) {
	for range acceptBatch {
		var rsa unix.RawSockaddrAny
		size := uint32(unsafe.Sizeof(rsa))
		fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(w.lfd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&size)), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			w.e.system.Root.Send(w.e.acceptor, &messages.SocketAccepted{Fd: int(fd), Peer: peerOf(&rsa), Loop: w.l.ID()})
			continue
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		case syscall.EAGAIN:
			return true
		}
		w.cfg.logger().Warn("accept failed; pausing accepts on this loop", "err", e.Error(), "for", acceptPause)
		w.l.Detach(w.lfd)
		w.l.Arm(&w.pause.timer, &w.pause, w.l.Now()+int64(acceptPause))
		return true
	}
	return false
}

// acceptPause is how long a loop stops accepting after an accept error such as EMFILE.
const acceptPause = 100 * time.Millisecond

// pauser is the loop's handler for the end of an accept pause.
type pauser struct {
	w     *worker
	timer evloop.Timer
}

func (p *pauser) Ready(int32, uint32) {}
func (p *pauser) Deliver(any)         {}
func (p *pauser) Crashed(v any, _ []byte) {
	p.w.cfg.logger().Error("forwarder: accept pause panicked", "panic", fmt.Sprint(v))
}
func (p *pauser) Expired() {
	if p.w.lfd >= 0 {
		p.w.listen()
	}
}

// listen puts the listener in this loop's epoll set.
func (w *worker) listen() {
	if err := w.l.AddExclusive(w.lfd, w); err != nil {
		w.cfg.logger().Error("cannot watch the listener; this loop accepts nothing", "err", err)
	}
}

// peerOf is the address in an accept4 result.
func peerOf(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
