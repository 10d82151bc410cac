//go:build linux

package acceptor

import (
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/messages"
)

// rawAccept accepts connections for Forwarders on event loops: non-blocking accept4 calls on the
// listener's socket, as many as are waiting, each sent to the Acceptor as a raw socket
// (SocketAccepted), so the connection never enters the runtime's poller. (The runtime lets a
// listener's RawConn run calls but not wait, so this goroutine waits on an epoll instance of its
// own, a blocking system call, looking every half second whether the listener was closed.) It
// ends when the listener closes (AcceptFailed), backs off on temporary errors (out of file
// descriptors) instead of spinning, and reports a panic (AcceptLoopPanicked).
func rawAccept(system *actor.ActorSystem, self *actor.PID, ln net.Listener, delay time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			system.Root.Send(self, &messages.AcceptLoopPanicked{Value: r, Stack: debug.Stack()})
		}
	}()
	time.Sleep(delay)
	fail := func(err error) { system.Root.Send(self, &messages.AcceptFailed{Err: err}) }
	sc, ok := ln.(syscall.Conn)
	if !ok {
		fail(errors.New("acceptor: the listener is not a socket"))
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		fail(err)
		return
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		fail(err)
		return
	}
	defer unix.Close(epfd)
	var cerr error
	if err := rc.Control(func(lfd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}
		cerr = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(lfd), &ev)
	}); err != nil {
		fail(nil) // closed already
		return
	} else if cerr != nil {
		fail(cerr)
		return
	}
	type accepted struct {
		fd   int
		peer netip.AddrPort
	}
	var batch [64]accepted
	var events [1]unix.EpollEvent
	backoff := time.Duration(0)
	for {
		n := 0
		var aerr syscall.Errno
		again := false
		err := rc.Control(func(lfd uintptr) {
			for n < len(batch) {
				var rsa unix.RawSockaddrAny
				size := uint32(unsafe.Sizeof(rsa))
				fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, lfd, uintptr(unsafe.Pointer(&rsa)),
					uintptr(unsafe.Pointer(&size)), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
				switch e {
				case 0:
					batch[n] = accepted{fd: int(fd), peer: peerOf(&rsa)}
					n++
					continue
				case syscall.EINTR, syscall.ECONNABORTED:
					continue
				case syscall.EAGAIN:
					again = true
					return
				}
				aerr = e
				return
			}
		})
		for i := 0; i < n; i++ {
			system.Root.Send(self, &messages.SocketAccepted{Fd: batch[i].fd, Peer: batch[i].peer})
		}
		switch {
		case err != nil:
			fail(nil) // the listener was closed
			return
		case aerr == syscall.EMFILE || aerr == syscall.ENFILE || aerr == syscall.ENOBUFS || aerr == syscall.ENOMEM:
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
		case aerr != 0:
			fail(aerr)
			return
		case again:
			backoff = 0
			if _, err := unix.EpollWait(epfd, events[:], 500); err != nil && err != unix.EINTR {
				fail(err)
				return
			}
		}
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

// noDelay turns Nagle's algorithm off on the listener, so every socket accepted from it starts
// with it off (Linux copies the option to accepted sockets): one system call for all of them.
func noDelay(ln net.Listener) {
	if sc, ok := ln.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) })
		}
	}
}

func closeSocket(fd int) { _ = unix.Close(fd) }
