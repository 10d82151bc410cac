//go:build linux

package forwarder

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/messages"
)

// The exchange with the backend, on an event loop: stSend, stAwait, stRelay and stTunnel.

// startSend writes the request head as it goes upstream (with the held body, if any) and sets
// up the body to stream after it.
func (c *conn) startSend() {
	if c.scratch == nil {
		c.scratch = c.w.getBuf(false)
	}
	out := appendUpstreamHead(c.scratch[:0], &c.req, c.cfg, c.clientIP, c.addr, &c.rid, &c.ridMade)
	if c.held > 0 {
		out = append(out, c.cin.data()[:c.held]...)
	}
	c.uout, c.uoutCin = out, 0
	c.bodyDone, c.wait100, c.reqLeft = true, false, 0
	if kind := c.req.Body(); c.held == 0 && kind != wire.NoBody {
		c.bodyDone = false
		c.wait100 = c.req.Expect100
		if kind == wire.LengthBody {
			c.reqLeft = c.req.ContentLength
		} else {
			c.chunks = wire.NewChunkScanner(c.cfg.Limits, false)
		}
	}
	c.enterMoving(stSend)
}

func (c *conn) stepSend() bool {
	if len(c.uout) > 0 {
		n, e := flushPending(c.ufd, &c.uout, &c.uOut, &c.uoutCin, &c.cin)
		if n > 0 {
			c.lastIO = c.now()
		}
		if e != 0 {
			c.upstreamBroken()
			return true
		}
		if len(c.uout) > 0 {
			return false
		}
	}
	if c.bodyDone || c.wait100 {
		c.startAwait(true)
		return true
	}
	if c.cin.len() == 0 && c.req.Body() == wire.LengthBody && (c.pipe != nil || c.reqLeft > spliceOver) {
		if moved, ok := c.spliceUp(); ok {
			return moved
		}
	}
	if d := c.cin.data(); len(d) > 0 {
		k := len(d)
		if c.req.Body() == wire.LengthBody {
			k = int(min(int64(k), c.reqLeft))
			c.reqLeft -= int64(k)
			c.bodyDone = c.reqLeft == 0
		} else {
			n, done, err := c.chunks.Feed(d, nil)
			if err != nil {
				c.clientBroke(err)
				return true
			}
			k, c.bodyDone = n, done
		}
		c.uout, c.uoutCin = d[:k], k
		return true
	}
	if c.cEOF {
		c.clientBroke(nil) // the client closed inside its body
		return true
	}
	n, e := c.fill(c.cfd, &c.cin, &c.cIn, c.cHup, &c.cEOF, false)
	if e != 0 {
		c.clientBroke(nil)
		return true
	}
	if n > 0 {
		c.lastIO = c.now()
	}
	return n > 0 || c.cEOF
}

// clientBroke: the client broke its own request (a malformed or cut-off body); the backend is
// not to blame. A malformed body gets its 400.
func (c *conn) clientBroke(err error) {
	c.closeUp()
	c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeClientFailed}
	if err != nil && !c.wrote {
		c.refuse(err)
		return
	}
	c.close()
}

// startAwait waits for the response head; first is the request's first wait (its backend time
// starts now).
func (c *conn) startAwait(first bool) {
	c.state = stAwait
	now := c.now()
	if first {
		c.sentAt = now
		c.respDeadline = now + int64(c.cfg.responseTimeout())
		c.checkAt = 0
		if c.checkAfter > 0 && now+int64(c.checkAfter) < c.respDeadline {
			c.checkAt = now + int64(c.checkAfter)
		}
		if c.wait100 {
			c.expectAt = now + int64(min(time.Second, c.cfg.responseTimeout()))
		}
	}
	c.armAwait()
}

// armAwait arms the first of the response deadline, the next lease check and the end of the
// 100-continue wait.
func (c *conn) armAwait() {
	when := c.respDeadline
	if c.checkAt > 0 && c.checkAt < when {
		when = c.checkAt
	}
	if c.wait100 && c.expectAt < when {
		when = c.expectAt
	}
	c.arm(when)
}

