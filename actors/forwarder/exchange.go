package forwarder

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http/httputil"
	"runtime"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/messages"
)

// maxReplayBody is the largest request body kept in the client buffer until the response
// starts, so that a request sent down a kept-alive connection the backend had just closed can
// be sent again on a fresh one.
const maxReplayBody = 4096

// errRepick: the exchange could not start on this backend (the kept-alive connection was closed
// and a fresh connect failed); nothing reached the client, so the caller releases the lease as a
// failed connect and the request tries the next backend.
var errRepick = errors.New("forwarder: backend refused, pick another")

// errResend: the request was sent but can safely go to another backend (it is idempotent, its
// body is held, and nothing of an answer reached the client); c.pending holds the release, with
// its outcome, and the caller picks again.
var errResend = errors.New("forwarder: send the request to another backend")

// errAbandon: the Dispatcher answered a CheckLease with Abandon (see awaitHead).
var errAbandon = errors.New("forwarder: backend stalled, ejected or down")

// errLost: the Dispatcher's answer to a CheckLease did not come before the response deadline,
// or the connection was aborted meanwhile; a late answer may still come to the reply endpoint,
// so the connection serves nothing more.
var errLost = errors.New("forwarder: no verdict on the overdue request")

// maxResends caps how often one request is sent again after a backend broke the connection
// before answering: once, so a request that kills every backend it reaches (a "query of
// death") takes down at most two.
const maxResends = 1

// exchange sends the request in c.req to the backend connected in c.up and relays the answer.
// It leaves the lease in c.pending (with the upstream connection when it is clean) and reports
// whether the client connection may carry another request; errRepick asks for another backend.
func (c *clientConn) exchange(p *messages.BackendPicked) (bool, error) {
	if c.cfg.crashEnabled() {
		c.crashPoint("after-pick")
	}
	kind, held, replayable := c.req.Body(), c.held, c.replayable()
	c.upAddr = p.Addr
	c.lease, c.checkAfter = p.Lease, p.CheckAfter

	for {
		err := c.sendRequest(held)
		if err == nil {
			err = c.readResponseHead(kind, held)
		}
		if err == nil {
			break
		}
		if ce, ok := err.(clientError); ok {
			// The client broke its own request; the backend is not to blame. A malformed body
			// gets its 400 (what went upstream of it is cut off with the connection).
			c.dropUpstream()
			c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeClientFailed}
			var we *wire.Error
			if errors.As(ce.error, &we) && !c.wrote {
				c.writeClient(badRequestResponse(we))
			}
			return false, nil
		}
		if c.up.reused && replayable && !c.wrote && !c.interim && isStaleConn(err) {
			// The backend had closed the kept-alive connection: send again on a fresh one.
			c.stale = true
			c.dropUpstream()
			conn, derr := dialUpstream(p.Addr, c.cfg.connectTimeout())
			if derr != nil {
				return false, errRepick
			}
			c.useUpstream(conn, false)
			continue
		}
		if err == errLost {
			// Nothing is known of the backend; the client gets the timeout's answer, and the
			// connection closes (its endpoint may still get the late verdict).
			c.dropUpstream()
			c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeClientFailed}
			if !c.wrote {
				c.discardHeld(held)
				f := failTimeout
				if c.aborted() {
					f = failStopping
				}
				c.answerFailure(f)
			}
			return false, nil
		}
		if replayable && !c.wrote && !c.interim && !c.aborted() {
			switch {
			case err == errAbandon:
				// The backend stalled, was ejected or went down while this request
				// waited for its answer: another backend takes it.
				c.dropUpstream()
				c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeAbandoned}
				return false, errResend
			case c.resends < maxResends && isStaleConn(err):
				// The backend broke the connection before any answer (it died, say): an
				// idempotent request whose body is held is sent to another backend, once.
				c.resends++
				c.dropUpstream()
				c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeBackendFailed}
				return false, errResend
			}
		}
		c.dropUpstream()
		outcome, f := messages.OutcomeBackendFailed, failUpstream
		switch {
		case c.aborted():
			// The load balancer gave up on the exchange (stopping, restarting): the backend
			// is not to blame.
			outcome, f = messages.OutcomeClientFailed, failStopping
		case isTimeout(err):
			outcome, f = messages.OutcomeTimeout, failTimeout
		}
		c.pending = messages.Release{Lease: p.Lease, Outcome: outcome}
		if c.wrote || c.interim {
			return false, nil // part of an answer went out; the connection cannot be trusted
		}
		c.discardHeld(held)
		return c.answerFailure(f) && kind == wire.NoBody, nil
	}
	c.discardHeld(held)
	return c.relayResponse(p, kind), nil
}

