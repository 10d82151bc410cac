//go:build linux

package forwarder

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/evloop"
	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/messages"
)

// connState is where a connection is in its life. Each state says which deadline is armed and
// which fields hold something (see conn).
type connState uint8

const (
	// stIdle: between requests, waiting for the first byte of the next one. Idle timeout. No
	// buffer is held when nothing is buffered.
	stIdle connState = iota
	// stHead: part of a request head is in cin. Header timeout.
	stHead
	// stPick: the head is in req, PickBackend is out (pickOut), its answer awaited. Pick timeout.
	stPick
	// stConnect: a lease is held; ufd is connecting to the backend. Connect timeout.
	stConnect
	// stSend: the request goes upstream: uout is the head (and a held body), then the body
	// streams from cin. Body timeout between moves.
	stSend
	// stAwait: the request is out; the response head is awaited in uin. Response timeout, with
	// lease checks (CheckLease) and the 100-continue wait on the way.
	stAwait
	// stRelay: the response head went out (in cout); its body follows from uin. Body timeout
	// between moves.
	stRelay
	// stTunnel: after 101, bytes go both ways (cin up, uin down) until both sides are done.
	stTunnel
	// stFlush: cout holds the load balancer's own answer or an interim response; then the
	// connection closes, goes on to the next request, or back to the exchange (flushNext).
	stFlush
	// stClosed: the sockets are closed; late messages are answered as for a gone holder.
	stClosed
)

var stateNames = [...]string{"idle", "readingHead", "picking", "connecting", "sending", "awaitingHead", "relaying", "tunnel", "flushing", "closed"}

func (s connState) String() string { return stateNames[s] }

// flushNext is what stFlush does once cout is written.
type flushNext uint8

const (
	flushClose   flushNext = iota // close the connection
	flushGoOn                     // the request is answered: the next one
	flushAwait                    // an interim response went out: back to the response head
	flushBody100                  // 100 Continue went out: send the body, then the response head
)

// ibuf is a byte buffer read into at w and consumed at r: b[r:w] is what is waiting.
type ibuf struct {
	b    []byte
	r, w int
}

func (b *ibuf) data() []byte { return b.b[b.r:b.w] }
func (b *ibuf) len() int     { return b.w - b.r }

