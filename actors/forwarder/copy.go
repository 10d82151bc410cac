package forwarder

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// copyClientBody streams n bytes of request body from the client (its buffer first, then the
// socket, spliced when both ends are TCP) to the backend.
func (c *clientConn) copyClientBody(n int64) error {
	for n > 0 && c.br.Buffered() > 0 {
		b, _ := c.br.Peek(int(min(int64(c.br.Buffered()), n)))
		_ = c.up.conn.SetWriteDeadline(time.Now().Add(c.cfg.bodyTimeout()))
		if _, err := c.writeUpstream(b); err != nil {
			return err
		}
		_, _ = c.br.Discard(len(b))
		n -= int64(len(b))
	}
	if n == 0 {
		return nil
	}
	_, err := c.body.copy(c.up.conn, c.conn, n, c.cfg.bodyTimeout(), c.abort)
	switch {
	case err == nil:
		return nil
	case err == errSourceEnded:
		return clientError{io.ErrUnexpectedEOF} // the client closed mid-body
	case stillOpen(c.up.conn):
		return clientError{err}
	}
	return err
}

// copyFromUpstream streams n bytes of response body (n < 0: until the backend closes) from the
// backend socket to the client; the upstream buffer must be empty.
func (c *clientConn) copyFromUpstream(n int64) error {
	if n == 0 {
		return nil
	}
	w, err := c.body.copy(c.conn, c.up.conn, n, c.cfg.bodyTimeout(), c.abort)
	if w > 0 {
		c.wrote = true
	}
	var oe *net.OpError
	switch {
	case err == nil:
		return nil
	case err == errSourceEnded:
		return io.ErrUnexpectedEOF // the backend closed mid-body
	case asOpError(err, &oe) && oe.Op == "write":
		return clientError{err}
	case !stillOpen(c.up.conn) || isTimeout(err):
		return err
	}
	return clientError{err}
}

func (c *clientConn) draining() bool { return closed(c.drain) }

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// upConn is an upstream connection as dialled: the TCP connection, with what the check before
// each reuse needs made once, so the check allocates nothing.
type upConn struct {
	*net.TCPConn
	rc      syscall.RawConn
	s       *sock // raw reads and writes of the hot path
	check   peek
	checkFn func(uintptr) // check.do, bound once
}

// dialUpstream connects to a backend.
func dialUpstream(addr string, timeout time.Duration) (net.Conn, error) {
	// No TCP keep-alive probes: an idle upstream connection lives at most the upstream idle
	// timeout, and the check before each reuse finds one the backend closed.
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	u := &upConn{TCPConn: tc, rc: rc, s: bindSock(rc, tc)}
	u.checkFn = u.check.do
	return u, nil
}

// rawTCP returns the TCP connection under c, if there is one.
func rawTCP(c any) (*net.TCPConn, bool) {
	switch v := c.(type) {
	case *net.TCPConn:
		return v, true
	case *upConn:
		return v.TCPConn, true
	}
	return nil, false
}

// stillOpen reports whether a connection looks usable: the peer has not closed or reset it and
// has sent nothing unexpected. It peeks without blocking, outside the poller (an old read
// deadline that has passed says nothing about the connection); a connection it cannot inspect
// is assumed open.
func stillOpen(conn net.Conn) bool {
	if u, ok := conn.(*upConn); ok {
		if err := u.rc.Control(u.checkFn); err != nil {
			return false
		}
		return u.check.open
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var p peek
	if err := rc.Control(p.do); err != nil {
		return false
	}
	return p.open
}

type peek struct {
	buf  [1]byte
	open bool
}

func (p *peek) do(fd uintptr) {
	_, e := recvPeek(fd, &p.buf)
	p.open = e == syscall.EAGAIN
}

// isStaleConn reports whether err means the backend had already closed a kept-alive connection
// when the request went down it (nothing of a response arrived).
func isStaleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func asOpError(err error, oe **net.OpError) bool { return errors.As(err, oe) }
