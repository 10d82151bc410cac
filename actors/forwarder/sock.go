package forwarder

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// sock does the reads and writes of the hot path on one TCP connection with raw system calls,
// through the connection's RawConn: the runtime's poller still does the waiting (and the read
// and write deadlines still hold), but a read or write that does not have to wait never enters
// the scheduler's system-call bookkeeping. The sockets are non-blocking, so a raw call returns
// at once; a plain net.Conn call instead marks its P as in a system call, and on loopback,
// where a write does the receiving side's TCP work too, the runtime's monitor often takes the
// P away mid-write and wakes another thread to run it: a futex wake and two context switches
// for nothing on a machine whose cores are busy anyway.
//
// Deadlines can be lazy (readLazy, writeLazy): the first try runs outside the poller, which
// ignores deadlines, and the deadline is set only when the call has to wait. Setting one is a
// runtime timer to move, a third of a microsecond, and on a busy keep-alive connection nearly
// every read finds its bytes waiting and every write goes straight into the send buffer.
//
// A sock belongs to the goroutine that uses the connection; its callbacks are bound once, so
// reads and writes allocate nothing.
type sock struct {
	rc      syscall.RawConn
	conn    net.Conn // for the addresses in errors
	p       []byte   // what the callback reads into or writes from
	n       int
	errno   syscall.Errno
	again   bool // a first try outside the poller found it would have to wait
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
	tryRead func(uintptr)
	tryWrit func(uintptr)
}

// newSock returns a sock for conn, or nil when conn is not a socket the runtime polls.
func newSock(conn net.Conn) *sock { return reuseSock(nil, conn) }

// reuseSock is newSock that reuses s (a sock of an earlier connection, possibly nil) and its
// bound callbacks.
func reuseSock(s *sock, conn net.Conn) *sock {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	if s == nil {
		return bindSock(rc, conn)
	}
	*s = sock{rc: rc, conn: conn, readFn: s.readFn, writeFn: s.writeFn, tryRead: s.tryRead, tryWrit: s.tryWrit}
	return s
}

// bindSock makes the sock of conn, whose RawConn is rc.
func bindSock(rc syscall.RawConn, conn net.Conn) *sock {
	s := &sock{rc: rc, conn: conn}
	s.readFn, s.writeFn = s.doRead, s.doWrite
	s.tryRead = func(fd uintptr) { s.again = !s.doRead(fd) }
	s.tryWrit = func(fd uintptr) { s.again = !s.doWrite(fd) }
	return s
}

// read reads into p like net.Conn.Read: at least one byte, io.EOF at the end of the stream, or
// a *net.OpError (Op "read") for a deadline, a closed connection or a socket error.
func (s *sock) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.errno = p, 0, 0
	err := s.rc.Read(s.readFn)
	s.p = nil
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case s.errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", s.errno))
	case s.n == 0:
		return 0, io.EOF
	}
	return s.n, nil
}

// readLazy is read with a lazy deadline: only when nothing is waiting to be read does it call
// arm, which sets the read deadline (and may refuse, say for an abort, with an error to return).
func (s *sock) readLazy(p []byte, arm func() error) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.errno, s.again = p, 0, 0, false
	err := s.rc.Control(s.tryRead)
	s.p = nil
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case s.again:
		if err := arm(); err != nil {
			return 0, err
		}
		return s.read(p)
	case s.errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", s.errno))
	case s.n == 0:
		return 0, io.EOF
	}
	return s.n, nil
}

func (s *sock) doRead(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.p[0])), uintptr(len(s.p)))
		switch e {
		case 0:
			s.n = int(r)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the poller
		}
		s.errno = e
		return true
	}
}

// write writes all of p like net.Conn.Write, waiting for room as often as it takes.
func (s *sock) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.errno = p, 0, 0
	err := s.rc.Write(s.writeFn)
	s.p = nil
	n := s.n
	switch {
	case err != nil:
		return n, s.opError("write", err)
	case s.errno != 0:
		return n, s.opError("write", os.NewSyscallError("write", s.errno))
	}
	return n, nil
}

// writeLazy is write with a lazy deadline: only when the send buffer fills does it set the write
// deadline, timeout from then, and wait; abort, if closed once the deadline is set, ends the write
// as that deadline would (its poke may have come before, and been overwritten).
func (s *sock) writeLazy(p []byte, timeout time.Duration, abort <-chan struct{}) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.errno, s.again = p, 0, 0, false
	err := s.rc.Control(s.tryWrit)
	rest, n := s.p, s.n
	s.p = nil
	switch {
	case err != nil:
		return n, s.opError("write", err)
	case s.again:
		_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
		if closed(abort) {
			return n, s.opError("write", os.ErrDeadlineExceeded)
		}
		m, err := s.write(rest)
		return n + m, err
	case s.errno != 0:
		return n, s.opError("write", os.NewSyscallError("write", s.errno))
	}
	return n, nil
}

func (s *sock) doWrite(fd uintptr) bool {
	for len(s.p) > 0 {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.p[0])), uintptr(len(s.p)))
		switch e {
		case 0:
			s.n += int(r)
			s.p = s.p[r:]
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the send buffer is full: wait for the poller
		}
		s.errno = e
		return true
	}
	return true
}

// recvPeek is one non-blocking MSG_PEEK of a byte on fd: the byte count, or the error
// (EAGAIN when there is nothing to read).
func recvPeek(fd uintptr, b *[1]byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return int(r), e
	}
}

// opError turns an error of the RawConn, or of the system call, into the *net.OpError a
// net.Conn would have returned, with op "read" or "write" (the RawConn says "raw-read").
func (s *sock) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
