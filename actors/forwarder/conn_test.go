//go:build linux

package forwarder

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// loopRig runs Forwarders on one event loop, with probes standing in for the Dispatcher and
// the Acceptor, and connects clients to it.
type loopRig struct {
	t        *testing.T
	sys      *actor.ActorSystem
	disp     *actortest.Probe
	acceptor *actortest.Probe
	engine   *Engine
}

func newLoopRig(t *testing.T, cfg Config) *loopRig {
	t.Helper()
	sys := actortest.NewSystem(t)
	r := &loopRig{t: t, sys: sys, disp: actortest.NewProbe(t, sys), acceptor: actortest.NewProbe(t, sys)}
	cfg.Dispatcher = r.disp.PID
	e, err := NewEngine(&cfg, sys, r.acceptor.PID, EngineOptions{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.engine = e
	t.Cleanup(func() { e.Close(); e.Wait() })
	return r
}

// loopClient is one client connection served by the rig's loop.
type loopClient struct {
	r    *loopRig
	conn net.Conn
	br   *bufio.Reader
}

// connect opens a client connection and hands its server side to the loop, as the Acceptor
// does with an accepted socket.
func (r *loopRig) connect() *loopClient {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		r.t.Fatal(err)
	}
	r.engine.Adopt(rawFd(r.t, server), netip.MustParseAddrPort(client.LocalAddr().String()))
	return &loopClient{r: r, conn: client, br: bufio.NewReader(client)}
}

// rawFd takes the socket out of conn: a non-blocking duplicate, the original closed.
func rawFd(t *testing.T, conn net.Conn) int { return rawFdTB(t, conn) }

func rawFdTB(t testing.TB, conn net.Conn) int {
	t.Helper()
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	_ = rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	return fd
}

func (c *loopClient) send(s string) {
	c.r.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.r.t.Fatal(err)
	}
}

func (c *loopClient) readN(n int) string {
	c.r.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(actortest.Wait))
	b := make([]byte, n)
	if k, err := io.ReadFull(c.br, b); err != nil {
		c.r.t.Fatalf("reading %d bytes: %v after %q", n, err, b[:k])
	}
	return string(b)
}

func (c *loopClient) readUntilClose() string {
	c.r.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(actortest.Wait))
	b, err := io.ReadAll(c.br)
	if err != nil {
		c.r.t.Fatalf("reading until close: %v (got %q)", err, b)
	}
	return string(b)
}

// expectPick waits for the next PickBackend and checks the release folded into it.
func (r *loopRig) expectPick(wantRelease messages.Release, wantRetry bool) *messages.PickBackend {
	r.t.Helper()
	m := actortest.Expect[*messages.PickBackend](r.disp)
	if m.Holder == nil || m.ReplyTo == nil || m.Holder.Id != m.ReplyTo.Id {
		r.t.Fatalf("PickBackend: holder %v, reply to %v: want the Forwarder for both", m.Holder, m.ReplyTo)
	}
	got := m.Release
	if got.Outcome == messages.OutcomeOK && got.Latency <= 0 {
		r.t.Fatalf("PickBackend.Release: an answered request with latency %v", got.Latency)
	}
	got.Latency = 0
	actortest.Equal(r.t, "PickBackend.Release", got, wantRelease)
	actortest.Equal(r.t, "PickBackend.Retry", m.Retry, wantRetry)
	return &messages.PickBackend{Holder: m.Holder, ReplyTo: m.ReplyTo}
}

func (r *loopRig) answer(p *messages.PickBackend, msg any) { r.sys.Root.Send(p.ReplyTo, msg) }

// expectRelease waits for a ReleaseLease and checks it (latency aside, checked positive).
func (r *loopRig) expectRelease(want messages.Release) {
	r.t.Helper()
	m := actortest.Expect[*messages.ReleaseLease](r.disp)
	got := m.Release
	if got.Outcome == messages.OutcomeOK && got.Latency <= 0 {
		r.t.Fatalf("ReleaseLease: an answered request with latency %v", got.Latency)
	}
	got.Latency = 0
	actortest.Equal(r.t, "ReleaseLease.Release", got, want)
}

// onLoop runs f on the loop's thread (where the worker's state may be read) and waits for it.
type onLoop struct {
	f    func()
	done chan struct{}
}