func (c *conn) awaitTimer(now int64) {
	switch {
	case now >= c.respDeadline:
		c.closeUp()
		c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeTimeout}
		if c.wrote || c.interim {
			c.close()
			return
		}
		c.answerFailure(failTimeout)
		return
	case c.wait100 && now >= c.expectAt:
		// The backend said nothing to the 100-continue: send the body anyway, as clients do.
		c.wait100 = false
		c.state = stSend
		c.ioDeadline, c.lastIO = c.cfg.bodyTimeout(), now
	case c.checkAt > 0 && now >= c.checkAt && c.uin.len() == 0:
		c.checkAt = 0
		if !c.checkOut {
			c.checkOut, c.checkedLease = true, c.lease.ID
			c.send(c.cfg.Dispatcher, &messages.CheckLease{Holder: c.pid, ReplyTo: c.pid, Lease: c.lease, Waited: time.Duration(now - c.sentAt)})
		}
	case c.checkAt > 0 && now >= c.checkAt:
		c.checkAt = 0 // part of the head is in: no need to ask
	}
	switch c.state {
	case stAwait:
		c.armAwait()
	case stSend:
		c.arm(now + int64(c.ioDeadline))
	}
}

// verdict takes the Dispatcher's answer to a lease check.
func (c *conn) verdict(v *messages.LeaseVerdict) {
	if c.state != stAwait || c.checkedLease != c.lease.ID || c.uin.len() > 0 {
		return // about an earlier exchange, or the answer has begun
	}
	switch {
	case v.Abandon && c.replayable() && !c.interim && !c.wrote:
		// The backend stalled, was ejected or went down: another backend takes the request.
		c.closeUp()
		c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeAbandoned}
		c.resent = true
		c.retry()
	case v.Abandon:
		// Cannot be sent again: wait for the answer until the response deadline.
	case v.CheckAfter > 0:
		c.checkAt = c.now() + int64(v.CheckAfter)
		if c.checkAt >= c.respDeadline {
			c.checkAt = 0
		}
		c.armAwait()
	}
}

// upstreamBroken: the backend's connection failed before any answer reached the client (a
// write failed, or it closed or reset before a whole response head).
func (c *conn) upstreamBroken() {
	replay := c.replayable() && !c.wrote && !c.interim
	switch {
	case replay && c.reused:
		// The backend had closed the pooled connection: send again on a fresh one.
		c.w.traffic(c.backend).Stale++
		c.closeUp()
		c.dialUp()
		return
	case replay && c.resends < maxResends:
		// The backend broke the connection before any answer (it died, say): an idempotent
		// request whose body is held goes to another backend, once.
		c.resends++
		c.closeUp()
		c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
		c.resent = true
		c.retry()
		return
	}
	c.closeUp()
	c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
	if c.wrote || c.interim {
		c.close()
		return
	}
	c.answerFailure(failUpstream)
}

func (c *conn) stepAwait() bool {
	if c.uin.len() > 0 {
		n, err := c.resp.Parse(c.uin.data(), wire.Limits{}, &c.rscan)
		switch {
		case err == nil:
			c.uin.consume(n)
			c.gotHead()
			return true
		case err != wire.ErrIncomplete:
			c.closeUp() // a malformed response head: 502
			c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
			if c.wrote || c.interim {
				c.close()
				return false
			}
			c.answerFailure(failUpstream)
			return true
		}
		if len(c.uin.room()) == 0 {
			if len(c.uin.b) >= largeBuf {
				c.closeUp() // a head larger than any we take: 502
				c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
				c.answerFailure(failUpstream)
				return true
			}
			c.largerUin()
		}
	}
	if c.uEOF {
		if c.uin.len() > 0 {
			c.closeUp() // cut off inside the head
			c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
			if c.wrote || c.interim {
				c.close()
				return false
			}
			c.answerFailure(failUpstream)
			return true
		}
		c.upstreamBroken()
		return true
	}
	n, e := c.fill(c.ufd, &c.uin, &c.uIn, c.uHup, &c.uEOF, false)
	if e != 0 {
		c.uin.r, c.uin.w = 0, 0
		c.upstreamBroken()
		return true
	}
	return n > 0 || c.uEOF
}

// largerUin moves uin to a large buffer.
func (c *conn) largerUin() {
	if len(c.uin.b) >= largeBuf {
		return
	}
	b := c.w.getBuf(true)
	k := copy(b, c.uin.data())
	if c.uin.b != nil {
		c.w.putBuf(c.uin.b)
	}
	c.uin = ibuf{b: b, w: k}
}

// gotHead takes a response head: an interim one goes to the client as it is, a final one
// starts the relay.
func (c *conn) gotHead() {
	st := c.resp.Status
	if st >= 200 || st == 101 {
		c.gotResp = true
		c.headAfter = time.Duration(c.now() - c.sentAt)
		if c.wait100 {
			// A final answer without 100: the client's body is never read, so both connections
			// close after the response (the backend may still read the body it was promised).
			c.req.Close, c.unsent, c.wait100 = true, true, false
		}
		c.startRelay()
		return
	}
	c.interim = true
	next := flushAwait
	if st == 100 && c.wait100 {
		next = flushBody100
	}
	c.cout, c.coutUp, c.next1 = c.resp.Raw, 0, next
	c.state = stFlush
	c.ioDeadline, c.lastIO = c.cfg.bodyTimeout(), c.now()
}