func (b *ibuf) consume(n int) {
	b.r += n
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// room returns the free space after w, moving the waiting bytes to the front when that makes
// room.
func (b *ibuf) room() []byte {
	if b.w == len(b.b) && b.r > 0 {
		n := copy(b.b, b.b[b.r:b.w])
		b.r, b.w = 0, n
	}
	return b.b[b.w:]
}

// conn is a Forwarder on an event loop: one client connection, its requests in order, and the
// upstream connection of the exchange in progress. Its methods run on its loop's thread, one at
// a time (evloop.Handler), so it is a plain struct.
type conn struct {
	w     *worker
	cfg   *Config
	pid   *actor.PID
	timer evloop.Timer

	prev, next *conn // the worker's ring of live connections

	cfd       int
	clientIP  []byte
	cport     uint16
	cin       ibuf   // from the client, not yet used
	cout      []byte // on its way to the client
	coutUp    int    // bytes of cout that are uin's: consumed from uin once written
	idleUntil int64  // while idle: when the idle timeout closes the connection

	// The request in progress (valid from stPick to the end of the exchange).
	req        wire.RequestHead
	startAt    int64    // when its first byte was in
	rx, tx     uint64   // client bytes read and written over the connection's life
	rxMark     uint64   // client bytes used up by earlier requests
	txMark     uint64   // client bytes written for earlier requests
	rid        [16]byte // the X-Request-ID made for it (ridMade)
	scan       wire.HeadScan
	held       int // bytes of request body kept in cin until the response starts (for a resend)
	reqLeft    int64
	chunks     wire.ChunkScanner // the chunked body moving: the request's, then the response's
	expectAt   int64             // when a 100-continue wait ends
	lastIO     int64
	sentAt     int64
	headAfter  time.Duration
	ioDeadline time.Duration // the inactivity timeout of the state (body or idle)

	// The lease (from the BackendPicked to the release).
	// pick is this connection's PickBackend, reused for every pick. The protocol: it is written
	// only while pickOut is false, and pickOut is true from its Send until the answer arrives.
	// The Dispatcher answers a pick only after reading it, so an answered pick is read. A
	// connection that ends with a pick out leaves it to the Dispatcher and never writes it
	// again. sendPick panics if the protocol is broken (TestPickReuseGuard).
	pick messages.PickBackend
	// rel is this connection's ReleaseLease, reused while its protocol allows, which relState
	// tracks: relSent, the last one went out and may be unread; relPicked, a pick sent after it
	// is out. The Dispatcher reads one sender's messages in the order sent (one loop thread
	// sends them all into its mailbox), so once that pick is answered the release was read and
	// rel is free again. A release due while rel may be unread goes in a fresh message
	// (TestReleaseReuseProtocol).
	rel          messages.ReleaseLease
	checkedLease uint64
	pending      messages.Release // the lease to give back, folded into the next pick when one follows at once
	lease        messages.Lease
	backend      int
	addr         string
	dialAt       netip.AddrPort // addr resolved by the Dispatcher's table (zero: resolve here)
	checkAfter   time.Duration
	checkAt      int64
	respDeadline int64

	// The upstream connection of the exchange (ufd < 0: none).
	ufd      int
	uin      ibuf
	uout     []byte // on its way to the backend
	uoutCin  int    // bytes of uout that are cin's: consumed from cin once written
	scratch  []byte // heads as rewritten, and the start of a response
	resp     wire.ResponseHead
	rscan    wire.HeadScan
	respLeft int64
	pipe     *loopPipe // a long body splices through it (nil otherwise)

	// Small fields together, so that they pack.
	state    connState
	next1    flushNext
	relState uint8
	respKind wire.BodyKind
	attempt  uint16
	resends  uint8
	// The request's accounting (settle): the load balancer's own answer and its status, the
	// outcome of the current exchange once released, and what ended the connection when the
	// load balancer did (a crash, or closing every connection at shutdown).
	local       messages.LocalReason
	localStatus uint16
	lastOut     messages.Outcome
	endedBy     uint8

	cIn, cOut, cHup, cEOF bool // client readiness as the last events left it; cEOF: its end of stream was read
	uIn, uOut, uHup, uEOF bool // the same upstream
	draining              bool
	parked                bool // while idle: parked (see park)
	inRequest             bool // a head was read and not yet answered
	wrote                 bool // a byte of the answer reached the client
	bodyDone              bool // the request body went upstream whole (or there is none)
	wait100               bool // Expect: 100-continue: the body waits for the backend's 100 or expectAt
	unsent                bool // a final answer came before the body was sent
	interim               bool // an interim (1xx) response went to the client
	closing               bool // the client connection closes after this response
	dechunked             bool // the chunked response is undone for an HTTP/1.0 client
	resent                bool // the request was sent to a backend that failed it; another takes it now
	pickOut               bool
	checkOut              bool
	reused                bool
	respEnded             bool
	upDone, downDone      bool // tunnel: each direction's source has ended
	open                  bool // a request is to be counted when it ends (settle)
	headOK                bool // req holds its head
	routed                bool // a backend was picked for it (backend, addr)
	gotResp               bool // its final response head came (resp)
	ridMade               bool // rid was made for it
}

// endedBy values: the connection was closed by the load balancer, not by its client or an
// exchange's failure.
const (
	endedByCrash uint8 = iota + 1 // a panic in its handling
	endedByLB                     // every connection closed (shutdown, the drain's deadline)
)

// relState values.
const (
	relFree uint8 = iota
	relSent
	relPicked
)

// maxReplayBody is the largest request body held in cin until the response starts, so that the
// request can be sent again (to a fresh connection, or another backend) when its backend breaks
// the connection before answering.
const maxReplayBody = 4096

// maxResends caps how often one request is sent again after a backend broke the connection
// before answering: once, so a request that kills every backend it reaches (a "query of death")
// takes down at most two.
const maxResends = 1

var crlfcrlf = []byte("\r\n\r\n")

// idempotent reports a method whose request may be sent twice (RFC 9110 §9.2.2).
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// errPickReused is the panic of a broken pick protocol (see conn.pick).
var errPickReused = errors.New("forwarder: PickBackend rewritten while the Dispatcher may not have read it")

func (w *worker) adopt(m *adoptMsg) {
	c := &conn{w: w, cfg: w.cfg, cfd: m.fd, ufd: -1}
	if m.peer.IsValid() {
		c.clientIP = m.peer.Addr().Unmap().AppendTo(nil)
		c.cport = m.peer.Port()
	}
	sys := w.e.system
	pid, ok := sys.ProcessRegistry.Add(&connProc{c: c}, "fwd"+sys.ProcessRegistry.NextId())
	c.pid = pid
	if err := w.l.Add(m.fd, c); err != nil || !ok {
		_ = unix.Close(m.fd)
		sys.ProcessRegistry.Remove(pid)
		sys.Root.Send(w.e.acceptor, &messages.ConnEnded{Holder: pid})
		return
	}
	c.next, c.prev = &w.conns, w.conns.prev
	c.prev.next, c.next.prev = c, c
	c.enterIdle()
	if w.draining {
		c.drain() // one of the listener's last: its first request is served, with the close
	}
}

func (c *conn) now() int64                 { return c.w.l.Now() }
func (c *conn) arm(when int64)             { c.w.l.Arm(&c.timer, c, when) }
func (c *conn) send(pid *actor.PID, m any) { c.w.e.system.Root.Send(pid, m) }

// Ready implements evloop.Handler.
func (c *conn) Ready(fd int32, ev uint32) {
	const gone = evloop.RdHup | evloop.Hup | evloop.Err
	switch int(fd) {
	case c.cfd:
		c.cIn = c.cIn || ev&(evloop.In|gone) != 0
		c.cHup = c.cHup || ev&gone != 0
		c.cOut = c.cOut || ev&(evloop.Out|evloop.Hup|evloop.Err) != 0
	case c.ufd:
		c.uIn = c.uIn || ev&(evloop.In|gone) != 0
		c.uHup = c.uHup || ev&gone != 0
		c.uOut = c.uOut || ev&(evloop.Out|evloop.Hup|evloop.Err) != 0
	default:
		return
	}
	c.run()
}

// Deliver implements evloop.Handler: the messages sent to the Forwarder's PID.
func (c *conn) Deliver(msg any) {
	switch m := msg.(type) {
	case *messages.BackendPicked:
		if c.state != stPick || !c.pickOut {
			c.dropGrant(m)
			return
		}
		c.pickOut = false
		c.pickAnswered()
		c.picked(m)
	case *messages.NoBackend:
		if c.state != stPick || !c.pickOut {
			return
		}
		c.pickOut = false
		c.pickAnswered()
		f := noBackendFailure(m.Reason)
		if f == failNoBackend && c.resent {
			f = failUpstream // no other backend can take it: the client learns what the one that had it did
		}
		c.answerFailure(f)
	case *messages.LeaseVerdict:
		c.checkOut = false
		c.verdict(m)
	case *messages.Drain:
		c.drain()
	case *messages.InjectCrash:
		if c.cfg.crashEnabled() {
			panic("forwarder: crash injected by test")
		}
	case stopConn:
		c.endedBy = endedByLB
		c.close()
	}
	c.run()
}

// pickAnswered notes that the Dispatcher has read everything this connection sent before its
// pick, the last release included.
func (c *conn) pickAnswered() {
	if c.relState == relPicked {
		c.relState = relFree
	}
}

// dropGrant settles an answer nobody waits for: the pick gave up (its connection ended or timed
// out). Its lease goes back by ForgetHolder, as the Dispatcher expects of a dropped grant.
func (c *conn) dropGrant(m *messages.BackendPicked) {
	if m.Holder != nil {
		c.send(c.cfg.Dispatcher, &messages.ForgetHolder{Holder: m.Holder})
	}
}

// Expired implements evloop.Handler: the state's deadline passed.
func (c *conn) Expired() {
	now := c.now()
	switch c.state {
	case stIdle:
		if c.draining && now < c.idleUntil {
			c.arm(c.idleUntil) // read below (run); closes when the grace is over
			break
		}
		if !c.parked && now < c.idleUntil {
			c.park()
			return
		}
		c.close()
	case stHead:
		c.open = true
		c.respondLocal(messages.LocalRequestTimeout, 408, resp408, flushClose)
	case stPick:
		// The Dispatcher is lost (a bug, or a restart that dropped the pick); its late answer,
		// if any, is dropped (dropGrant).
		c.respondFailure(failInternal, flushClose)
	case stConnect:
		c.connectFailed()
	case stAwait:
		c.awaitTimer(now)
	case stSend, stRelay, stFlush, stTunnel:
		if until := c.lastIO + int64(c.ioDeadline); now < until {
			c.arm(until)
			return
		}
		c.stalled()
	}
	c.run()
}

// Crashed implements evloop.Handler: a panic in this connection's handling. The client gets
// the load balancer's error if nothing of an answer went out, the connection closes, and the
// Acceptor hears of the crash (ConnEnded with the panic).
func (c *conn) Crashed(v any, stack []byte) {
	if c.state == stClosed {
		return
	}
	c.cfg.logger().Error("forwarder crashed", "panic", fmt.Sprint(v), "stack", string(stack))
	c.endedBy = endedByCrash
	if c.inRequest && !c.wrote {
		b := errorResponse(c.cfg.Errors, failInternal)
		if n, _ := sysWrite(c.cfd, b); n > 0 {
			c.tx += uint64(n)
		}
		c.local, c.localStatus = messages.LocalInternal, uint16(failureStatus(c.cfg.Errors, failInternal))
	}
	if c.lease.ID != 0 && c.pending.Lease.ID == 0 && c.ufd >= 0 {
		c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeClientFailed}
	}
	c.closeWith(v, stack)
}