func (o onLoop) Ready(int32, uint32) {}
func (o onLoop) Expired()            {}
func (o onLoop) Deliver(any)         { o.f(); close(o.done) }
func (o onLoop) Crashed(any, []byte) {}

// pooled is how many idle connections to backend b the loop holds.
func (r *loopRig) pooled(b int) int {
	w := r.engine.workers[0]
	n := 0
	o := onLoop{f: func() {
		if b < len(w.pools) {
			n = len(w.pools[b])
		}
	}, done: make(chan struct{})}
	w.l.Post(o, nil)
	<-o.done
	return n
}

// waitPooled waits until the loop holds n idle connections to backend b, failing with why.
func (r *loopRig) waitPooled(b, n int, why string) {
	r.t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for r.pooled(b) != n {
		if time.Now().After(deadline) {
			r.t.Fatal(why)
		}
		time.Sleep(time.Millisecond)
	}
}

// countingBackend answers every request with resp on kept-alive connections and counts the
// connections it accepted.
func countingBackend(t *testing.T, resp string) (string, *atomic.Int32) {
	var n atomic.Int32
	addr := backend(t, func(c net.Conn) {
		n.Add(1)
		answering(resp)(c)
	})
	return addr, &n
}

const getA = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"

// A request goes to the granted backend and back; the slot goes back as soon as the client is
// idle, and the next request reuses the pooled upstream connection.
func TestLoopForwardsReleasesAndReuses(t *testing.T) {
	r := newLoopRig(t, Config{})
	addr, dials := countingBackend(t, ok2)
	c := r.connect()
	for i := range 2 {
		c.send(getA)
		p := r.expectPick(messages.Release{}, false)
		lease := messages.Lease{ID: uint64(i + 1), Backend: 0}
		r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: addr})
		actortest.Equal(t, "response", c.readN(len(ok2)), ok2)
		r.expectRelease(messages.Release{Lease: lease, Outcome: messages.OutcomeOK, Status: 200})
	}
	actortest.Equal(t, "backend connections", dials.Load(), int32(1)) // the second went on the pooled one
}

// A pipelined request's pick carries the previous request's release.
func TestLoopPipelinedRequestsFoldTheRelease(t *testing.T) {
	r := newLoopRig(t, Config{})
	addr, _ := countingBackend(t, ok2)
	c := r.connect()
	c.send(getA + getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeOK, Status: 200}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "responses", c.readN(2*len(ok2)), ok2+ok2)
}

// A refused connect keeps the request's slot and asks for another backend (Retry), telling the
// Dispatcher why.
func TestLoopRefusedConnectMovesOn(t *testing.T) {
	r := newLoopRig(t, Config{})
	live, _ := countingBackend(t, ok2)
	c := r.connect()
	c.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: deadAddr(t)})
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeConnectFailed}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Holder: p.Holder, Addr: live})
	actortest.Equal(t, "response", c.readN(len(ok2)), ok2)
}

// No backend: the classic 500, and the connection goes on.
func TestLoopNoBackendGetsClassic500AndGoesOn(t *testing.T) {
	r := newLoopRig(t, Config{})
	c := r.connect()
	for range 2 {
		c.send(getA)
		p := r.expectPick(messages.Release{}, false)
		r.answer(p, &messages.NoBackend{Reason: messages.NoBackendDown})
		actortest.Equal(t, "answer", c.readN(len(classic500)), string(classic500))
	}
}

// A malformed head gets 400 and the connection closes; nothing is asked of the Dispatcher, and
// the Acceptor hears that the connection ended.
func TestLoopMalformedRequestGets400AndClose(t *testing.T) {
	r := newLoopRig(t, Config{})
	c := r.connect()
	c.send("GET /a HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n")
	if got := c.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("got %q, want a 400", got)
	}
	ended := actortest.Expect[*messages.ConnEnded](r.acceptor)
	if ended.Panic != nil || ended.Holder == nil {
		t.Fatalf("ConnEnded: got %+v, want the holder and no panic", ended)
	}
	r.disp.ExpectNothing(100 * time.Millisecond)
}