// startRelay sends the final response head on to the client, with as much of the body as is
// in already, and sets up the rest of the body.
func (c *conn) startRelay() {
	c.discardHeld()
	c.respEnded = false
	if c.resp.Status == 101 {
		c.startTunnel()
		return
	}
	kind := c.resp.Body(c.req.Method)
	c.respKind = kind
	c.closing = c.req.Close || kind == wire.CloseDelimitedBody || c.draining
	if kind == wire.ChunkedBody && c.req.Minor == 0 {
		// An HTTP/1.0 client cannot read chunked framing: it gets the body undone from it,
		// delimited by the close of the connection.
		c.closing, c.dechunked = true, true
	}
	out := c.scratch[:0]
	switch {
	case c.dechunked:
		out = appendClosingHead(out, &c.resp, true)
	case c.closing && (c.draining || listsToken(c.resp.Fields, "Connection", keepAlive)):
		// The head must not promise a connection that will not last: the backend's keep-alive,
		// or (draining) the HTTP/1.1 default, which clients would take up.
		out = appendClosingHead(out, &c.resp, false)
	default:
		out = append(out, c.resp.Raw...)
	}
	switch kind {
	case wire.LengthBody:
		c.respLeft = c.resp.ContentLength // a long one is spliced, through no buffer
	case wire.ChunkedBody:
		c.chunks = wire.NewChunkScanner(wire.Limits{}, true)
		c.largerUin()
	}
	// The body that is in already goes out with the head, in one write, when it fits.
	if d := c.uin.data(); !c.dechunked && len(d) > 0 && len(d) <= cap(out)-len(out) {
		k := len(d)
		switch kind {
		case wire.NoBody:
			k = 0
		case wire.LengthBody:
			k = int(min(int64(k), c.respLeft))
			c.respLeft -= int64(k)
		case wire.ChunkedBody:
			n, _, err := c.chunks.Feed(d, nil)
			if err != nil {
				// A malformed body, caught before a byte went out: 502, and the client
				// connection closes (the backend's stream cannot be trusted).
				c.closeUp()
				c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}
				c.respondFailure(failUpstream, flushClose)
				return
			}
			k = n
		}
		out = append(out, d[:k]...)
		c.uin.consume(k)
	}
	c.scratch = out[:0]
	c.cout, c.coutUp = out, 0
	c.enterMoving(stRelay)
	if c.cfg.crashEnabled() && fieldValue(c.req.Fields, "X-Crash-Test") != nil {
		if string(fieldValue(c.req.Fields, "X-Crash-Test")) == "mid-response" {
			if n, _ := push(c.cfd, c.cout, &c.cOut); n > 0 {
				c.wrote = true
				c.tx += uint64(n)
				c.cout = c.cout[n:]
			}
			c.crashPoint("mid-response")
		}
	}
}

// respDone reports whether the response body has been taken whole from upstream.
func (c *conn) respDone() bool {
	switch c.respKind {
	case wire.LengthBody:
		return c.respLeft == 0
	case wire.ChunkedBody:
		return c.chunks.Done()
	case wire.CloseDelimitedBody:
		return c.respEnded
	}
	return true
}

func (c *conn) stepRelay() bool {
	if len(c.cout) > 0 {
		n, e := flushPending(c.cfd, &c.cout, &c.cOut, &c.coutUp, &c.uin)
		if n > 0 {
			c.wrote, c.lastIO = true, c.now()
			c.tx += uint64(n)
		}
		if e != 0 {
			c.relayFailed(messages.OutcomeClientFailed)
			return false
		}
		if len(c.cout) > 0 {
			return false
		}
	}
	if c.respDone() && c.pipe == nil {
		c.finishExchange()
		return true
	}
	if c.uin.len() == 0 && !c.dechunked && (c.pipe != nil || c.respKind == wire.CloseDelimitedBody ||
		c.respKind == wire.LengthBody && c.respLeft > spliceOver) {
		if moved, ok := c.spliceDown(); ok {
			return moved
		}
	}
	if d := c.uin.data(); len(d) > 0 {
		switch c.respKind {
		case wire.LengthBody:
			k := int(min(int64(len(d)), c.respLeft))
			c.respLeft -= int64(k)
			c.cout, c.coutUp = d[:k], k
		case wire.ChunkedBody:
			if c.dechunked {
				return c.relayDechunked(d)
			}
			n, _, err := c.chunks.Feed(d, nil)
			if err != nil {
				c.relayFailed(messages.OutcomeBackendFailed)
				return false
			}
			c.cout, c.coutUp = d[:n], n
		default:
			c.cout, c.coutUp = d, len(d)
		}
		return true
	}
	if c.uEOF {
		if c.respKind == wire.CloseDelimitedBody {
			c.respEnded = true
			return true
		}
		c.relayFailed(messages.OutcomeBackendFailed) // cut off inside the body
		return false
	}
	n, e := c.fill(c.ufd, &c.uin, &c.uIn, c.uHup, &c.uEOF, true)
	if e != 0 {
		c.relayFailed(messages.OutcomeBackendFailed)
		return false
	}
	if n > 0 {
		c.lastIO = c.now()
	}
	return n > 0 || c.uEOF
}

