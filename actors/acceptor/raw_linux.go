//go:build linux

package acceptor

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

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