// run advances the connection as far as it can go now.
func (c *conn) run() {
	for c.step() {
	}
}

// step does what the state can do with the readiness at hand, and reports whether to look again
// (it moved on, or made progress that may allow more).
func (c *conn) step() bool {
	switch c.state {
	case stIdle:
		return c.stepIdle()
	case stHead:
		return c.stepHead()
	case stConnect:
		return c.stepConnect()
	case stSend:
		return c.stepSend()
	case stAwait:
		return c.stepAwait()
	case stRelay:
		return c.stepRelay()
	case stTunnel:
		return c.stepTunnel()
	case stFlush:
		return c.stepFlush()
	}
	return false
}

// fill reads what is waiting on fd into b (taking a buffer if b has none) and returns the byte
// count; 0 with errno 0 means nothing now, or the end of the stream (*eof set).
func (c *conn) fill(fd int, b *ibuf, in *bool, hup bool, eof *bool, large bool) (int, syscall.Errno) {
	if !*in || *eof {
		return 0, 0
	}
	if b.b == nil {
		b.b = c.w.getBuf(large)
	}
	room := b.room()
	if len(room) == 0 {
		return 0, 0
	}
	n, e := sysRead(fd, room)
	switch {
	case e == syscall.EAGAIN:
		*in = false
		return 0, 0
	case e != 0:
		*in = false
		return 0, e
	case n == 0:
		*in, *eof = false, true
		return 0, 0
	}
	b.w += n
	if fd == c.cfd {
		c.rx += uint64(n)
	}
	if n < len(room) && !hup {
		*in = false // the socket is drained: the next arrival is a new edge
	}
	return n, 0
}

