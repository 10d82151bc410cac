package forwarder

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// A body moves between two sockets with an exact inactivity timeout: the copy fails when one
// wait for the source to send or for the destination to take bytes lasts longer than the body
// timeout, and at no other time. The deadline of a side is set when a wait on it begins (from
// inside the RawConn callback that finds it has to wait), so a transfer of any length and any
// rate goes through as long as it never pauses that long, and a fast transfer, which rarely
// waits, sets few deadlines.
//
// Between TCP sockets the bytes go through a pipe with splice(2) and never enter user space.

// errSourceEnded: the source reached the end of its stream before the bytes asked for.
var errSourceEnded = errors.New("forwarder: body source ended early")

// bodyCopy is the state of one body copy; a clientConn keeps one and binds its callbacks once,
// so a copy allocates nothing.
type bodyCopy struct {
	timeout time.Duration
	abort   <-chan struct{} // the client connection's: an abort poke must not be overwritten

	client   net.Conn // the client connection, and its RawConn made once
	clientRC syscall.RawConn

	src, dst        net.Conn
	srcRC, dstRC    syscall.RawConn
	srcUntil        time.Time // the read deadline last set on src
	dstUntil        time.Time // the write deadline last set on dst
	p               *pipe
	want, inPipe, n int
	errno           syscall.Errno
	aborted         bool
	drainFn, pumpFn func(uintptr) bool
}

func (b *bodyCopy) bind() {
	if b.drainFn != nil {
		return
	}
	b.drainFn, b.pumpFn = b.drain, b.pump
}

// copy moves n bytes (n < 0: until the source ends) from src to dst and reports how many it
// wrote. A failure is a *net.OpError with Op "read" (on src) or "write" (on dst); a source that
// ends before n bytes is errSourceEnded.
func (b *bodyCopy) copy(dst, src net.Conn, n int64, timeout time.Duration, abort <-chan struct{}) (int64, error) {
	b.timeout, b.abort, b.aborted = timeout, abort, false
	now := time.Now()
	b.src, b.dst = src, dst
	b.srcUntil, b.dstUntil = now.Add(timeout), now.Add(timeout)
	_ = src.SetReadDeadline(b.srcUntil)
	_ = dst.SetWriteDeadline(b.dstUntil)
	defer func() { b.src, b.dst, b.srcRC, b.dstRC = nil, nil, nil, nil }()
	st, sok := rawTCP(src)
	dt, dok := rawTCP(dst)
	if sok && dok {
		if p, _ := pipePool.Get().(*pipe); p != nil {
			if b.srcRC, b.dstRC = b.rawConnOf(src, st), b.rawConnOf(dst, dt); b.srcRC != nil && b.dstRC != nil {
				b.bind()
				b.p = p
				w, err := b.splice(n)
				b.p = nil
				if b.inPipe == 0 {
					pipePool.Put(p)
				} else {
					p.close() // bytes that never reached dst are in it
				}
				return w, err
			}
			pipePool.Put(p)
		}
	}
	return b.userCopy(n)
}

