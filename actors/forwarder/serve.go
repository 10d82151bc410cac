package forwarder

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// clientConn is everything the I/O goroutine of one client connection owns. No other goroutine
// touches it (the tunnel goroutine of an upgraded connection only touches the two sockets).
type clientConn struct {
	cfg    *Config
	system *actor.ActorSystem
	self   *actor.PID // the Forwarder
	conn   net.Conn
	rd     deadlineReader // conn, as br reads it
	cs     *sock          // conn's raw reads and writes; nil when conn is not a socket
	br     *bufio.Reader
	abort  <-chan struct{}
	drain  <-chan struct{}

	ep     *reply.Endpoint // kept across connections while it owes nothing (settleEndpoint)
	epOwed bool            // a pick gave up waiting: its reply may still come to ep
	// pickMsg is reused for every pick: we own it again once the answer is in. One whose answer
	// never came goes with its endpoint (settleEndpoint): the Dispatcher may not have read it.
	pickMsg *messages.PickBackend
	timer   *time.Timer      // bounds the wait for the Dispatcher's answer
	pending messages.Release // the lease to give back, folded into the next pick if one follows at once
	// relMsg is reused (see messages.ReleaseLease for why that is safe) and outlives reset: the
	// Dispatcher may still read the one the previous connection sent last, but the next write to
	// it comes after a pick of the next connection was answered.
	relMsg *messages.ReleaseLease

	req    wire.RequestHead
	resp   wire.ResponseHead
	up     upstream
	upAddr string // the backend of the exchange in progress (Host for HTTP/1.0 requests without one)

	out      []byte        // scratch for heads written out (from outp)
	outp     *[]byte       // out's pooled backing, nil while idle
	clientIP []byte        // for X-Forwarded-For, computed once
	bw       *bufio.Writer // batches small writes of chunked bodies

	body bodyCopy // the state of a body copy (callbacks bound once)

	held      int  // bytes of request body held in the buffer for a possible replay
	unsent    bool // the request body was never sent (a final answer came before 100-continue)
	interim   bool // an interim (1xx) response went to the client
	dechunked bool // the response was de-chunked for an HTTP/1.0 client
	stale     bool // this request met an idle upstream connection the backend had closed
	closing   bool // the client connection closes after the current response
	inRequest bool // a request head was read and not yet answered
	wrote     bool // a byte of the current response reached the client
	parked    bool // the connection went to the Forwarder to be parked; this goroutine is done
	fresh     bool // the next wait is this goroutine's first
	waited    bool // readable: the poller reported the connection since the peek

	rc         syscall.RawConn    // conn's, when it is a socket: waits hold no buffer
	readableFn func(uintptr) bool // c.readable, bound once
	peek       [1]byte

	idleUntil time.Time // when the current keep-alive wait times out

	lease      messages.Lease // the lease of the exchange in progress
	checkAfter time.Duration  // its BackendPicked.CheckAfter
	sentAt     time.Time      // when the request went out (as the response deadline was set)
	headAfter  time.Duration  // the time from sentAt to the final response head
	resends    int            // times the current request was sent again after a broken connection
}

// upstream is the backend connection of the exchange in progress.
type upstream struct {
	conn   net.Conn
	rd     deadlineReader
	s      *sock         // conn's raw reads and writes; nil when conn is not a dialled socket
	br     *bufio.Reader // reset onto each upstream connection; empty between exchanges
	reused bool          // handed over idle by the Dispatcher
}

var crlfcrlf = []byte("\r\n\r\n")