// clientError marks a failure on the client's side of an exchange.
type clientError struct{ error }

func (c *clientConn) discardHeld(held int) {
	if held > 0 {
		_, _ = c.br.Discard(held)
	}
}

// sendRequest writes the request head (rewritten for upstream), the held body if any, and
// streams any other body unless the client waits for 100-continue.
func (c *clientConn) sendRequest(held int) error {
	c.out = appendUpstreamHead(c.out[:0], &c.req, c.cfg, c.clientIP, c.upAddr)
	if held > 0 {
		b, _ := c.br.Peek(held)
		c.out = append(c.out, b...)
	}
	if _, err := c.writeUpstreamLazy(c.out); err != nil {
		return err
	}
	if held > 0 || c.req.Body() == wire.NoBody || c.req.Expect100 {
		return nil
	}
	return c.sendBody()
}

// sendBody streams the request body (not held in the buffer) to the backend.
func (c *clientConn) sendBody() error {
	switch c.req.Body() {
	case wire.LengthBody:
		return c.copyClientBody(c.req.ContentLength)
	case wire.ChunkedBody:
		c.rd.perRead = c.cfg.bodyTimeout()
		defer func() { c.rd.perRead = 0 }()
		bw := c.writerTo(upstreamWriter{c})
		if _, err := wire.CopyChunked(bw, c.br, c.cfg.Limits); err != nil {
			if _, ok := err.(*wire.Error); ok || !isUpstreamWriteErr(err) {
				return clientError{err}
			}
			return err
		}
		return bw.Flush()
	}
	return nil
}

// readResponseHead reads the final response head into c.resp, relaying interim (1xx) responses
// and sending the body when the client was waiting for 100-continue.
func (c *clientConn) readResponseHead(kind wire.BodyKind, held int) error {
	bodyPending := c.req.Expect100 && held == 0 && kind != wire.NoBody
	if bodyPending {
		// Give the backend a moment to say 100 Continue (or answer at once); if it says
		// nothing, send the body anyway, as clients do.
		_ = c.up.conn.SetReadDeadline(time.Now().Add(min(time.Second, c.cfg.responseTimeout())))
		if _, err := c.up.br.Peek(1); err != nil {
			if !isTimeout(err) {
				return err
			}
			bodyPending = false
			if err := c.sendBody(); err != nil {
				return err
			}
		}
	}
	for first := true; ; first = false {
		now := time.Now()
		if first {
			c.sentAt = now
		}
		deadline := now.Add(c.cfg.responseTimeout())
		c.up.rd.setUntil(deadline)
		if c.up.br.Buffered() == 0 {
			runtime.Gosched()
			if first && c.checkAfter > 0 && c.up.br.Buffered() == 0 {
				if err := c.awaitHead(deadline); err != nil {
					c.up.rd.setUntil(time.Time{})
					return err
				}
			}
		}
		err := c.resp.Read(c.up.br, wire.Limits{})
		c.up.rd.setUntil(time.Time{})
		if err != nil {
			return err
		}
		st := c.resp.Status
		if st >= 200 || st == 101 {
			c.headAfter = time.Since(c.sentAt)
			if bodyPending {
				// Final answer without 100: the client's body is never read, so the client
				// connection must close after the response, and the upstream one too (the
				// backend may still read the body it was promised: pooled, the next request
				// would be taken for that body).
				c.req.Close, c.unsent = true, true
			}
			return nil
		}
		// Interim response: pass it on as it is. From now on the request is not sent again.
		c.interim = true
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.bodyTimeout()))
		if _, err := c.writeToClient(c.resp.Raw); err != nil {
			return clientError{err}
		}
		if st == 100 && bodyPending {
			bodyPending = false
			if err := c.sendBody(); err != nil {
				return err
			}
			c.sentAt = time.Now() // the backend's time starts once it has the body
		}
	}
}