// spliceUp moves the request body from the client to the backend through the pipe; false when
// no pipe is to be had (the body is then copied).
func (c *conn) spliceUp() (moved, ok bool) {
	if c.pipe == nil {
		if c.pipe = c.w.getPipe(); c.pipe == nil {
			return false, false
		}
	}
	took, moved, e, srcErr := c.pump(c.pipe, c.cfd, c.ufd, c.reqLeft, &c.cIn, &c.uOut, &c.cEOF)
	c.reqLeft -= int64(took)
	if moved {
		c.lastIO = c.now()
	}
	switch {
	case e != 0 && srcErr:
		c.clientBroke(nil)
		return true, true
	case e != 0:
		c.upstreamBroken()
		return true, true
	case c.reqLeft == 0 && c.pipe.bytes == 0:
		c.w.putPipe(c.pipe)
		c.pipe, c.bodyDone = nil, true
		return true, true
	case c.cEOF && c.pipe.bytes == 0:
		c.clientBroke(nil) // the client closed inside its body
		return true, true
	}
	return moved, true
}

// spliceDown moves the response body from the backend to the client through the pipe; false
// when no pipe is to be had (the body is then copied).
func (c *conn) spliceDown() (moved, ok bool) {
	if c.pipe == nil {
		if c.pipe = c.w.getPipe(); c.pipe == nil {
			return false, false
		}
	}
	left := c.respLeft
	if c.respKind == wire.CloseDelimitedBody {
		left = 1 << 62
	}
	took, moved, e, srcErr := c.pump(c.pipe, c.ufd, c.cfd, left, &c.uIn, &c.cOut, &c.uEOF)
	if c.respKind == wire.LengthBody {
		c.respLeft -= int64(took)
	}
	if moved {
		c.lastIO = c.now()
	}
	empty := c.pipe.bytes == 0
	switch {
	case e != 0 && srcErr:
		c.relayFailed(messages.OutcomeBackendFailed)
		return false, true
	case e != 0:
		c.relayFailed(messages.OutcomeClientFailed)
		return false, true
	case empty && c.respKind == wire.CloseDelimitedBody && c.uEOF:
		c.respEnded = true
	case empty && c.respDone():
	case empty && c.uEOF:
		c.relayFailed(messages.OutcomeBackendFailed) // cut off inside the body
		return false, true
	default:
		return moved, true
	}
	c.w.putPipe(c.pipe)
	c.pipe = nil
	return true, true
}

// relayDechunked passes the data of the chunked body in d to an HTTP/1.0 client, without the
// framing. A rare path: the callback allocates.
func (c *conn) relayDechunked(d []byte) bool {
	out := c.scratch[:0]
	n, _, err := c.chunks.Feed(d, func(b []byte) { out = append(out, b...) })
	if err != nil {
		c.relayFailed(messages.OutcomeBackendFailed)
		return false
	}
	c.uin.consume(n)
	c.scratch = out[:0]
	c.cout, c.coutUp = out, 0
	return true
}

// relayFailed: the exchange broke while the response was moving; what went out cannot be
// taken back, so the client connection closes.
func (c *conn) relayFailed(o messages.Outcome) {
	c.closeUp()
	c.pending = messages.Release{Lease: c.lease, Outcome: o}
	c.close()
}