// idleHold is how long an idle client connection keeps its goroutine waiting for the next
// request before it parks with the IdleWatcher (Config.Idle): a busy keep-alive connection never
// pays for parking and waking, and thousands of idle ones cost no goroutine stacks.
const idleHold = 100 * time.Millisecond

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	outPool    = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// reset makes c ready to serve j's connection. c belongs to one I/O goroutine (ioWorker), which
// serves connection after connection with it: everything about the previous connection is
// cleared, and what c made for it and holds nothing of it is kept (the head buffers, the timer,
// the chunk writer, the sock and the bound callbacks, the reply endpoint and the reused
// messages: serve ends with none of those that a reply may still come to or a Dispatcher may
// still read). The connection's identity is set first: serve runs reset inside its recover,
// and a panic here must still reach this connection's Forwarder.
func (c *clientConn) reset(j ioJob) {
	// The reused messages are safe to write again once a pick of the next connection was
	// answered, because the Dispatcher reads its mailbox in order; that holds for one
	// Dispatcher only (tests run several, and several actor systems, in one process).
	same := c.cfg != nil && c.system == j.system && samePID(c.cfg.Dispatcher, j.cfg.Dispatcher)
	ep, rel, pick := c.ep, c.relMsg, c.pickMsg
	*c = clientConn{
		cfg: j.cfg, system: j.system, self: j.self, conn: j.conn, abort: j.abort, drain: j.drain,
		timer: c.timer, req: c.req, resp: c.resp, bw: c.bw, clientIP: c.clientIP[:0],
		cs: c.cs, readableFn: c.readableFn,
		body: bodyCopy{drainFn: c.body.drainFn, pumpFn: c.body.pumpFn},
		rd:   deadlineReader{armFn: c.rd.armFn},
	}
	if same {
		c.ep, c.relMsg, c.pickMsg = ep, rel, pick
	} else if ep != nil {
		ep.Close()
	}
	if c.readableFn == nil {
		c.readableFn = c.readable
	}
	c.rd.conn, c.rd.drain, c.rd.abort = c.conn, c.drain, c.abort
	c.fresh = true
	if c.cs = reuseSock(c.cs, c.conn); c.cs != nil {
		c.rd.s = c.cs
		c.rc = c.cs.rc
		c.body.client, c.body.clientRC = c.conn, c.rc
	}
	c.acquireBuffers()
	if a, ok := c.conn.RemoteAddr().(*net.TCPAddr); ok {
		c.clientIP = a.AddrPort().Addr().Unmap().AppendTo(c.clientIP)
	}
}

func samePID(a, b *actor.PID) bool { return a == b || a != nil && b != nil && a.Equal(b) }

// serve makes c ready for j's connection (reset) and runs it until it closes or parks. It
// recovers any panic and answers the client if it can. It ends either by closing the connection
// and sending ServeEnded, or by parking it (ConnParked), both to the Forwarder. It reports false
// after a panic: c is then in an unknown state, and the caller throws it away (dispose).
func (c *clientConn) serve(j ioJob) (ok bool) {
	var panicked any
	var stack []byte
	defer func() {
		if r := recover(); r != nil {
			panicked, stack = r, debug.Stack()
			if c.inRequest && !c.wrote {
				c.writeClient(errorResponse(c.cfg.Errors, failInternal))
			}
		}
		if !c.parked {
			c.finish()
			c.system.Root.Send(c.self, &messages.ServeEnded{Panic: panicked, Stack: stack})
		}
		ok = panicked == nil
	}()
	c.reset(j)
	if c.ep == nil {
		c.ep = reply.NewWithDrop(c.system, 4, dropReply(c.system, c.cfg.Dispatcher))
	}
	if c.pickMsg == nil {
		c.pickMsg = new(messages.PickBackend)
	}
	*c.pickMsg = messages.PickBackend{Holder: c.self, ReplyTo: c.ep.PID()}
	if c.timer == nil {
		c.timer = time.NewTimer(time.Hour)
		c.timer.Stop()
	}
	if c.loop() == waitPark {
		c.park()
	}
	return true
}

// settleEndpoint closes the reply endpoint when a reply may still come to it (a pick that gave
// up, see awaitPick) or one is unread: only an endpoint that owes nothing serves the next
// connection. The pick that gave up may be unread in the Dispatcher's mailbox, so its message
// is not reused either.
func (c *clientConn) settleEndpoint() {
	if c.epOwed {
		c.pickMsg = nil
	}
	if c.ep != nil && (c.epOwed || len(c.ep.C) > 0) {
		c.ep.Close()
		c.ep = nil
	}
}

// dispose gives back what c keeps between connections; c is not used again.
func (c *clientConn) dispose() {
	if c.ep != nil {
		c.ep.Close()
		c.ep = nil
	}
	if c.timer != nil {
		c.timer.Stop()
	}
}

