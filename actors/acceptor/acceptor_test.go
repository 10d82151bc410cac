package acceptor

import (
	"io"
	"net"
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