// finishExchange settles a complete response: the lease goes back with the outcome (folded into
// the next pick when one follows at once), and the upstream connection to the pool when it is
// clean.
func (c *conn) finishExchange() {
	// (A backend's close that came with the response is an edge already consumed: the pool
	// would never hear of it.)
	keepUp := !c.resp.Close && c.respKind != wire.CloseDelimitedBody && c.uin.len() == 0 &&
		c.resp.Minor >= 1 && !c.unsent && !c.dechunked && !c.uHup && !c.uEOF
	c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK, Status: uint16(c.resp.Status),
		Latency: c.headAfter}
	c.settle()
	if keepUp {
		fd := c.ufd
		c.ufd = -1
		c.w.putIdle(c.backend, fd)
	}
	c.closeUp()
	c.inRequest = false
	if c.closing {
		c.flushRelease()
		c.close()
		return
	}
	c.endExchange()
}

// stalled: the state's inactivity timeout passed.
func (c *conn) stalled() {
	switch c.state {
	case stSend:
		if len(c.uout) > 0 {
			// The backend takes no more of the request.
			c.closeUp()
			c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeTimeout}
			if !c.wrote && !c.interim {
				c.answerFailure(failTimeout)
				return
			}
			c.close()
			return
		}
		c.clientBroke(nil) // the client sends no more of its body
	case stRelay:
		o := messages.OutcomeBackendFailed
		if len(c.cout) > 0 {
			o = messages.OutcomeClientFailed // the client reads no more
		}
		c.relayFailed(o)
	default:
		c.close()
	}
}

// startTunnel relays an upgraded connection (101 Switching Protocols, e.g. WebSocket) both ways
// until both sides are done; once one side has ended, the other has the idle timeout to finish.
// The slot stays held for the tunnel's whole life; the client connection closes after it.
func (c *conn) startTunnel() {
	c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK, Status: 101, Latency: c.headAfter}
	// A tunnel has no deadline while both sides are open, so a peer that vanished without a
	// close would hold it forever: TCP keep-alive probes find such peers within about a minute.
	for _, fd := range [...]int{c.cfd, c.ufd} {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 10)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3)
	}
	out := append(c.scratch[:0], c.resp.Raw...)
	c.scratch = out[:0]
	c.cout, c.coutUp = out, 0
	c.upDone, c.downDone = false, false
	c.uout, c.uoutCin = nil, 0
	c.state = stTunnel
	c.w.l.Disarm(&c.timer)
	c.ioDeadline = 0
}

func (c *conn) stepTunnel() bool {
	down, ok := c.tunnelWay(&c.cout, &c.coutUp, &c.uin, c.cfd, &c.cOut, c.ufd, &c.uIn, c.uHup, &c.uEOF, &c.downDone)
	if !ok {
		return false
	}
	up, ok := c.tunnelWay(&c.uout, &c.uoutCin, &c.cin, c.ufd, &c.uOut, c.cfd, &c.cIn, c.cHup, &c.cEOF, &c.upDone)
	if !ok {
		return false
	}
	if c.upDone && c.downDone && len(c.cout) == 0 && len(c.uout) == 0 {
		c.flushRelease()
		c.close()
		return false
	}
	return down || up
}

// tunnelWay moves one direction of a tunnel: what is on its way (*p, *taken bytes of it from buf)
// goes to dst; then what src has sent, read into buf, is on its way. The end of src's stream
// shuts dst's writing side and leaves the other direction the idle timeout (tunnelHalf). It
// reports whether anything moved, and false for ok when a socket failed (the connection is
// closed then).
func (c *conn) tunnelWay(p *[]byte, taken *int, buf *ibuf, dst int, dstOut *bool,
	src int, srcIn *bool, srcHup bool, srcEOF *bool, done *bool) (moved, ok bool) {
	if len(*p) > 0 {
		n, e := flushPending(dst, p, dstOut, taken, buf)
		if e != 0 {
			c.close()
			return false, false
		}
		if n > 0 {
			c.lastIO, moved = c.now(), true
			if dst == c.cfd {
				c.tx += uint64(n)
			}
		}
	}
	if len(*p) > 0 || *done {
		return moved, true
	}
	if d := buf.data(); len(d) > 0 {
		*p, *taken = d, len(d)
		return true, true
	}
	if *srcEOF {
		*done = true
		_ = unix.Shutdown(dst, unix.SHUT_WR)
		c.tunnelHalf()
		return true, true
	}
	n, e := c.fill(src, buf, srcIn, srcHup, srcEOF, false)
	if e != 0 {
		c.close()
		return false, false
	}
	return moved || n > 0 || *srcEOF, true
}

// tunnelHalf: one direction of a tunnel is over; the other gets the idle timeout to finish.
func (c *conn) tunnelHalf() {
	c.ioDeadline, c.lastIO = c.cfg.idleTimeout(), c.now()
	c.arm(c.lastIO + int64(c.ioDeadline))
}