// dropReply returns what an endpoint calls with every Dispatcher answer it drops, one nobody
// will use: it came after its pick gave up (the pick timeout, or an abort), or was still unread
// when the endpoint closed. A grant's idle upstream connection is closed, and the Dispatcher
// (disp, in sys) is told to forget the grant's holder, which gives the lease back: that
// holder's connection is ending, and the Acceptor's ForgetHolder for it may have come before
// this pick and found nothing to take back.
func dropReply(sys *actor.ActorSystem, disp *actor.PID) func(any) {
	return func(m any) {
		p, ok := m.(*messages.BackendPicked)
		if !ok {
			return
		}
		if p.Idle != nil {
			_ = p.Idle.Close()
		}
		if p.Holder != nil {
			sys.Root.Send(disp, &messages.ForgetHolder{Holder: p.Holder})
		}
	}
}

// park gives back everything but the connection, and hands the connection to the Forwarder
// (ConnParked), which has the IdleWatcher watch it; this goroutine then ends, or serves another
// connection (runIO). There is no lease (awaitRequest flushed it) and nothing buffered.
func (c *clientConn) park() {
	c.releaseBuffers()
	c.settleEndpoint()
	c.timer.Stop()
	c.system.Root.Send(c.self, &messages.ConnParked{IdleUntil: c.idleUntil})
	c.parked = true
}

// finish gives back what the connection holds and closes it.
func (c *clientConn) finish() {
	if c.up.conn != nil {
		_ = c.up.conn.Close()
		c.up.conn = nil
	}
	c.flushRelease()
	_ = c.conn.Close()
	c.releaseBuffers()
	c.settleEndpoint()
	if c.timer != nil {
		c.timer.Stop()
	}
}

// loop serves requests until the connection closes (waitClose) or parks (waitPark).
func (c *clientConn) loop() waitResult {
	for {
		if w := c.awaitRequest(); w != waitRequest {
			return w
		}
		c.inRequest, c.wrote, c.closing = true, false, false
		c.rd.setUntil(time.Now().Add(c.cfg.headerTimeout()))
		err := c.req.Read(c.br, c.cfg.Limits)
		c.rd.setUntil(time.Time{})
		if err != nil {
			c.badRequest(err)
			return waitClose
		}
		if c.cfg.crashEnabled() {
			c.crashPoint("before-pick")
		}
		keep := c.handle()
		c.inRequest = false
		if !keep {
			return waitClose
		}
	}
}

// acquireBuffers takes the connection's buffers from the pools.
func (c *clientConn) acquireBuffers() {
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.rd)
	c.acquireExchangeBuffers()
}

// acquireExchangeBuffers takes the buffers only an exchange uses: the upstream reader and the
// scratch for heads.
func (c *clientConn) acquireExchangeBuffers() {
	if c.up.br != nil {
		return
	}
	c.up.br = readerPool.Get().(*bufio.Reader)
	c.up.br.Reset(&c.up.rd)
	c.outp = outPool.Get().(*[]byte)
	c.out = (*c.outp)[:0]
}

// releaseBuffers gives the buffers back while the connection idles; they hold nothing.
func (c *clientConn) releaseBuffers() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
	c.releaseExchangeBuffers()
}

// releaseExchangeBuffers gives back the buffers only an exchange uses, between exchanges.
func (c *clientConn) releaseExchangeBuffers() {
	if c.up.br == nil {
		return
	}
	c.up.br.Reset(nil)
	readerPool.Put(c.up.br)
	*c.outp = c.out[:0]
	outPool.Put(c.outp)
	c.up.br, c.outp, c.out = nil, nil, nil
}

// waitResult is what awaitRequest saw.
type waitResult uint8

const (
	waitRequest waitResult = iota // a request is coming: read its head
	waitClose                     // close the connection
	waitPark                      // hand the idle connection to the IdleWatcher
)

