package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// bodyChunk is how many body bytes move between two renewals of the connection's deadline:
// a body may take as long as it likes, as long as each chunk arrives within the timeout.
const bodyChunk = 1 << 20

// lingerTimeout bounds how long a closing connection keeps reading (and dropping) what the
// client still sends, so that the client receives the last response instead of a reset.
const lingerTimeout = 2 * time.Second

// server serves the files of the working directory to connections accepted by serve.
type server struct {
	// slots is the -N semaphore: a request holds one slot from the end of its head (or of its
	// --delay) to the end of its response (body received or sent, log entry written). Idle
	// keep-alive connections, clients still sending a head, and requests waiting out --delay
	// hold none.
	slots chan struct{}
	// log is the request log and counters; nil when logging is off.
	log *requestLog
	// closeEach closes every connection after its first response (--close).
	closeEach bool
	// timeout is how long a connection may be idle, or a head or body chunk may take.
	timeout time.Duration
	// delay is how long every answer but /healthcheck's waits before it is processed and
	// written (--delay); zero for none. The wait holds no slot.
	delay time.Duration
	// delays counts the requests waiting out delay, so that drain can wait for them too.
	delays delayCount
	// newFileMode is the mode of a file created by PUT: 0666 less the umask.
	newFileMode fs.FileMode
	// stderr receives accept errors.
	stderr io.Writer
	// conns counts the connections being served.
	conns sync.WaitGroup
}

// serve accepts connections on ln until ln is closed, each served on its own goroutine.
func (s *server) serve(ln net.Listener) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and try again.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			fmt.Fprintf(s.stderr, "httpserver: accept: %v; retrying in %v\n", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(c)
		}()
	}
}

// drain waits until no request is being processed, first for the requests waiting out
// --delay to take their slots, then by taking every slot (requests that arrive later wait for
// a slot forever, without a delay), and returns false if that took longer than grace.
func (s *server) drain(grace time.Duration) bool {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	select {
	case <-s.delays.close():
	case <-deadline.C:
		return false
	}
	for range cap(s.slots) {
		select {
		case s.slots <- struct{}{}:
		case <-deadline.C:
			return false
		}
	}
	return true
}

// delayCount counts the requests waiting out --delay, which hold no slot, until drain closes
// it; from then on no request starts a delay, and the channel close returns is closed once the
// last delayed request has its slot. Like the request log, it is guarded by a token (a channel
// of capacity 1) rather than a mutex. The zero value is ready to use.
type delayCount struct {
	token   chan struct{} // made on first use; holding its one value guards the fields below
	once    sync.Once
	n       int
	closed  bool
	drained chan struct{} // made by close; closed when closed is set and n is zero
}

// lock takes the token; unlock gives it back.
func (d *delayCount) lock() {
	d.once.Do(func() { d.token = make(chan struct{}, 1) })
	d.token <- struct{}{}
}

func (d *delayCount) unlock() { <-d.token }

// begin counts one more delayed request; false means the server is draining and the request
// must not wait.
func (d *delayCount) begin() bool {
	d.lock()
	defer d.unlock()
	if d.closed {
		return false
	}
	d.n++
	return true
}

// end uncounts a delayed request that begin counted. A request that goes on to be answered
// must hold its slot by then, so that drain, which takes every slot once close's channel is
// closed, waits for it.
func (d *delayCount) end() {
	d.lock()
	defer d.unlock()
	d.n--
	if d.closed && d.n == 0 {
		close(d.drained)
	}
}

// close stops new delays and returns a channel that is closed when no request is delayed.
// Call it once.
func (d *delayCount) close() <-chan struct{} {
	d.lock()
	defer d.unlock()
	d.closed = true
	d.drained = make(chan struct{})
	if d.n == 0 {
		close(d.drained)
	}
	return d.drained
}

// conn is one client connection, owned by the goroutine that serves it.
type conn struct {
	srv *server
	c   net.Conn
	// br reads request heads (and the start of bodies); its reads go through a flushReader
	// so that any pending response bytes are sent before the server blocks on the client.
	br *bufio.Reader
	// bw collects response heads and small bodies; responses to pipelined requests go out
	// together when the server next has to wait for the client.
	bw *bufio.Writer
	// req is the request being served.
	req request
	// bodyLeft is how many bytes of the current request's body are still unread.
	bodyLeft int64
	// lr is reused for every bounded copy.
	lr io.LimitedReader
	// healthBuf is the scratch buffer for a health-check body.
	healthBuf [48]byte
}

// flushReader is the reader under conn.br: it sends whatever is buffered in bw before
// reading, so a client never waits for a response that sits in the buffer.
type flushReader struct {
	c  net.Conn
	bw *bufio.Writer
}