// A panic in a Forwarder's handling costs only its connection: the client gets the classic 500,
// the Acceptor gets ConnEnded with the panic, the lease held goes back, and another connection
// on the same loop is served.
func TestLoopCrashIsContained(t *testing.T) {
	r := newLoopRig(t, Config{testCrash: true})
	addr, _ := countingBackend(t, ok2)
	c := r.connect()
	c.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: after-pick\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "answer", c.readUntilClose(), string(classic500))
	ended := actortest.Expect[*messages.ConnEnded](r.acceptor)
	if ended.Panic == nil || len(ended.Stack) == 0 {
		t.Fatalf("ConnEnded: got panic %v with %d bytes of stack, want the injected panic", ended.Panic, len(ended.Stack))
	}
	other := r.connect()
	other.send(getA)
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "other connection", other.readN(len(ok2)), ok2)
}

// A pooled upstream connection the backend closes is seen closed by the loop and never handed
// to a request: the next request dials afresh.
func TestLoopPooledConnectionClosedByBackendIsDropped(t *testing.T) {
	r := newLoopRig(t, Config{})
	var dials atomic.Int32
	closed := make(chan struct{}, 4)
	addr := backend(t, func(conn net.Conn) {
		dials.Add(1)
		br := bufio.NewReader(conn)
		if _, err := readHead(br); err != nil {
			return
		}
		_, _ = io.WriteString(conn, ok2)
		if dials.Load() == 1 {
			conn.Close() // kept alive by the response, closed anyway
			closed <- struct{}{}
			return
		}
		answering(ok2)(conn)
	})
	c := r.connect()
	c.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "response", c.readN(len(ok2)), ok2)
	r.expectRelease(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeOK, Status: 200})
	<-closed
	// The close reaches the loop as an event on the pooled socket, which leaves the pool.
	r.waitPooled(0, 0, "the closed connection is still pooled")
	c.send(getA)
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "response after the close", c.readN(len(ok2)), ok2)
	r.expectRelease(messages.Release{Lease: messages.Lease{ID: 2}, Outcome: messages.OutcomeOK, Status: 200})
	actortest.Equal(t, "backend connections", dials.Load(), int32(2))
}

// A silent backend: once CheckAfter passes the Forwarder asks the Dispatcher (CheckLease); told
// to abandon, a GET goes to another backend with the slot kept (Retry, OutcomeAbandoned).
func TestLoopOverdueRequestAsksAndIsAbandoned(t *testing.T) {
	r := newLoopRig(t, Config{})
	silent := backend(t, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })
	live, _ := countingBackend(t, ok2)
	c := r.connect()
	c.send(getA)
	p := r.expectPick(messages.Release{}, false)
	lease := messages.Lease{ID: 1}
	r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: silent, CheckAfter: 30 * time.Millisecond})
	chk := actortest.Expect[*messages.CheckLease](r.disp)
	actortest.Equal(t, "CheckLease.Lease", chk.Lease, lease)
	if chk.Waited < 30*time.Millisecond {
		t.Fatalf("CheckLease.Waited: got %v, want at least CheckAfter", chk.Waited)
	}
	r.sys.Root.Send(chk.ReplyTo, &messages.LeaseVerdict{Abandon: true})
	p = r.expectPick(messages.Release{Lease: lease, Outcome: messages.OutcomeAbandoned}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Holder: p.Holder, Addr: live})
	actortest.Equal(t, "response", c.readN(len(ok2)), ok2)
}

// A backend that sends no head within the response timeout: the client gets the error, the
// Dispatcher an OutcomeTimeout.
func TestLoopSilentBackendTimesOut(t *testing.T) {
	r := newLoopRig(t, Config{ResponseTimeout: 100 * time.Millisecond})
	silent := backend(t, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })
	c := r.connect()
	c.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: silent})
	actortest.Equal(t, "answer", c.readN(len(classic500)), string(classic500))
	r.expectRelease(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeTimeout})
}

// Drain closes an idle connection at once.
func TestLoopDrainClosesIdleConnection(t *testing.T) {
	r := newLoopRig(t, Config{})
	c := r.connect()
	r.engine.Drain()
	actortest.Equal(t, "what the client gets", c.readUntilClose(), "")
	actortest.Expect[*messages.ConnEnded](r.acceptor)
}

// The pick message is reused, and rewriting it while the Dispatcher may not have read it is a
// bug the guard turns into a panic (which the loop contains, as any other).
func TestPickReuseGuard(t *testing.T) {
	c := &conn{pickOut: true}
	defer func() {
		if v := recover(); v != errPickReused {
			t.Fatalf("sendPick with a pick out: recovered %v, want errPickReused", v)
		}
	}()
	c.sendPick(false)
}

