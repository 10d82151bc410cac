package acceptor

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

type fixture struct {
	t    *testing.T
	sys  *actor.ActorSystem
	disp *actortest.Probe
	acc  *actor.PID
	addr string
}

func newFixture(t *testing.T, maxConns int) *fixture {
	t.Helper()
	sys := actortest.NewSystem(t)
	f := &fixture{t: t, sys: sys, disp: actortest.NewProbe(t, sys)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	cfg := &Config{Listener: ln, MaxConns: maxConns, Forwarder: &forwarder.Config{Dispatcher: f.disp.PID}}
	f.acc = sys.Root.Spawn(Props(cfg))
	t.Cleanup(func() { _ = sys.Root.StopFuture(f.acc).Wait() })
	return f
}

func (f *fixture) dial() net.Conn {
	f.t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

func TestOneForwarderPerConnection(t *testing.T) {
	f := newFixture(t, 0)
	holders := map[string]bool{}
	for i := 0; i < 3; i++ {
		c := f.dial()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		// The Forwarder reuses its PickBackend for its next pick: read it before answering.
		m := actortest.Expect[*messages.PickBackend](f.disp)
		holder, replyTo := m.Holder.Id, m.ReplyTo
		holders[holder] = true
		// A second request on the same connection comes from the same Forwarder.
		f.sys.Root.Send(replyTo, &messages.NoBackend{Reason: messages.NoBackendDown})
		readN(t, c, len("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		m2 := actortest.Expect[*messages.PickBackend](f.disp)
		actortest.Equal(t, "holder of the second request", m2.Holder.Id, holder)
		f.sys.Root.Send(m2.ReplyTo, &messages.NoBackend{Reason: messages.NoBackendDown})
	}
	actortest.Equal(t, "distinct forwarders", len(holders), 3)
}

func TestConnectionCap(t *testing.T) {
	f := newFixture(t, 1)
	c1 := f.dial()
	io.WriteString(c1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	actortest.Expect[*messages.PickBackend](f.disp)
	c2 := f.dial()
	_ = c2.SetReadDeadline(time.Now().Add(actortest.Wait))
	if n, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection over the cap: read %d bytes, want it closed", n)
	}
}

func TestDrainClosesListenerAndIdleConnections(t *testing.T) {
	f := newFixture(t, 0)
	idle := f.dial()
	busy := f.dial()
	io.WriteString(busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	pick := actortest.Expect[*messages.PickBackend](f.disp)
	replyTo := pick.ReplyTo

	ep := reply.New(f.sys, 1)
	defer ep.Close()
	f.sys.Root.Send(f.acc, &messages.Drain{Deadline: time.Now().Add(time.Minute), ReplyTo: ep.PID()})

	// The idle connection closes; the busy one finishes its request first.
	_ = idle.SetReadDeadline(time.Now().Add(actortest.Wait))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection during drain: got %v, want EOF", err)
	}
	select {
	case m := <-ep.C:
		t.Fatalf("drained while a request is in flight: %T", m)
	case <-time.After(100 * time.Millisecond):
	}
	f.sys.Root.Send(replyTo, &messages.NoBackend{Reason: messages.NoBackendDown})
	readN(t, busy, len("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"))
	actortest.Recv[*messages.Drained](t, ep.C)
	if c, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("listener still accepts after drain")
	}
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(actortest.Wait))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v (%q)", err, b)
	}
	return string(b)
}

// panickyListener makes the accept goroutine panic once armed: the next use of the listener's
// socket (Control, which the goroutine calls to accept) panics.
type panickyListener struct {
	net.Listener
	armed atomic.Bool
}

func (l *panickyListener) SyscallConn() (syscall.RawConn, error) {
	rc, err := l.Listener.(syscall.Conn).SyscallConn()
	return panickyRaw{RawConn: rc, l: l}, err
}

type panickyRaw struct {
	syscall.RawConn
	l *panickyListener
}

func (r panickyRaw) Control(f func(uintptr)) error {
	if r.l.armed.CompareAndSwap(true, false) {
		panic("test: accept panicked")
	}
	return r.RawConn.Control(f)
}

func TestAcceptLoopPanicKeepsConnectionsAndAcceptsAgain(t *testing.T) {
	sys := actortest.NewSystem(t)
	disp := actortest.NewProbe(t, sys)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &panickyListener{Listener: ln}
	cfg := &Config{Listener: pl, Forwarder: &forwarder.Config{Dispatcher: disp.PID}}
	// The Acceptor re-panics for its supervisor; stand in for the lb's, which resumes it.
	events := make(chan *actor.SupervisorEvent, 4)
	sub := sys.EventStream.Subscribe(func(e any) {
		if ev, ok := e.(*actor.SupervisorEvent); ok {
			events <- ev
		}
	})
	t.Cleanup(func() { sys.EventStream.Unsubscribe(sub) })
	resume := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.ResumeDirective })
	accCh := make(chan *actor.PID, 1)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			accCh <- ctx.Spawn(Props(cfg))
		}
	}, actor.WithSupervisor(resume)))
	t.Cleanup(func() { _ = sys.Root.StopFuture(parent).Wait() })
	acc := <-accCh
	f := &fixture{t: t, sys: sys, disp: disp, acc: acc, addr: ln.Addr().String()}
	const answer = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"

	c1 := f.dial()
	io.WriteString(c1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	m := actortest.Expect[*messages.PickBackend](disp)
	first := m.Holder.Id // read before the answer: the Forwarder reuses the message
	sys.Root.Send(m.ReplyTo, &messages.NoBackend{Reason: messages.NoBackendDown})
	readN(t, c1, len(answer))
	pl.armed.Store(true) // the next accept panics

	// Supervision saw the panic, and resumed the Acceptor.
	select {
	case ev := <-events:
		actortest.Equal(t, "supervised", ev.Child.Id, acc.Id)
		actortest.Equal(t, "directive", ev.Directive, actor.ResumeDirective)
	case <-time.After(actortest.Wait):
		t.Fatal("no supervisor event for the accept loop's panic")
	}
	// A new accept goroutine takes the next connection.
	c2 := f.dial()
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	m2 := actortest.Expect[*messages.PickBackend](disp)
	if m2.Holder.Id == first {
		t.Fatalf("the second connection came from the first one's Forwarder")
	}
	sys.Root.Send(m2.ReplyTo, &messages.NoBackend{Reason: messages.NoBackendDown})
	readN(t, c2, len(answer))

	// The first connection's Forwarder lived through it: the connection still serves.
	io.WriteString(c1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	m3 := actortest.Expect[*messages.PickBackend](disp)
	actortest.Equal(t, "holder after the panic", m3.Holder.Id, first)
}