// awaitRequest waits for the first byte of the next request. It reports waitClose when the
// client left, the keep-alive idle timeout passed, or the load balancer is draining, and
// waitPark when there is an IdleWatcher and idleHold passed without a byte (see waitReadable
// for the buffers it holds meanwhile).
func (c *clientConn) awaitRequest() waitResult {
	if c.br != nil {
		if n := c.br.Buffered(); n > 0 {
			if b, _ := c.br.Peek(n); bytes.Contains(b, crlfcrlf) {
				return waitRequest // a pipelined head is in: the pending release rides on its pick
			}
			// Part of a head (or a stray CRLF): its rest may take until the header timeout,
			// which no slot waits for.
			c.flushRelease()
			return waitRequest
		}
	}
	c.flushRelease() // nobody knows when the next request comes: give the slot back now
	now := time.Now()
	c.idleUntil = now.Add(c.cfg.idleTimeout())
	until := c.idleUntil
	if c.cfg.Idle != nil && c.rc != nil {
		until = now.Add(min(c.cfg.idleTimeout(), idleHold))
	}
	_ = c.conn.SetReadDeadline(until)
	// Checked after setting the deadline: a drain that pokes the deadline before this line is
	// seen here, one after it wakes the wait below.
	if c.draining() || c.aborted() {
		return waitClose
	}
	// Yield once before looking: the response just went out, and on a busy connection the
	// client's next request is usually in by the time this goroutine runs again, so the read
	// that fetches it is the only system call, where looking at once mostly finds nothing (a
	// failed read, then a park on the poller and a wake-up). The same trick as before reading
	// the response head (readResponseHead); tests/bench small: 3-7% more requests/s, 0.3-0.8
	// µs less CPU per request, p99 no worse.
	runtime.Gosched()
	err := c.waitReadable()
	switch {
	case err == nil:
		return waitRequest
	case !isTimeout(err) || !time.Now().Before(c.idleUntil) || c.draining() || c.aborted():
		return waitClose
	}
	return waitPark
}

// waitReadable waits until the client connection has something to read (a byte, the end of
// the stream or an error), or its read deadline passes.
//
// With an IdleWatcher the wait is a plain buffered read: the goroutine waits only idleHold
// before the connection parks without buffers, and on a busy connection the next request is
// usually in by the time the goroutine runs again after yielding, so the read that fetches it
// is the only system call. Without one, a socket is waited on without a buffer: the buffers go
// back to the pools first and are taken again once a byte is in, so an idle connection holds
// none (a peek that finds nothing, the wait, then the read), except on the first wait of a
// goroutine, where a byte is likely in already and the buffered read goes first.
func (c *clientConn) waitReadable() error {
	if c.rc == nil || c.fresh || c.cfg.Idle != nil {
		c.fresh = false
		if c.br == nil {
			c.br = readerPool.Get().(*bufio.Reader)
			c.br.Reset(&c.rd)
		}
		// Only the client reader is held while the goroutine waits.
		c.releaseExchangeBuffers()
		_, err := c.br.Peek(1)
		c.acquireExchangeBuffers()
		return err
	}
	c.releaseBuffers()
	c.waited = false
	if err := c.rc.Read(c.readableFn); err != nil {
		return err
	}
	c.acquireBuffers()
	return nil
}

// readable is waitReadable's callback for RawConn.Read: false (wait for the poller) while a
// peek finds nothing to read; true once it finds something, or after a wait.
func (c *clientConn) readable(fd uintptr) bool {
	if c.waited {
		return true
	}
	if _, e := recvPeek(fd, &c.peek); e == syscall.EAGAIN {
		c.waited = true
		return false
	}
	return true
}

// badRequest answers a request head that could not be read, when there is someone to answer.
func (c *clientConn) badRequest(err error) {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		c.writeClient(badRequestResponse(err))
	case isTimeout(err) && !c.aborted():
		c.writeClient(resp408)
	}
	c.inRequest = false
}

func (c *clientConn) aborted() bool { return closed(c.abort) }

