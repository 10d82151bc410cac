//go:build linux

package forwarder

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Long bodies move between the two sockets through a kernel pipe with non-blocking splice(2):
// the bytes never enter user space, and memory stays flat (the pipe's buffer) whatever the body's
// size. A body goes through the pipe once what is buffered of it is gone and more than
// spliceOver bytes are left; shorter ones are copied through the connection's buffers, where a
// read and a write cost less than two splices.

// spliceOver is the body length left above which a body is spliced.
const spliceOver = 64 << 10

// loopPipe is a pipe a connection splices through; bytes says how many it holds.
type loopPipe struct {
	r, w  int
	bytes int
	size  int // the pipe's capacity
}

// pipeSize is asked of the kernel for each pipe (the unprivileged limit by default).
const pipeSize = 1 << 20

// getPipe takes a pipe from the loop's free list or makes one; nil when the system has none to
// give (the body is then copied).
func (w *worker) getPipe() *loopPipe {
	if n := len(w.pipes); n > 0 {
		p := w.pipes[n-1]
		w.pipes = w.pipes[:n-1]
		return p
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil
	}
	size, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		if size, err = unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0); err != nil {
			size = 64 << 10 // the kernel's default
		}
	}
	return &loopPipe{r: fds[0], w: fds[1], size: size}
}

// putPipe gives back an empty pipe; one with bytes left in it is closed.
func (w *worker) putPipe(p *loopPipe) {
	if p.bytes == 0 && len(w.pipes) < maxFreeBufs {
		w.pipes = append(w.pipes, p)
		return
	}
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// spliceOnce is one non-blocking splice of up to n bytes from fd in to fd out.
func spliceOnce(in, out, n int) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
			unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// pump moves body bytes from socket src to socket dst through the pipe: what the pipe holds
// goes out first, then up to left more come in. It reports the bytes taken from src, whether
// anything moved, and an error with the side it happened on (srcErr: reading src). A source
// that ends reports *eof.
//
// A splice that moves less than asked proves nothing (one call stops at the pipe's slots, or a
// socket's segments), so each side is spliced until it says EAGAIN: one failed call per wait.
// The pipe is empty whenever bytes are spliced into it, so EAGAIN there means the socket has
// none, never that the pipe is full.
func (c *conn) pump(p *loopPipe, src, dst int, left int64, in, out *bool, eof *bool) (took int, moved bool, e syscall.Errno, srcErr bool) {
	for {
		for p.bytes > 0 {
			if !*out {
				return took, moved, 0, false
			}
			n, err := spliceOnce(p.r, dst, p.bytes)
			switch {
			case err == syscall.EAGAIN:
				*out = false
				return took, moved, 0, false
			case err != 0:
				return took, moved, err, false
			}
			p.bytes -= n
			moved = true
			if dst == c.cfd {
				c.tx += uint64(n)
			}
		}
		if left-int64(took) <= 0 || !*in || *eof {
			return took, moved, 0, false
		}
		want := int(min(left-int64(took), int64(p.size)))
		n, err := spliceOnce(src, p.w, want)
		switch {
		case err == syscall.EAGAIN:
			*in = false
			return took, moved, 0, false
		case err != 0:
			return took, moved, err, true
		case n == 0:
			*in, *eof = false, true
			return took, moved, 0, false
		}
		p.bytes += n
		took += n
		if src == c.cfd {
			c.rx += uint64(n)
		}
		moved = true
	}
}