func (f *flushReader) Read(p []byte) (int, error) {
	if f.bw.Buffered() > 0 {
		if err := f.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return f.c.Read(p)
}

// serveConn serves requests on c in order until the client closes, a request asks to close,
// --close is set, or something fails; then it closes c gracefully.
func (s *server) serveConn(c net.Conn) {
	cc := &conn{srv: s, c: c}
	cc.bw = bufio.NewWriterSize(c, 8<<10)
	cc.br = bufio.NewReaderSize(&flushReader{c: c, bw: cc.bw}, maxHead)
	for cc.serveOne() {
	}
	if cc.bw.Flush() == nil {
		lingerClose(c)
	}
	c.Close()
}

// serveOne reads one request, waits out --delay unless it is a health check, and answers
// it; it reports whether the connection goes on.
func (cc *conn) serveOne() bool {
	cc.extendDeadline()
	r := &cc.req
	if err := r.read(cc.br); err != nil {
		return false // closed, reset or timed out before a whole head: nothing to answer
	}
	cc.bodyLeft = 0
	if !r.unframed && r.contentLength > 0 {
		cc.bodyLeft = r.contentLength
	}

	delayed := cc.srv.delay > 0 && string(r.name) != "healthcheck" && cc.srv.delays.begin()
	if delayed {
		// Answers to earlier pipelined requests do not wait for this one's delay.
		if cc.bw.Flush() != nil {
			cc.srv.delays.end()
			return false
		}
		time.Sleep(cc.srv.delay)
	}
	cc.srv.slots <- struct{}{}
	if delayed {
		cc.srv.delays.end()
	}
	ok := cc.handle()
	<-cc.srv.slots

	if !ok || r.unframed || r.closeAfter || cc.srv.closeEach {
		return false
	}
	if cc.bodyLeft > 0 { // a body nobody wanted (an error answer, a GET with a body)
		if err := cc.copyBody(io.Discard, cc.bodyLeft); err != nil {
			return false
		}
	}
	return true
}

// handle answers the request in cc.req; false means the connection cannot go on.
func (cc *conn) handle() bool {
	cc.extendDeadline()
	r := &cc.req
	switch {
	case r.bad:
		return cc.fail(400)
	case string(r.name) == "healthcheck":
		return cc.serveHealth()
	case r.method == methodGet:
		return cc.serveGet()
	case r.method == methodHead:
		return cc.serveHead()
	default:
		return cc.servePut()
	}
}

// serveHealth answers /healthcheck: GET with logging on is 200 with "<errors>\n<entries>",
// with logging off 404; HEAD and PUT are 403.
func (cc *conn) serveHealth() bool {
	switch {
	case cc.req.method != methodGet:
		return cc.fail(403)
	case cc.srv.log == nil:
		return cc.fail(404)
	}
	body := cc.srv.log.health(cc.req.name, cc.healthBuf[:0])
	cc.writeHead(200, int64(len(body)))
	_, _ = cc.bw.Write(body)
	return true
}

// fail logs the request as failed and answers code with an empty body. The request body, if
// any, is skipped afterwards by serveOne.
func (cc *conn) fail(code int) bool {
	cc.srv.log.fail(cc.req.line, code)
	cc.writeHead(code, 0)
	return true
}

// statusText returns the start of a response: status line and the Content-Length name.
func statusText(code int) string {
	switch code {
	case 200:
		return "HTTP/1.1 200 OK\r\nContent-Length: "
	case 201:
		return "HTTP/1.1 201 Created\r\nContent-Length: "
	case 400:
		return "HTTP/1.1 400 Bad Request\r\nContent-Length: "
	case 403:
		return "HTTP/1.1 403 Forbidden\r\nContent-Length: "
	case 404:
		return "HTTP/1.1 404 Not Found\r\nContent-Length: "
	}
	return "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
}

// writeHead buffers a response head: the status line and the one header, Content-Length.
// Write errors stick in bw and surface at the next flush.
func (cc *conn) writeHead(code int, length int64) {
	b := cc.bw.AvailableBuffer()
	b = append(b, statusText(code)...)
	b = strconv.AppendInt(b, length, 10)
	b = append(b, "\r\n\r\n"...)
	_, _ = cc.bw.Write(b)
}

// sendBody sends n bytes of f after the buffered head: a small body is copied into the buffer
// to go out with the head, a larger one is sent from the file with sendfile(2), in chunks so
// the deadline is renewed as it moves. An error means the connection cannot go on.
func (cc *conn) sendBody(f *os.File, n int64) error {
	if n <= int64(cc.bw.Available()) {
		b := cc.bw.AvailableBuffer()[:n]
		if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			return err // shorter than promised: the connection must close
		}
		_, err := cc.bw.Write(b)
		return err
	}
	if err := cc.bw.Flush(); err != nil {
		return err
	}
	for sent := int64(0); sent < n; {
		cc.extendDeadline()
		cc.lr = io.LimitedReader{R: f, N: min(bodyChunk, n-sent)}
		k, err := io.Copy(cc.c, &cc.lr)
		sent += k
		if err != nil {
			return err
		}
		if cc.lr.N > 0 {
			return io.ErrUnexpectedEOF // the file shrank behind our back
		}
	}
	return nil
}

// receiveBody copies the request body (cc.bodyLeft bytes) to dst; see copyBody.
func (cc *conn) receiveBody(dst io.Writer, n int64) error {
	if err := cc.bw.Flush(); err != nil { // earlier pipelined answers go out first
		return err
	}
	return cc.copyBody(dst, n)
}

// copyBody copies the next n bytes of the request body to dst: first what br has buffered,
// then straight from the socket (splice(2) into a file), renewing the deadline for every
// bodyChunk bytes. It returns io.ErrUnexpectedEOF when the client ends the body early.
func (cc *conn) copyBody(dst io.Writer, n int64) error {
	if k := min(int64(cc.br.Buffered()), n); k > 0 {
		b, _ := cc.br.Peek(int(k))
		m, err := dst.Write(b)
		_, _ = cc.br.Discard(m)
		cc.bodyLeft -= int64(m)
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	for n > 0 {
		cc.extendDeadline()
		chunk := min(bodyChunk, n)
		cc.lr = io.LimitedReader{R: cc.c, N: chunk}
		k, err := io.Copy(dst, &cc.lr)
		cc.bodyLeft -= k
		n -= k
		if err != nil {
			return err
		}
		if k < chunk {
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}

// extendDeadline gives the connection another timeout to make progress.
func (cc *conn) extendDeadline() {
	_ = cc.c.SetDeadline(time.Now().Add(cc.srv.timeout))
}

// lingerClose half-closes c and reads until the client closes its side or lingerTimeout
// passes, so that unread input (a pipelined request, a body nobody wanted) does not make the
// kernel reset the connection before the client has read the last response.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, c)
}
