package idle

import (
	"fmt"
	"runtime/debug"
	"syscall"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Supported reports whether this platform has an IdleWatcher.
const Supported = true

// watchEvents: readable, peer hung up its writing side; one report per registration
// (EPOLLHUP and EPOLLERR are always reported). Level-triggered, so a byte that arrived before
// the registration is reported at once.
const watchEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// poller is an epoll instance and the pipe that stops its poll goroutine. The IdleWatcher calls
// add and, once, stop, which closes the pipe's write end; the poll goroutine runs run and closes
// the epoll instance and the pipe's read end whenever it ends. So nothing is closed twice, and
// stop never writes to a descriptor that may have been reused.
type poller struct {
	epfd         int
	stopR, stopW int
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	p := &poller{epfd: epfd, stopR: pipe[0], stopW: pipe[1]}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.stopR)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.stopR, &ev); err != nil {
		p.closeFds()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return p, nil
}

// add registers conn for one report and returns its descriptor. A descriptor still registered
// from an earlier watch (one-shot registrations stay, disabled, until the socket closes) is
// re-armed. It fails for a closed connection.
func (p *poller) add(conn syscall.Conn) (int32, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int32
	var cerr error
	err = rc.Control(func(s uintptr) {
		fd = int32(s)
		ev := syscall.EpollEvent{Events: watchEvents, Fd: fd}
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(s), &ev)
		if cerr == syscall.EEXIST {
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(s), &ev)
		}
	})
	if err == nil {
		err = cerr
	}
	return fd, err
}

// stop makes the poll goroutine end, if it has not: the read end of the pipe sees the end of
// the stream.
func (p *poller) stop() {
	_ = syscall.Close(p.stopW)
}

func (p *poller) closeFds() {
	_ = syscall.Close(p.epfd)
	_ = syscall.Close(p.stopR)
	_ = syscall.Close(p.stopW)
}

// run waits for reports and sends them to the IdleWatcher in batches, until stop. It recovers
// a panic and reports it, and closes the epoll instance and the pipe's read end however it ends.
func (p *poller) run(system *actor.ActorSystem, watcher *actor.PID) {
	defer func() {
		_ = syscall.Close(p.epfd)
		_ = syscall.Close(p.stopR)
		if r := recover(); r != nil {
			system.Root.Send(watcher, &messages.IdlePollFailed{Panic: r, Stack: debug.Stack()})
		}
	}()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			system.Root.Send(watcher, &messages.IdlePollFailed{Err: fmt.Errorf("epoll_wait: %w", err)})
			return
		}
		var fds []int32
		stop := false
		for i := range events[:n] {
			if fd := events[i].Fd; int(fd) == p.stopR {
				stop = true
			} else {
				fds = append(fds, fd)
			}
		}
		if len(fds) > 0 {
			system.Root.Send(watcher, &messages.IdleReady{Fds: fds})
		}
		if stop {
			return
		}
	}
}