// push writes what fits of p to fd.
func push(fd int, p []byte, out *bool) (int, syscall.Errno) {
	if !*out || len(p) == 0 {
		return 0, 0
	}
	n, e := sysWrite(fd, p)
	switch {
	case e == syscall.EAGAIN:
		*out = false
		return 0, 0
	case e != 0:
		*out = false
		return 0, e
	}
	if n < len(p) {
		*out = false
	}
	return n, 0
}

// flushPending writes what fits of *p, bytes on their way out, to fd. Once all are written, the
// ones that were from's (*taken of them) are consumed there. It reports the bytes written.
func flushPending(fd int, p *[]byte, out *bool, taken *int, from *ibuf) (int, syscall.Errno) {
	n, e := push(fd, *p, out)
	*p = (*p)[n:]
	if len(*p) == 0 && *taken > 0 {
		from.consume(*taken)
		*taken = 0
	}
	return n, e
}

// enterMoving enters state st, in which bytes move under the body timeout: the inactivity
// deadline starts now.
func (c *conn) enterMoving(st connState) {
	c.state = st
	c.ioDeadline, c.lastIO = c.cfg.bodyTimeout(), c.now()
	c.arm(c.lastIO + int64(c.ioDeadline))
}

// enterIdle waits for the next request, holding no buffer while nothing is buffered.
func (c *conn) enterIdle() {
	c.state = stIdle
	c.inRequest = false
	if c.cin.len() == 0 && c.cin.b != nil {
		c.w.putBuf(c.cin.b)
		c.cin = ibuf{}
	}
	if c.scratch != nil {
		c.w.putBuf(c.scratch)
		c.scratch = nil
	}
	now := c.now()
	c.idleUntil, c.parked = now+int64(c.cfg.idleTimeout()), false
	c.arm(min(c.idleUntil, now+int64(parkAfter)))
}