// rawConnOf returns the RawConn of conn (whose TCP connection is tc): the one made when it was
// dialled or accepted, when there is one, so a copy allocates none.
func (b *bodyCopy) rawConnOf(conn net.Conn, tc *net.TCPConn) syscall.RawConn {
	if conn == b.client && b.clientRC != nil {
		return b.clientRC
	}
	if u, ok := conn.(*upConn); ok {
		return u.rc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// splice is copy through the pipe.
func (b *bodyCopy) splice(n int64) (int64, error) {
	var written int64
	b.inPipe = 0
	for n != 0 {
		b.want = maxPipe
		if n > 0 && n < maxPipe {
			b.want = int(n)
		}
		if err := b.wait(b.srcRC, b.src, true); err != nil {
			return written, err
		}
		if b.errno != 0 {
			return written, b.opError("read", b.src, os.NewSyscallError("splice", b.errno))
		}
		if b.n == 0 {
			if n < 0 {
				return written, nil
			}
			return written, errSourceEnded
		}
		b.inPipe += b.n
		// Empty the pipe into dst.
		for b.inPipe > 0 {
			if err := b.wait(b.dstRC, b.dst, false); err != nil {
				return written, err
			}
			if b.errno != 0 {
				return written, b.opError("write", b.dst, os.NewSyscallError("splice", b.errno))
			}
			b.inPipe -= b.n
			written += int64(b.n)
			if n > 0 {
				n -= int64(b.n)
			}
		}
	}
	return written, nil
}

// wait runs the splice on one side through the poller until it moves bytes (or fails). The
// side's deadline is renewed first when half of it is gone (on a transfer that has not had to
// wait for a while), so that a deadline in force is never one that passed without a wait. A
// timeout before that deadline is someone's poke: a drain's, which a body in progress rides
// out, so the wait goes on; an abort's ends it.
func (b *bodyCopy) wait(rc syscall.RawConn, conn net.Conn, read bool) error {
	op, fn, until := "write", b.pumpFn, &b.dstUntil
	if read {
		op, fn, until = "read", b.drainFn, &b.srcUntil
	}
	if now := time.Now(); until.Sub(now) < b.timeout/2 {
		*until = now.Add(b.timeout)
		b.setDeadline(conn, read, *until)
	}
	for {
		b.n, b.errno = 0, 0
		var err error
		if read {
			err = rc.Read(fn)
		} else {
			err = rc.Write(fn)
		}
		switch {
		case b.aborted:
			return b.opError(op, conn, os.ErrDeadlineExceeded)
		case err == nil:
			return nil
		case !errors.Is(err, os.ErrDeadlineExceeded) || closed(b.abort) || !time.Now().Before(*until):
			return b.opError(op, conn, err)
		}
		b.setDeadline(conn, read, *until)
	}
}

// drain and pump are the poller callbacks: they splice, and when they have to wait they set
// the deadline of the wait first (and give up if the client connection was aborted).
func (b *bodyCopy) drain(fd uintptr) bool {
	if b.spliceIn(fd) {
		return true
	}
	return b.arm(b.src, true)
}

func (b *bodyCopy) pump(fd uintptr) bool {
	if b.spliceOut(fd) {
		return true
	}
	return b.arm(b.dst, false)
}

// arm sets the deadline of a wait about to begin and reports whether to give up instead.
func (b *bodyCopy) arm(conn net.Conn, read bool) bool {
	until := time.Now().Add(b.timeout)
	if read {
		b.srcUntil = until
	} else {
		b.dstUntil = until
	}
	b.setDeadline(conn, read, until)
	if closed(b.abort) {
		b.aborted = true
		return true
	}
	b.errno = 0
	return false
}

func (b *bodyCopy) setDeadline(conn net.Conn, read bool, t time.Time) {
	if read {
		_ = conn.SetReadDeadline(t)
	} else {
		_ = conn.SetWriteDeadline(t)
	}
}

// spliceIn moves up to want bytes from the socket fd into the pipe; false means it would wait.
func (b *bodyCopy) spliceIn(fd uintptr) bool {
	return b.spliceOnce(fd, uintptr(b.p.w), b.want)
}

// spliceOut moves what is in the pipe to the socket fd; false means it would wait.
func (b *bodyCopy) spliceOut(fd uintptr) bool {
	return b.spliceOnce(uintptr(b.p.r), fd, b.inPipe)
}

func (b *bodyCopy) spliceOnce(in, out uintptr, max int) bool {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, in, 0, out, 0, uintptr(max), spliceMove|spliceNonblock)
		switch e {
		case 0:
			b.n, b.errno = int(r), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			b.errno = e
			return false
		}
		b.errno = e
		return true
	}
}

// userCopy is copy through a buffer, for connections that are not both TCP sockets; each read
// and each write gets the body timeout.
func (b *bodyCopy) userCopy(n int64) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var written int64
	for n != 0 {
		p := buf
		if n > 0 && n < int64(len(p)) {
			p = p[:n]
		}
		b.srcUntil = time.Now().Add(b.timeout)
		_ = b.src.SetReadDeadline(b.srcUntil)
		k, rerr := b.src.Read(p)
		if k > 0 {
			_ = b.dst.SetWriteDeadline(time.Now().Add(b.timeout))
			m, werr := b.dst.Write(p[:k])
			written += int64(m)
			if n > 0 {
				n -= int64(m)
			}
			if werr != nil {
				return written, b.opError("write", b.dst, werr)
			}
		}
		switch {
		case rerr == nil:
		case rerr == io.EOF:
			if n < 0 {
				return written, nil
			}
			return written, errSourceEnded
		case errors.Is(rerr, os.ErrDeadlineExceeded) && !closed(b.abort) && time.Now().Before(b.srcUntil):
			// a drain's poke: read on
		default:
			return written, b.opError("read", b.src, rerr)
		}
	}
	return written, nil
}

// opError makes err a *net.OpError with op, unless it is one already with that op.
func (b *bodyCopy) opError(op string, conn net.Conn, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == op {
			return oe
		}
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: err}
}

const (
	spliceMove     = 0x1
	spliceNonblock = 0x2
	fSetPipeSize   = 1031 // F_SETPIPE_SZ
	// maxPipe is the size asked for the pipes, and the most one splice moves: the kernel's
	// default limit for unprivileged pipes (/proc/sys/fs/pipe-max-size).
	maxPipe = 1 << 20
)

// pipe is a kernel pipe bodies are spliced through; it is empty whenever it is in pipePool.
type pipe struct {
	r, w    int
	cleanup runtime.Cleanup // closes the pipe if the pool drops it
}

// pipePool holds the pipes between copies (nil when the system has none to give). A pipe the
// pool drops is closed by its cleanup.
var pipePool = sync.Pool{New: func() any { return newPipe() }}

func newPipe() *pipe {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil
	}
	// A bigger pipe moves more per pair of splices; where the size is refused, the default
	// (64 KiB) does the job with more calls.
	_, _, _ = syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fds[1]), fSetPipeSize, maxPipe)
	p := &pipe{r: fds[0], w: fds[1]}
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p
}

// close closes a pipe that cannot go back to the pool (bytes are left in it).
func (p *pipe) close() {
	p.cleanup.Stop()
	closePipe([2]int{p.r, p.w})
}

func closePipe(fds [2]int) {
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
}