// The release message is reused only once the Dispatcher has provably read it (a pick sent
// after it was answered); a release due before that goes in a fresh message, so the one in
// flight is never rewritten.
func TestReleaseReuseProtocol(t *testing.T) {
	r := newLoopRig(t, Config{})
	addr, _ := countingBackend(t, ok2)
	c := r.connect()
	var first *messages.ReleaseLease
	for i := range 2 {
		c.send(getA)
		p := r.expectPick(messages.Release{}, false)
		r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: uint64(i + 1)}, Holder: p.Holder, Addr: addr})
		c.readN(len(ok2))
		m := actortest.Expect[*messages.ReleaseLease](r.disp)
		if i == 0 {
			first = m
			continue
		}
		if m != first {
			t.Fatalf("second release: a fresh message, want the connection's own (the pick between proved the first read)")
		}
	}
	// Break the protocol: two releases with no pick between. The second must not reuse the
	// first, which the Dispatcher may not have read.
	w := r.engine.workers[0]
	var a, b *messages.ReleaseLease
	o := onLoop{f: func() {
		fc := &conn{w: w, cfg: w.cfg, pid: first.Holder}
		fc.pending = messages.Release{Lease: messages.Lease{ID: 7}, Outcome: messages.OutcomeOK}
		fc.flushRelease()
		fc.pending = messages.Release{Lease: messages.Lease{ID: 8}, Outcome: messages.OutcomeOK}
		fc.flushRelease()
	}, done: make(chan struct{})}
	w.l.Post(o, nil)
	<-o.done
	a = actortest.Expect[*messages.ReleaseLease](r.disp)
	b = actortest.Expect[*messages.ReleaseLease](r.disp)
	if a == b {
		t.Fatal("two releases with no pick between share one message")
	}
	actortest.Equal(t, "first release's lease", a.Release.Lease.ID, uint64(7))
	actortest.Equal(t, "second release's lease", b.Release.Lease.ID, uint64(8))
}

// Long bodies go through the pipe both ways, byte for byte: a 3 MiB upload reaches the backend
// whole, and its 3 MiB answer reaches the client whole, on one kept-alive client connection,
// twice (the pipe goes back to the loop and serves again).
func TestLoopLongBodiesAreSpliced(t *testing.T) {
	const size = 3 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i>>11)
	}
	r := newLoopRig(t, Config{})
	addr := backend(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			if _, err := readHead(br); err != nil {
				return
			}
			got := make([]byte, size)
			if _, err := io.ReadFull(br, got); err != nil {
				return
			}
			// Answer with what came, so the client checks both directions at once.
			if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 3145728\r\n\r\n"); err != nil {
				return
			}
			if _, err := conn.Write(got); err != nil {
				return
			}
		}
	})
	c := r.connect()
	for i := range 2 {
		go func() {
			_, _ = io.WriteString(c.conn, "PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 3145728\r\n\r\n")
			_, _ = c.conn.Write(body)
		}()
		p := r.expectPick(messages.Release{}, false)
		r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: uint64(i + 1)}, Holder: p.Holder, Addr: addr})
		head := "HTTP/1.1 200 OK\r\nContent-Length: 3145728\r\n\r\n"
		actortest.Equal(t, "head", c.readN(len(head)), head)
		if got := c.readN(size); got != string(body) {
			t.Fatalf("round %d: the body came back changed", i)
		}
		r.expectRelease(messages.Release{Lease: messages.Lease{ID: uint64(i + 1)}, Outcome: messages.OutcomeOK, Status: 200}) // a PUT is never sent on a pooled connection
	}
}

// A backend given by name is dialled at the address resolved at start-up (Config.Resolved); one
// that was not resolved fails its connect at once, without a lookup on the loop.
func TestLoopBackendNamesAreResolvedAtStartUp(t *testing.T) {
	live, _ := countingBackend(t, ok2)
	_, port, _ := net.SplitHostPort(live)
	named := "backend.example:" + port
	r := newLoopRig(t, Config{Resolved: map[string]netip.AddrPort{named: netip.MustParseAddrPort(live)}})
	c := r.connect()
	c.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: "unresolved.example:" + port})
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeConnectFailed}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Holder: p.Holder, Addr: named})
	actortest.Equal(t, "response", c.readN(len(ok2)), ok2)
}