// parkAfter is how long a connection idles before it parks: it gives back what only a busy
// connection needs (the Dispatcher's holder entry, the head buffers), so ten thousand idle
// connections cost little more than their sockets. A busy keep-alive connection never waits
// that long between requests, so it never pays for parking.
const parkAfter = time.Second

// park gives back what an idle connection keeps for its next request: the Dispatcher forgets the
// holder (the connection holds no lease while idle; its next pick makes the holder again), and
// the request and response heads drop their buffers.
func (c *conn) park() {
	c.parked = true
	c.send(c.cfg.Dispatcher, &messages.ForgetHolder{Holder: c.pid})
	c.req, c.resp = wire.RequestHead{}, wire.ResponseHead{}
	c.arm(c.idleUntil)
}

func (c *conn) stepIdle() bool {
	if c.cin.len() > 0 {
		c.enterHead()
		return true
	}
	if c.cEOF {
		c.close()
		return false
	}
	if c.draining {
		c.cIn = true // look, whatever the last event said: a request already sent is served
	}
	n, e := c.fill(c.cfd, &c.cin, &c.cIn, c.cHup, &c.cEOF, false)
	switch {
	case e != 0 || c.cEOF:
		c.close()
		return false
	case n == 0:
		if c.cin.len() == 0 && c.cin.b != nil {
			c.w.putBuf(c.cin.b)
			c.cin = ibuf{}
		}
		return false
	}
	c.enterHead()
	return true
}

func (c *conn) enterHead() {
	c.state = stHead
	c.cfg = c.w.cfg // a reload's settings apply from the next request on
	c.scan.Reset()
	now := c.now()
	c.startAt, c.rxMark, c.txMark = now, c.rx-uint64(c.cin.len()), c.tx
	c.headOK, c.routed, c.gotResp, c.ridMade = false, false, false, false
	c.local, c.localStatus, c.lastOut, c.headAfter = messages.LocalNone, 0, messages.OutcomeNone, 0
	c.arm(now + int64(c.cfg.headerTimeout()))
}

// maxHeadBuf is how far cin grows for a head that does not fit a buffer: the largest head and
// the empty lines allowed before it.
func (c *conn) maxHeadBuf() int {
	l := c.cfg.Limits
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = wire.DefaultMaxHeaderBytes
	}
	return l.MaxHeaderBytes + 16
}