// relayResponse passes the response in c.resp (head read) to the client unchanged, then settles
// the lease. It reports whether the client connection may carry another request.
func (c *clientConn) relayResponse(p *messages.BackendPicked, reqKind wire.BodyKind) bool {
	if c.resp.Status == 101 {
		return c.tunnel(p)
	}
	kind := c.resp.Body(c.req.Method)
	keepClient := !c.req.Close && kind != wire.CloseDelimitedBody
	c.closing = !keepClient
	var err error
	switch kind {
	case wire.NoBody:
		err = c.writeHead(0)
	case wire.LengthBody:
		if c.cfg.crashEnabled() && fieldValue(c.req.Fields, "X-Crash-Test") != nil {
			if err = c.writeHead(0); err == nil {
				c.crashPoint("mid-response")
				err = c.copyFromUpstream(c.resp.ContentLength)
			}
			break
		}
		err = c.relayLength(c.resp.ContentLength)
	case wire.ChunkedBody:
		if c.req.Minor == 0 {
			// An HTTP/1.0 client cannot read chunked framing: it gets the body undone from
			// it, delimited by the close of the connection.
			keepClient, c.closing = false, true
			err = c.relayDechunked()
			break
		}
		err = c.relayChunked()
	case wire.CloseDelimitedBody:
		err = c.relayUntilClose()
	}
	if err != nil {
		c.dropUpstream()
		outcome := messages.OutcomeBackendFailed
		if _, ok := err.(clientError); ok {
			outcome = messages.OutcomeClientFailed
		}
		c.pending = messages.Release{Lease: p.Lease, Outcome: outcome}
		if !c.wrote {
			return c.answerFailure(failUpstream) && reqKind == wire.NoBody
		}
		return false
	}
	// The exchange is complete. The upstream connection is kept when the backend did not ask
	// to close it and left nothing unread.
	keepUp := !c.resp.Close && kind != wire.CloseDelimitedBody && c.up.br.Buffered() == 0 &&
		c.resp.Minor >= 1 && !c.unsent && !c.dechunked
	c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeOK, Status: uint16(c.resp.Status), Latency: c.headAfter}
	if keepUp {
		c.pending.Idle = c.up.conn
		c.up.conn = nil
	} else {
		c.dropUpstream()
	}
	return keepClient
}

// writeHead writes the response head with up to extra bytes of body that are already in the
// upstream buffer, in one write.
func (c *clientConn) writeHead(extra int) error {
	switch {
	case c.dechunked:
		c.out = appendClosingHead(c.out[:0], &c.resp, true)
	case c.closing && listsToken(c.resp.Fields, "Connection", keepAlive):
		c.out = appendClosingHead(c.out[:0], &c.resp, false)
	default:
		c.out = append(c.out[:0], c.resp.Raw...)
	}
	if extra > 0 {
		b, _ := c.up.br.Peek(extra)
		c.out = append(c.out, b...)
		_, _ = c.up.br.Discard(extra)
	}
	n, err := c.writeToClientLazy(c.out)
	if n > 0 {
		c.wrote = true
	}
	if err != nil {
		return clientError{err}
	}
	return nil
}

// relayLength relays a response body of n bytes.
func (c *clientConn) relayLength(n int64) error {
	first := int64(c.up.br.Buffered())
	if first > n {
		first = n
	}
	if err := c.writeHead(int(first)); err != nil {
		return err
	}
	return c.copyFromUpstream(n - first)
}

// relayChunked relays a chunked response body verbatim, batching small writes.
func (c *clientConn) relayChunked() error {
	if err := c.writeHead(0); err != nil {
		return err
	}
	c.up.rd.perRead = c.cfg.bodyTimeout()
	defer func() { c.up.rd.perRead = 0 }()
	bw := c.writerTo(clientWriter{c})
	if _, err := wire.CopyChunked(bw, c.up.br, wire.Limits{}); err != nil {
		return err
	}
	return bw.Flush()
}

