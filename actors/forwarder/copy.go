package forwarder

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// A body is copied in chunks, and the deadlines are pushed forward before each: the body timeout
// is an inactivity timeout, approximated per chunk (a chunk must move within one body timeout).
// Chunks start at minChunk (a pipe's worth), so a slow peer only has to move that much per
// timeout, and double while each one takes under a thirty-second of the timeout, up to maxChunk
// (what one splice call moves): on a fast transfer the per-chunk costs (two deadline sets, a pipe
// from the pool, the splice loop's setup) are paid once per MiB instead of every 64 KiB, which on
// loopback moves 1 MiB responses about 25% faster for 20% less CPU. A grown chunk still fails
// only if the peer slows down more than 32-fold within it (with the default 60 s timeout, to under
// 17 KiB/s); a chunk that takes over a quarter of the timeout halves the size again.
const (
	minChunk = 64 << 10
	maxChunk = 1 << 20
)

// chunker sizes the chunks of the body copies in one direction of a client connection (its
// size carries over from one request to the next).
type chunker struct{ size int64 }

// next is the size of the next chunk of a copy with n bytes left.
func (k *chunker) next(n int64) int64 {
	if k.size == 0 {
		k.size = minChunk
	}
	return min(n, k.size)
}

// moved records that a chunk of want bytes moved got bytes in took, against the body timeout.
func (k *chunker) moved(want, got int64, took, timeout time.Duration) {
	switch {
	case got == want && want == k.size && took < timeout/32:
		k.size = min(2*k.size, maxChunk)
	case took > timeout/4:
		k.size = max(k.size/2, minChunk)
	}
}

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
	resumed := false
	k := &c.upChunks
	for n > 0 {
		timeout := c.cfg.bodyTimeout()
		start := time.Now()
		deadline := start.Add(timeout)
		_ = c.conn.SetReadDeadline(deadline)
		_ = c.up.conn.SetWriteDeadline(deadline)
		want := k.next(n)
		c.lr = io.LimitedReader{R: c.conn, N: want}
		w, err := copyConn(c.up.conn, &c.lr)
		n -= w
		k.moved(want, w, time.Since(start), timeout)
		if err == nil && w == 0 {
			return clientError{io.ErrUnexpectedEOF} // the client closed mid-body
		}
		if err != nil {
			if isTimeout(err) && !resumed && c.draining() && !c.aborted() {
				// The drain poke hit an upload in progress: it has until the body timeout.
				resumed = true
				continue
			}
			if stillOpen(c.up.conn) {
				return clientError{err}
			}
			return err
		}
	}
	return nil
}

// copyFromUpstream streams n bytes of response body (n < 0: until the backend closes) from the
// backend socket to the client; the upstream buffer must be empty.
func (c *clientConn) copyFromUpstream(n int64) error {
	untilClose := n < 0
	if untilClose {
		n = 1 << 62
	}
	k := &c.downChunks
	for n > 0 {
		timeout := c.cfg.bodyTimeout()
		start := time.Now()
		deadline := start.Add(timeout)
		_ = c.up.conn.SetReadDeadline(deadline)
		_ = c.conn.SetWriteDeadline(deadline)
		want := k.next(n)
		c.lr = io.LimitedReader{R: c.up.conn, N: want}
		w, err := copyConn(c.conn, &c.lr)
		n -= w
		k.moved(want, w, time.Since(start), timeout)
		if w > 0 {
			c.wrote = true
		}
		if err == nil && w == 0 {
			if untilClose {
				return nil
			}
			return io.ErrUnexpectedEOF // the backend closed mid-body
		}
		if err != nil {
			var oe *net.OpError
			if asOpError(err, &oe) && oe.Op == "write" {
				return clientError{err}
			}
			if !stillOpen(c.up.conn) || isTimeout(err) {
				return err
			}
			return clientError{err}
		}
	}
	return nil
}

func (c *clientConn) draining() bool {
	select {
	case <-c.drain:
		return true
	default:
		return false
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyConn copies lr to dst: a splice in the kernel when both are TCP connections.
func copyConn(dst net.Conn, lr *io.LimitedReader) (int64, error) {
	if tcp, ok := rawTCP(dst); ok {
		if src, ok := rawTCP(lr.R); ok {
			lr.R = src // net splices only between its own connection types
			return tcp.ReadFrom(lr)
		}
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	return io.CopyBuffer(onlyWriter{dst}, lr, *bp)
}

// onlyWriter hides ReaderFrom so io.CopyBuffer uses the given buffer.
type onlyWriter struct{ io.Writer }

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
