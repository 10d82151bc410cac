//go:build linux

package evloop

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Events a handler sees in Ready.
const (
	In    = unix.EPOLLIN
	Out   = unix.EPOLLOUT
	RdHup = unix.EPOLLRDHUP
	Hup   = unix.EPOLLHUP
	Err   = unix.EPOLLERR
)

// Handler owns sockets and a deadline on one loop. The loop calls its methods one at a time, on
// its own thread, each inside a recover.
type Handler interface {
	// Ready reports events on fd, one of the handler's sockets.
	Ready(fd int32, events uint32)
	// Expired reports that the handler's timer has passed.
	Expired()
	// Deliver hands over a message posted with Loop.Post.
	Deliver(msg any)
	// Crashed is called after one of the calls above panicked, with the panic's value and the
	// stack: the handler ends its work (closes its sockets). A panic in Crashed is logged by
	// the loop's OnCrashFailed and otherwise ignored.
	Crashed(v any, stack []byte)
}

// Loop is one event loop. Its methods other than Post, Start and Close may be called only
// from the loop's own thread (from inside a handler).
type Loop struct {
	id    int
	epfd  int
	efd   int // eventfd that wakes the loop
	base  time.Time
	now   int64
	owner []Handler // by fd: who gets the events of each socket registered here
	gen   []uint32  // by fd: registration generation, to tell a reused fd's stale events apart
	heap  timerHeap

	inbox chan delivery
	awake chan struct{} // holds a token while the loop runs (see Post)
	done  chan struct{}
	quit  bool

	events [128]unix.EpollEvent
	spare  []delivery

	// OnCrashFailed, if set before Start, is told about a panic in a handler's Crashed.
	OnCrashFailed func(v any)
	// RawWait, if set before Start, makes the loop sleep in epoll_wait while keeping its P (see
	// wait). Only for a process that has a P per loop beyond what its other goroutines need.
	RawWait bool
}

type delivery struct {
	to  Handler
	msg any
}

// inboxSize bounds the messages waiting for one loop. A Forwarder has at most a few messages
// in flight (an answer to its pick or check, a drain), so this is far above what ten thousand
// connections can have waiting; a poster that finds it full waits.
const inboxSize = 1 << 16

// New makes loop id; Start runs it.
func New(id int) (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("evloop: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("evloop: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, fmt.Errorf("evloop: epoll_ctl: %w", err)
	}
	l := &Loop{id: id, epfd: epfd, efd: efd, base: time.Now(),
		inbox: make(chan delivery, inboxSize), awake: make(chan struct{}, 1), done: make(chan struct{})}
	l.awake <- struct{}{}
	return l, nil
}

// ID is the loop's number.
func (l *Loop) ID() int { return l.id }

// Start runs the loop on a goroutine of its own, locked to its thread, until Close.
func (l *Loop) Start() { go l.run() }

// Stop makes the loop end after what was posted before it, without waiting (it may be called
// from a handler of the loop itself). Sockets still registered are left to their handlers'
// owners (the loop only forgets them).
func (l *Loop) Stop() { l.Post(nil, nil) }

// Wait waits until the loop has ended; never from the loop's own thread.
func (l *Loop) Wait() { <-l.done }

// Close is Stop and Wait.
func (l *Loop) Close() {
	l.Stop()
	l.Wait()
}

// Post hands msg to h on the loop's thread (h.Deliver), in order with the loop's other posts.
// Safe from any goroutine, the loop's own included. A nil h stops the loop.
func (l *Loop) Post(h Handler, msg any) {
	l.inbox <- delivery{to: h, msg: msg}
	select {
	case l.awake <- struct{}{}:
		// The loop had given up its token: it is asleep in epoll_wait, or about to be.
		l.wake()
	default:
		// The loop holds its token: it looks at the inbox before it sleeps again.
	}
}

func (l *Loop) wake() {
	one := uint64(1)
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efd), uintptr(unsafe.Pointer(&one)), 8)
		if e != syscall.EINTR {
			return
		}
	}
}

// Now is the loop's clock in nanoseconds, read once per round (so handlers read no clock).
func (l *Loop) Now() int64 { return l.now }

// Add registers fd for h: edge-triggered input, output and the peer's close.
func (l *Loop) Add(fd int, h Handler) error {
	for fd >= len(l.owner) {
		l.owner = append(l.owner, nil)
		l.gen = append(l.gen, 0)
	}
	l.gen[fd]++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: int32(l.gen[fd])}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	l.owner[fd] = h
	return nil
}

// AddExclusive registers a listening socket fd for h: level-triggered input, with
// EPOLLEXCLUSIVE, so that of the loops watching one listener a new connection wakes one.
func (l *Loop) AddExclusive(fd int, h Handler) error {
	for fd >= len(l.owner) {
		l.owner = append(l.owner, nil)
		l.gen = append(l.gen, 0)
	}
	l.gen[fd]++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd), Pad: int32(l.gen[fd])}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	l.owner[fd] = h
	return nil
}

// Own makes h the handler of fd, registered on this loop already (by Add): ownership of a
// socket moves between handlers of one loop without a system call.
func (l *Loop) Own(fd int, h Handler) { l.owner[fd] = h }