func (c *conn) stepHead() bool {
	n, err := c.req.Parse(c.cin.data(), c.cfg.Limits, &c.scan)
	switch {
	case err == nil:
		c.cin.consume(n)
		c.open, c.headOK = true, true
		c.startRequest()
		return true
	case err != wire.ErrIncomplete:
		c.open = true
		c.refuse(err)
		return true
	case c.cEOF:
		c.close() // the client left inside a head
		return false
	}
	if c.cin.b != nil && len(c.cin.room()) == 0 {
		if len(c.cin.b) >= c.maxHeadBuf() {
			c.open = true
			c.respondLocal(messages.LocalHeaderTooLarge, 431, resp431, flushClose)
			return true
		}
		bigger := make([]byte, min(2*len(c.cin.b), c.maxHeadBuf()))
		k := copy(bigger, c.cin.data())
		c.w.putBuf(c.cin.b)
		c.cin = ibuf{b: bigger, w: k}
	}
	got, e := c.fill(c.cfd, &c.cin, &c.cIn, c.cHup, &c.cEOF, false)
	if e != 0 {
		c.close()
		return false
	}
	return got > 0 || c.cEOF
}

// startRequest takes the request whose head is in req to a backend.
func (c *conn) startRequest() {
	c.inRequest, c.wrote, c.closing = true, false, false
	c.held, c.unsent, c.dechunked, c.interim = 0, false, false, false
	c.resends, c.resent, c.attempt, c.wait100 = 0, false, 0, false
	if c.cfg.crashEnabled() {
		c.crashPoint("before-pick")
	}
	if string(c.req.Method) == "CONNECT" {
		// A reverse proxy has no tunnels to open: a 2xx to CONNECT would turn the upstream
		// connection into someone else's tunnel.
		c.respondLocal(messages.LocalNotImplemented, 501, resp501, flushClose)
		return
	}
	switch c.req.Body() {
	case wire.LengthBody:
		if c.req.ContentLength <= maxReplayBody && int64(c.cin.len()) >= c.req.ContentLength {
			c.held = int(c.req.ContentLength)
		}
	case wire.ChunkedBody:
		// A chunked body wholly in the buffer is checked before anything goes upstream: a
		// malformed one never reaches a backend.
		s := wire.NewChunkScanner(c.cfg.Limits, false)
		n, done, err := s.Feed(c.cin.data(), nil)
		if err != nil {
			c.refuse(err)
			return
		}
		if done && n <= maxReplayBody {
			c.held = n
		}
	}
	c.sendPick(false)
}

// replayable reports whether the request can be sent again: an idempotent method, and no body
// or one held in cin.
func (c *conn) replayable() bool {
	return idempotent(c.req.Method) && (c.req.Body() == wire.NoBody || c.held > 0)
}

// sendPick asks the Dispatcher for a backend, folding in the pending release. With retry the
// pending release (a failed attempt) keeps its slot for this request.
func (c *conn) sendPick(retry bool) {
	if c.pickOut {
		panic(errPickReused)
	}
	c.attempt++
	c.pick = messages.PickBackend{Holder: c.pid, ReplyTo: c.pid, Release: c.pending,
		Retry: retry && c.pending.Lease.ID != 0}
	c.pick.Key, c.pick.HasKey = hashKeyOf(&c.cfg.Hash, &c.req, c.clientIP)
	c.pending = messages.Release{}
	c.pickOut = true
	if c.relState == relSent {
		c.relState = relPicked
	}
	c.state = stPick
	c.arm(c.now() + int64(c.cfg.pickTimeout()))
	c.send(c.cfg.Dispatcher, &c.pick)
}

// picked takes the Dispatcher's grant: a pooled connection to the backend, or a new one.
func (c *conn) picked(p *messages.BackendPicked) {
	c.lease, c.backend, c.addr, c.dialAt, c.checkAfter = p.Lease, p.Lease.Backend, p.Addr, p.Dial, p.CheckAfter
	c.routed, c.lastOut = true, messages.OutcomeNone // a new exchange: the last one's outcome is not its
	if c.cfg.crashEnabled() {
		c.crashPoint("after-pick")
	}
	// A request that cannot be sent again goes on a fresh connection: a pooled one the backend
	// is closing just now (its close still on the way) would fail it for good.
	if c.replayable() {
		if fd := c.w.takeIdle(c.backend); fd >= 0 {
			c.w.traffic(c.backend).Reused++
			c.useUp(fd, true)
			c.startSend()
			return
		}
	}
	c.dialUp()
}