// handle serves one request whose head is in c.req, and reports whether the client connection
// may carry another.
func (c *clientConn) handle() bool {
	// A body that is already wholly in the buffer is sent with the head and dropped from the
	// buffer only once the response starts, so the request can be sent again.
	c.held, c.stale, c.unsent, c.dechunked, c.interim, c.resends = 0, false, false, false, false, 0
	if string(c.req.Method) == "CONNECT" {
		// A reverse proxy has no tunnels to open: a 2xx to CONNECT would turn the pooled
		// upstream connection into someone else's tunnel.
		c.writeClient(resp501)
		return false
	}
	switch c.req.Body() {
	case wire.LengthBody:
		if c.req.ContentLength <= maxReplayBody && int64(c.br.Buffered()) >= c.req.ContentLength {
			c.held = int(c.req.ContentLength)
		}
	case wire.ChunkedBody:
		// A chunked body already wholly in the buffer is checked before anything goes
		// upstream: a malformed one never reaches a backend.
		n, err := c.bufferedChunked()
		if err != nil {
			c.writeClient(badRequestResponse(err))
			return false
		}
		c.held = n
	}
	resent := false // the request went to a backend, which failed it; the next is a second try
	for attempt := 1; ; attempt++ {
		picked, f := c.pick(attempt > 1)
		if f == failNoBackend && resent {
			// No other backend can take it: the client learns what the one that had it did.
			f = failUpstream
		}
		if f != 0 {
			return c.answerFailure(f)
		}
		c.stale = false // about this attempt's backend only
		err := c.connect(picked)
		if err == nil {
			var keep bool
			if keep, err = c.exchange(picked); err == nil {
				c.pending.Reused, c.pending.Stale = c.up.reused, c.stale
				return keep
			}
		}
		resent = err == errResend
		if !resent {
			// Nothing reached this backend (a refused connect, possibly after its kept-alive
			// connection turned out closed): tell the Dispatcher, and try the next best one.
			c.pending = messages.Release{Lease: picked.Lease, Outcome: messages.OutcomeConnectFailed, Stale: c.stale}
		}
		if (c.cfg.MaxAttempts > 0 && attempt >= c.cfg.MaxAttempts) || c.aborted() {
			c.flushRelease()
			if resent {
				return c.answerFailure(failUpstream)
			}
			return c.answerFailure(failNoBackend)
		}
	}
}

// bufferedChunked checks a chunked request body that is wholly in the client buffer and returns
// its length on the wire, or 0 when the body goes beyond the buffer (it is then checked as it
// streams). A malformed body is a *wire.Error. Chunked requests are rare enough for the scratch
// reader this allocates.
func (c *clientConn) bufferedChunked() (int, error) {
	buffered, _ := c.br.Peek(c.br.Buffered())
	src := bytes.NewReader(buffered)
	br := bufio.NewReaderSize(src, 16)
	if _, err := wire.CopyChunked(io.Discard, br, c.cfg.Limits); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return 0, err
		}
		return 0, nil // incomplete here: stream it
	}
	return len(buffered) - src.Len() - br.Buffered(), nil
}

// replayable reports whether the request can be sent again on a fresh connection if a reused
// one turns out to be closed: its method is idempotent (RFC 9110 §9.2.2: the backend may have
// acted on it already) and it has no body, or its body is held in the buffer.
func (c *clientConn) replayable() bool {
	return idempotent(c.req.Method) && (c.req.Body() == wire.NoBody || c.held > 0)
}

func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// pick asks the Dispatcher for a backend, folding in the pending release. With retry the
// pending release (a failed connect) keeps its slot for this request.
func (c *clientConn) pick(retry bool) (*messages.BackendPicked, failure) {
	if c.aborted() {
		// The Forwarder is stopping or restarting: no pick. (One sent just before the abort may
		// reach the Dispatcher after the Acceptor's ForgetHolder; its answer, dropped, forgets
		// the holder again: dropReply. The pending release, if any, goes out as the connection
		// finishes.)
		return nil, failStopping
	}
	c.pickMsg.Release, c.pickMsg.Retry = c.pending, retry && c.pending.Lease.ID != 0
	c.pickMsg.Fresh = !c.replayable()
	c.pickMsg.Key, c.pickMsg.HasKey = c.hashKey()
	c.pending = messages.Release{}
	c.system.Root.Send(c.cfg.Dispatcher, c.pickMsg)
	var m any
	select {
	case m = <-c.ep.C:
		// The usual case: the Dispatcher ran inline on this goroutine (dispatcher.Props) and
		// answered already, so no timer is armed.
	default:
		if m = c.awaitPick(); m == nil {
			return nil, failStopping
		}
	}
	if c.aborted() {
		// Stopped or restarted meanwhile: this connection serves nothing more, whatever the
		// answer (a restarted Forwarder's connection is in an unknown state).
		c.ep.Drop(m)
		return nil, failStopping
	}
	switch m := m.(type) {
	case *messages.BackendPicked:
		return m, 0
	case *messages.NoBackend:
		return nil, noBackendFailure(m.Reason)
	}
	panic("forwarder: unexpected reply to PickBackend")
}