// relayDechunked relays a chunked response to an HTTP/1.0 client: the head without
// Transfer-Encoding and with "Connection: close", then the decoded body; the connection closes
// after it. A rare path: it allocates.
func (c *clientConn) relayDechunked() error {
	c.dechunked = true
	if err := c.writeHead(0); err != nil {
		return err
	}
	c.up.rd.perRead = c.cfg.bodyTimeout()
	defer func() { c.up.rd.perRead = 0 }()
	_, err := io.Copy(clientWriter{c}, httputil.NewChunkedReader(c.up.br))
	return err
}

// relayUntilClose relays a body that ends when the backend closes the connection.
func (c *clientConn) relayUntilClose() error {
	first := c.up.br.Buffered()
	if err := c.writeHead(first); err != nil {
		return err
	}
	return c.copyFromUpstream(-1)
}

// upstreamWriter writes to the backend with the body timeout per write.
type upstreamWriter struct{ c *clientConn }

func (w upstreamWriter) Write(p []byte) (int, error) {
	_ = w.c.up.conn.SetWriteDeadline(time.Now().Add(w.c.cfg.bodyTimeout()))
	return w.c.writeUpstream(p)
}

// clientWriter writes to the client with the body timeout per write.
type clientWriter struct{ c *clientConn }

func (w clientWriter) Write(p []byte) (int, error) {
	_ = w.c.conn.SetWriteDeadline(time.Now().Add(w.c.cfg.bodyTimeout()))
	n, err := w.c.writeToClient(p)
	if err != nil {
		return n, clientError{err}
	}
	return n, nil
}

func (c *clientConn) writerTo(w io.Writer) *bufio.Writer {
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(w, 16<<10)
	} else {
		c.bw.Reset(w)
	}
	return c.bw
}

func isUpstreamWriteErr(err error) bool {
	var oe *net.OpError
	if ok := asOpError(err, &oe); ok {
		return oe.Op == "write"
	}
	return false
}

// awaitHead waits for the first byte of the response, until deadline (the response timeout),
// asking the Dispatcher each time the lease's CheckAfter passes whether to go on waiting
// (messages.CheckLease). It returns errAbandon when the Dispatcher says the backend is stalled,
// ejected or down and another can take the request, and the request can be sent again; one that
// cannot waits out the response timeout. The usual answer comes long before the first check: it
// costs nothing then.
func (c *clientConn) awaitHead(deadline time.Time) error {
	wait := c.checkAfter
	for wait > 0 {
		until := time.Now().Add(wait)
		if !until.Before(deadline) {
			break
		}
		c.up.rd.setUntil(until)
		_, err := c.up.br.Peek(1)
		c.up.rd.setUntil(deadline)
		if err == nil || !isTimeout(err) || c.aborted() {
			return err
		}
		v := c.checkLease(deadline)
		switch {
		case v == nil:
			return errLost
		case v.Abandon && c.replayable() && !c.interim:
			return errAbandon
		case v.Abandon:
			return nil // cannot be sent again: wait for the answer until the deadline
		}
		wait = v.CheckAfter
	}
	return nil
}

// checkLease asks the Dispatcher whether the request in flight should go on waiting for its
// backend's answer. A rare path: the message is allocated. It returns nil when the connection is
// aborted or the Dispatcher does not answer before deadline (the response deadline).
func (c *clientConn) checkLease(deadline time.Time) *messages.LeaseVerdict {
	c.system.Root.Send(c.cfg.Dispatcher, &messages.CheckLease{Holder: c.self, ReplyTo: c.ep.PID(), Lease: c.lease, Waited: time.Since(c.sentAt)})
	var m any
	select {
	case m = <-c.ep.C:
	default:
		if m = c.awaitReply(max(time.Until(deadline), time.Millisecond)); m == nil {
			return nil
		}
	}
	v, ok := m.(*messages.LeaseVerdict)
	if !ok {
		c.ep.Drop(m)
		return nil
	}
	return v
}