func (c *conn) useUp(fd int, reused bool) {
	c.ufd, c.reused = fd, reused
	c.uIn, c.uOut, c.uHup, c.uEOF = false, true, false, false
	if reused {
		c.w.l.Own(fd, c)
	}
}

func (c *conn) dialUp() {
	fd, err := c.w.dial(c.addr, c.dialAt)
	if err == nil {
		if err = c.w.l.Add(fd, c); err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		c.connectFailed()
		return
	}
	c.useUp(fd, false)
	c.uOut = false // until the connect completes
	c.state = stConnect
	c.arm(c.now() + int64(c.cfg.connectTimeout()))
}

func (c *conn) stepConnect() bool {
	if !c.uOut {
		return false
	}
	if v, err := unix.GetsockoptInt(c.ufd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
		c.connectFailed()
		return true
	}
	c.w.traffic(c.backend).Dialled++
	c.startSend()
	return true
}

// connectFailed: nothing reached the backend. The Dispatcher hears of it with the next pick,
// which tries another backend.
func (c *conn) connectFailed() {
	c.w.traffic(c.backend).ConnectFailures++
	c.closeUp()
	c.pending = messages.Release{Lease: c.lease, Outcome: messages.OutcomeConnectFailed}
	c.retry()
}

// retry picks another backend for the request, or answers when the attempts are used up.
func (c *conn) retry() {
	if c.cfg.MaxAttempts > 0 && int(c.attempt) >= c.cfg.MaxAttempts {
		c.flushRelease()
		if c.resent {
			c.answerFailure(failUpstream)
		} else {
			c.answerFailure(failNoBackend)
		}
		return
	}
	c.sendPick(true)
}

// closeUp closes the upstream connection of the exchange, if any, and its buffer.
func (c *conn) closeUp() {
	if c.ufd >= 0 {
		c.w.l.CloseFd(c.ufd)
		c.ufd = -1
	}
	c.uout, c.uoutCin = nil, 0
	if c.pipe != nil {
		c.w.putPipe(c.pipe)
		c.pipe = nil
	}
	if c.uin.b != nil {
		c.w.putBuf(c.uin.b)
		c.uin = ibuf{}
	}
}

// flushRelease sends the pending release, if any, on its own: in rel when its protocol says
// the Dispatcher is done with it, else in a fresh message.
func (c *conn) flushRelease() {
	if c.pending.Lease.ID == 0 {
		return
	}
	msg := &c.rel
	if c.relState == relFree {
		c.relState = relSent
	} else {
		msg = new(messages.ReleaseLease)
	}
	*msg = messages.ReleaseLease{Holder: c.pid, Release: c.pending}
	c.lastOut = c.pending.Outcome
	c.send(c.cfg.Dispatcher, msg)
	c.pending = messages.Release{}
}

// answerFailure sends the load balancer's own answer; the connection goes on only when the
// request had no body (which would otherwise be left unread).
func (c *conn) answerFailure(f failure) {
	c.discardHeld()
	next := flushClose
	if c.req.Body() == wire.NoBody && !c.req.Close && f != failStopping && !c.draining {
		next = flushGoOn
	}
	c.closeUp()
	c.respondFailure(f, next)
}

// respondFailure sends the load balancer's own answer to failure f, then does next.
func (c *conn) respondFailure(f failure, next flushNext) {
	c.respondLocal(f.reason(), failureStatus(c.cfg.Errors, f), errorResponse(c.cfg.Errors, f), next)
}

// respond sends b to the client, then does next.
func (c *conn) respond(b []byte, next flushNext) {
	c.cout, c.coutUp, c.next1 = b, 0, next
	c.enterMoving(stFlush)
}

// respondLocal sends the load balancer's own answer b (its status, and why) to the client, then
// does next.
func (c *conn) respondLocal(why messages.LocalReason, status int, b []byte, next flushNext) {
	c.local, c.localStatus = why, uint16(status)
	c.respond(b, next)
}

// refuse answers a request the load balancer will not forward (err says why); the connection
// closes after it.
func (c *conn) refuse(err error) {
	status, b := badRequestResponse(err)
	c.respondLocal(clientErrorReason(status), status, b, flushClose)
}