// awaitPick waits for the Dispatcher's answer to a pick that was not answered at once (it waits
// in the Dispatcher's queue, or another goroutine is running the Dispatcher). It returns nil
// when the connection is aborted or the pick timeout passes first; a late answer may then still
// come, so the endpoint owes one (settleEndpoint).
func (c *clientConn) awaitPick() any { return c.awaitReply(c.cfg.pickTimeout()) }

// awaitReply waits up to timeout for the Dispatcher's answer on the endpoint, as awaitPick does.
func (c *clientConn) awaitReply(timeout time.Duration) any {
	c.timer.Reset(timeout)
	defer c.timer.Stop()
	select {
	case m := <-c.ep.C:
		return m
	case <-c.abort:
	case <-c.timer.C:
		// The Dispatcher is lost; a late answer may still come, so this connection is done.
	}
	c.epOwed = true
	return nil
}

// answerFailure sends the load balancer's own error and reports whether the connection may go
// on: only when the request had no body, which would otherwise be left unread.
func (c *clientConn) answerFailure(f failure) bool {
	c.writeClient(errorResponse(c.cfg.Errors, f))
	return c.req.Body() == wire.NoBody && !c.req.Close && f != failStopping && !c.aborted()
}

// connect gets an upstream connection: the idle one handed over, else a fresh dial. The idle
// one is used only after a non-blocking check that the backend has neither closed it nor sent
// anything on it since (late or unsolicited bytes would be read as this request's response).
func (c *clientConn) connect(p *messages.BackendPicked) error {
	if p.Idle != nil {
		if stillOpen(p.Idle) {
			c.useUpstream(p.Idle, true)
			return nil
		}
		c.stale = true
		_ = p.Idle.Close()
	}
	conn, err := dialUpstream(p.Addr, c.cfg.connectTimeout())
	if err != nil {
		return err
	}
	c.useUpstream(conn, false)
	return nil
}

func (c *clientConn) useUpstream(conn net.Conn, reused bool) {
	c.up.conn, c.up.reused = conn, reused
	c.up.s = nil
	if u, ok := conn.(*upConn); ok {
		c.up.s = u.s
	}
	c.up.rd.conn, c.up.rd.s = conn, c.up.s
	c.up.br.Reset(&c.up.rd)
}

// dropUpstream closes the upstream connection of the exchange.
func (c *clientConn) dropUpstream() {
	if c.up.conn != nil {
		_ = c.up.conn.Close()
		c.up.conn = nil
	}
}

// flushRelease sends the pending release, if any, on its own.
func (c *clientConn) flushRelease() {
	if c.pending.Lease.ID == 0 {
		if c.pending.Idle != nil {
			_ = c.pending.Idle.Close()
			c.pending.Idle = nil
		}
		return
	}
	if c.relMsg == nil {
		c.relMsg = new(messages.ReleaseLease)
	}
	*c.relMsg = messages.ReleaseLease{Holder: c.self, Release: c.pending}
	c.system.Root.Send(c.cfg.Dispatcher, c.relMsg)
	c.pending = messages.Release{}
}

// writeClient writes b to the client with the body timeout; errors end the connection later.
func (c *clientConn) writeClient(b []byte) {
	if _, err := c.writeToClientLazy(b); err == nil {
		c.wrote = true
	}
}

// writeToClientLazy writes b to the client connection with the body timeout, set only if the
// write has to wait.
func (c *clientConn) writeToClientLazy(b []byte) (int, error) {
	if c.cs != nil {
		return c.cs.writeLazy(b, c.cfg.bodyTimeout(), c.abort)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.bodyTimeout()))
	return c.conn.Write(b)
}

// writeUpstreamLazy writes b to the upstream connection of the exchange with the body timeout,
// set only if the write has to wait.
func (c *clientConn) writeUpstreamLazy(b []byte) (int, error) {
	if c.up.s != nil {
		return c.up.s.writeLazy(b, c.cfg.bodyTimeout(), nil)
	}
	_ = c.up.conn.SetWriteDeadline(time.Now().Add(c.cfg.bodyTimeout()))
	return c.up.conn.Write(b)
}