// CloseFd forgets fd and closes it (which also takes it out of the epoll set). The close is a
// raw system call: on a socket without SO_LINGER it never blocks.
func (l *Loop) CloseFd(fd int) {
	if fd < len(l.owner) {
		l.owner[fd] = nil
		l.gen[fd]++
	}
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

// Detach forgets fd and takes it out of the epoll set, without closing it.
func (l *Loop) Detach(fd int) {
	if fd < len(l.owner) {
		l.owner[fd] = nil
		l.gen[fd]++
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Arm sets t, h's timer, to fire at when (the loop's clock); an armed timer moves.
func (l *Loop) Arm(t *Timer, h Handler, when int64) {
	t.h = h
	if t.idx > 0 {
		if t.when == when {
			return
		}
		t.when = when
		l.heap.fix(t)
		return
	}
	if len(l.heap) == 0 {
		l.heap = append(l.heap, nil)
	}
	t.when = when
	l.heap.push(t)
}

// Disarm stops t.
func (l *Loop) Disarm(t *Timer) {
	if t.idx > 0 {
		l.heap.remove(t)
	}
}

func (l *Loop) tick() { l.now = int64(time.Since(l.base)) }

// Refresh brings Now up to the present (it is otherwise read once per wake-up) and returns it:
// for a duration that must not round to the wake-up, such as a request's. Loop thread only.
func (l *Loop) Refresh() int64 {
	l.tick()
	return l.now
}

func (l *Loop) run() {
	runtime.LockOSThread()
	defer func() {
		runtime.UnlockOSThread()
		_ = unix.Close(l.epfd)
		_ = unix.Close(l.efd)
		close(l.done)
	}()
	for !l.quit {
		n := l.poll(0)
		if n == 0 {
			n = l.sleep()
		}
		l.tick()
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				var b [8]byte
				_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(l.efd), uintptr(unsafe.Pointer(&b[0])), 8)
				continue
			}
			if fd >= len(l.owner) || l.owner[fd] == nil || uint32(ev.Pad) != l.gen[fd] {
				continue // an event of a socket closed earlier in this round
			}
			l.ready(l.owner[fd], int32(fd), ev.Events)
		}
		l.expire()
		l.drain()
	}
}

// poll is a non-blocking epoll_wait outside the scheduler's bookkeeping.
func (l *Loop) poll(timeout int) int {
	for {
		r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])),
			uintptr(len(l.events)), uintptr(timeout), 0, 0)
		if e == 0 {
			return int(r)
		}
		if e != syscall.EINTR {
			panic(fmt.Sprintf("evloop: epoll_wait: %v", e))
		}
	}
}

// sleep waits in epoll_wait until an event, a post or the next deadline. It gives up the
// token first, so posts from now on write the eventfd; a post that came before is seen here.
func (l *Loop) sleep() int {
	<-l.awake
	if len(l.inbox) > 0 {
		l.wakeUp()
		return 0
	}
	timeout := -1
	if t := l.heap.top(); t != nil {
		l.tick()
		d := t.when - l.now
		if d <= 0 {
			l.wakeUp()
			return 0
		}
		timeout = int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
	}
	n := l.wait(timeout)
	l.wakeUp()
	return n
}

// wait blocks in epoll_wait. With RawWait it does so outside the scheduler's system-call
// bookkeeping: the loop keeps its P while it sleeps (the process runs with a P per loop on top
// of the Ps for everything else, see package doc), so no monitor takes the P away and wakes
// another thread for it, and waking needs no P. A signal (the runtime's preemption request for
// a stop-the-world, repeated until it is heard) ends the wait with EINTR, and the loop goes
// round: the runtime stops it at its next function call. Otherwise the wait is an ordinary
// blocking system call, whose P goes to other goroutines meanwhile.
func (l *Loop) wait(timeout int) int {
	if l.RawWait {
		r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])),
			uintptr(len(l.events)), uintptr(timeout), 0, 0)
		if e != 0 {
			if e != syscall.EINTR {
				panic(fmt.Sprintf("evloop: epoll_wait: %v", e))
			}
			return 0
		}
		return int(r)
	}
	n, err := unix.EpollWait(l.epfd, l.events[:], timeout)
	if err != nil && err != unix.EINTR {
		panic(fmt.Sprintf("evloop: epoll_wait: %v", err))
	}
	if n < 0 {
		n = 0
	}
	return n
}

// wakeUp takes the token back. A poster may have put it already (and written the eventfd,
// which the next poll reads): never wait for the slot.
func (l *Loop) wakeUp() {
	select {
	case l.awake <- struct{}{}:
	default:
	}
}

func (l *Loop) expire() {
	for {
		t := l.heap.top()
		if t == nil || t.when > l.now {
			return
		}
		l.heap.remove(t)
		l.expired(t.h)
	}
}

// drain delivers what is in the inbox, including what the deliveries post (a Forwarder's pick
// answered by a Dispatcher running on this thread comes back here at once), up to a bound, so
// that the sockets get their turn.
func (l *Loop) drain() {
	for n := 0; n < maxDrain; n++ {
		var d delivery
		select {
		case d = <-l.inbox:
		default:
			return
		}
		if d.to == nil {
			l.quit = true
			continue
		}
		l.deliver(d.to, d.msg)
	}
}

// maxDrain bounds the deliveries of one round.
const maxDrain = 4096

func (l *Loop) ready(h Handler, fd int32, ev uint32) {
	defer l.recover(h)
	h.Ready(fd, ev)
}

func (l *Loop) expired(h Handler) {
	defer l.recover(h)
	h.Expired()
}

func (l *Loop) deliver(h Handler, msg any) {
	defer l.recover(h)
	h.Deliver(msg)
}

func (l *Loop) recover(h Handler) {
	if v := recover(); v != nil {
		l.crashed(h, v, debug.Stack())
	}
}

func (l *Loop) crashed(h Handler, v any, stack []byte) {
	defer func() {
		if w := recover(); w != nil && l.OnCrashFailed != nil {
			l.OnCrashFailed(w)
		}
	}()
	h.Crashed(v, stack)
}