func (c *conn) stepFlush() bool {
	if len(c.cout) > 0 {
		n, e := flushPending(c.cfd, &c.cout, &c.cOut, &c.coutUp, &c.uin)
		if n > 0 {
			c.wrote, c.lastIO = true, c.now()
			c.tx += uint64(n)
		}
		if e != 0 {
			c.close()
			return false
		}
		if len(c.cout) > 0 {
			return false
		}
	}
	switch c.next1 {
	case flushClose:
		c.close()
		return false
	case flushAwait:
		c.state = stAwait
		c.armAwait()
	case flushBody100:
		c.wait100 = false
		c.enterMoving(stSend)
	default:
		c.endExchange()
	}
	return true
}

// discardHeld drops the request body held in cin: the response has started (or failed).
func (c *conn) discardHeld() {
	if c.held > 0 {
		c.cin.consume(c.held)
		c.held = 0
	}
}

// endExchange goes on to the next request once a response is complete: its head may be in
// already (pipelined), and then the lease's release rides on its pick.
func (c *conn) endExchange() {
	c.settle()
	c.inRequest = false
	if c.cEOF {
		c.flushRelease()
		c.close()
		return
	}
	if c.draining && c.cin.len() == 0 {
		// The drain came after this response's head promised the connection would last: the
		// client may be sending its next request now. It gets the grace, and its answer says
		// Connection: close.
		c.flushRelease()
		c.enterIdle()
		c.drain()
		return
	}
	if c.cin.len() > 0 {
		if !bytes.Contains(c.cin.data(), crlfcrlf) {
			c.flushRelease() // the rest of the head may take until the header timeout
		}
		c.enterHead()
		return
	}
	c.flushRelease() // nobody knows when the next request comes: give the slot back now
	c.enterIdle()
}

// drain makes the connection close once its request in flight is answered (with Connection:
// close). An idle one is read at once, so that a request already sent is served rather than
// reset, and otherwise waits up to drainGrace for one (a keep-alive client may be picking it
// from its pool right now: closing it under its feet would cost that request), then closes.
// One accepted from the listener's backlog as it closed, which has sent nothing yet, gets the
// same grace for its first request.
func (c *conn) drain() {
	c.draining = true
	if c.state != stIdle {
		return
	}
	c.idleUntil = min(c.idleUntil, c.now()+int64(drainGrace))
	// Look at once, but from its own handler (Expired), where a panic costs this connection
	// only: drain is called for every connection of the loop in one go.
	c.arm(c.now())
}

// drainGrace is how long an idle connection may take to send a request once the load balancer
// drains: enough for a client that took it from its pool as the drain began.
const drainGrace = time.Second

// close ends the connection: the sockets, the buffers, the lease (released, or forgotten when
// a pick is still out: its answer is dropped), the PID, and a word to the Acceptor.
func (c *conn) close() { c.closeWith(nil, nil) }

// closeWith is close after a panic v (nil: none) with its stack, which ConnEnded carries.
func (c *conn) closeWith(v any, stack []byte) {
	if c.state == stClosed {
		return
	}
	c.settle()
	c.state = stClosed
	c.w.l.Disarm(&c.timer)
	c.closeUp()
	c.flushRelease()
	c.w.l.CloseFd(c.cfd)
	for _, b := range [...][]byte{c.cin.b, c.scratch} {
		if b != nil {
			c.w.putBuf(b)
		}
	}
	c.cin, c.scratch, c.cout = ibuf{}, nil, nil
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
	sys := c.w.e.system
	sys.ProcessRegistry.Remove(c.pid)
	sys.Root.Send(c.w.e.acceptor, &messages.ConnEnded{Holder: c.pid, Panic: v, Stack: stack})
}

// crashPoint panics where a test asked for it with X-Crash-Test (test builds only).
func (c *conn) crashPoint(where string) {
	v := fieldValue(c.req.Fields, "X-Crash-Test")
	switch {
	case v == nil:
	case string(v) == where:
		panic("forwarder: crash injected by test at " + where)
	case where == "before-pick" && string(v) == "receive":
		c.send(c.pid, &messages.InjectCrash{})
	}
}