// writeToClient writes b to the client connection (raw when it is a socket); the caller sets
// the deadline.
func (c *clientConn) writeToClient(b []byte) (int, error) {
	if c.cs != nil {
		return c.cs.write(b)
	}
	return c.conn.Write(b)
}

// writeUpstream writes b to the upstream connection of the exchange (raw when it is a dialled
// socket); the caller sets the deadline.
func (c *clientConn) writeUpstream(b []byte) (int, error) {
	if c.up.s != nil {
		return c.up.s.write(b)
	}
	return c.up.conn.Write(b)
}

// crashPoint panics (or makes the actor panic) where a test asked for it with X-Crash-Test.
func (c *clientConn) crashPoint(where string) {
	v := fieldValue(c.req.Fields, "X-Crash-Test")
	if string(v) != where && !(where == "before-pick" && string(v) == "receive") {
		return
	}
	if string(v) == "receive" {
		// Crash the actor while this request is in flight, and wait to be aborted.
		c.system.Root.Send(c.self, &messages.InjectCrash{})
		<-c.abort
		return
	}
	panic("forwarder: crash injected by test at " + where)
}

// deadlineReader reads from a connection, pushing its read deadline forward before every read
// while perRead is set (inactivity timeout for bodies); with perRead zero the deadline set by
// the caller stands (a whole-head timeout, kept in until).
//
// On the client connection it also rides out the drain's poke (Forwarder.handleDrain sets the
// read deadline to now, to wake a connection waiting for its next request): a read that times
// out while a head or body is being read, once the load balancer drains, goes on with the
// deadline it had. The poke comes once, so this resumes once; a timeout that is due, or an
// abort, ends the read as usual.
type deadlineReader struct {
	conn     net.Conn
	s        *sock // conn's raw reads, when it has them
	perRead  time.Duration
	perUntil time.Time // the deadline the last read set with perRead
	until    time.Time // the whole-head deadline while a head is read (see setUntil); zero otherwise

	drain   <-chan struct{} // the client connection's; nil upstream
	abort   <-chan struct{}
	resumed bool
	armFn   func() error // arm, bound once
}

// setUntil sets the whole-head deadline of the head about to be read: on a raw socket lazily,
// when a read has to wait (a head already waiting in the socket arms no timer), otherwise now.
// The zero time ends it; the deadline then left on the connection is stale, so the next read
// through r must come with perRead or a deadline of its own.
func (r *deadlineReader) setUntil(t time.Time) {
	r.until = t
	if r.s == nil && !t.IsZero() {
		_ = r.conn.SetReadDeadline(t)
	}
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	for {
		if r.perRead > 0 {
			r.perUntil = time.Now().Add(r.perRead)
			_ = r.conn.SetReadDeadline(r.perUntil)
		}
		var n int
		var err error
		switch {
		case r.s != nil && r.perRead == 0 && !r.until.IsZero():
			if r.armFn == nil {
				r.armFn = r.arm
			}
			n, err = r.s.readLazy(p, r.armFn)
		case r.s != nil:
			n, err = r.s.read(p)
		default:
			n, err = r.conn.Read(p)
		}
		if err == nil || !r.resume(err) {
			return n, err
		}
	}
}

// arm sets the whole-head deadline before a read waits. It overwrites any poke: a drain's is
// meant to be ridden out by a head in progress anyway, and an abort is looked at after it.
func (r *deadlineReader) arm() error {
	_ = r.conn.SetReadDeadline(r.until)
	if closed(r.abort) {
		return r.s.opError("read", os.ErrDeadlineExceeded)
	}
	return nil
}

// resume reports whether a failed read was the drain's poke, and if so re-arms the deadline.
func (r *deadlineReader) resume(err error) bool {
	if r.drain == nil || r.resumed || !isTimeout(err) || !closed(r.drain) || closed(r.abort) {
		return false
	}
	switch {
	case r.perRead > 0 && time.Now().Before(r.perUntil): // re-armed by the next read
	case !r.until.IsZero() && time.Now().Before(r.until):
		_ = r.conn.SetReadDeadline(r.until)
	default:
		return false
	}
	r.resumed = true
	return true
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
