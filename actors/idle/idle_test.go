package idle

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// fixture is an IdleWatcher under test; probes stand in for the Forwarders it wakes.
type fixture struct {
	t   *testing.T
	sys *actor.ActorSystem
	w   *actor.PID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if !Supported {
		t.Skip("no IdleWatcher on this platform")
	}
	sys := actortest.NewSystem(t)
	f := &fixture{t: t, sys: sys}
	f.w = sys.Root.Spawn(Props(&Config{}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(f.w).Wait() })
	return f
}

// pair returns the two ends of a loopback TCP connection: the one the load balancer would hold
// and the client's. Both are closed when the test ends.
func pair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); client.Close() })
	return s.(*net.TCPConn), client
}

// watch has the watcher watch conn for a new probe, with a deadline d from now.
func (f *fixture) watch(conn syscall.Conn, d time.Duration) *actortest.Probe {
	p := actortest.NewProbe(f.t, f.sys)
	f.sys.Root.Send(f.w, &messages.WatchIdle{Conn: conn, Holder: p.PID, Deadline: time.Now().Add(d)})
	return p
}

func expectWake(t *testing.T, p *actortest.Probe, expired bool) {
	t.Helper()
	m := actortest.Expect[*messages.IdleWake](p)
	if m.Expired != expired {
		t.Fatalf("wake: got Expired=%v, want %v", m.Expired, expired)
	}
}

func TestWakesWhenAByteArrives(t *testing.T) {
	f := newFixture(t)
	server, client := pair(t)
	p := f.watch(server, time.Hour)
	p.ExpectNothing(200 * time.Millisecond)
	if _, err := client.Write([]byte("G")); err != nil {
		t.Fatal(err)
	}
	expectWake(t, p, false)
	// One wake per watch: more bytes wake nobody.
	_, _ = client.Write([]byte("ET"))
	p.ExpectNothing(200 * time.Millisecond)
}

func TestWakesAtOnceWhenBytesAreAlreadyIn(t *testing.T) {
	f := newFixture(t)
	server, client := pair(t)
	if _, err := client.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let loopback deliver them
	expectWake(t, f.watch(server, time.Hour), false)
}

func TestWakesWhenTheClientHangsUp(t *testing.T) {
	f := newFixture(t)
	server, client := pair(t)
	p := f.watch(server, time.Hour)
	client.Close()
	expectWake(t, p, false)
}

func TestExpiresAtTheDeadline(t *testing.T) {
	f := newFixture(t)
	server1, _ := pair(t)
	server2, _ := pair(t)
	later := f.watch(server2, 600*time.Millisecond)
	sooner := f.watch(server1, 200*time.Millisecond)
	start := time.Now()
	expectWake(t, sooner, true)
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("expired after %v, before its 200ms deadline", waited)
	}
	later.ExpectNothing(100 * time.Millisecond)
	expectWake(t, later, true)
}

func TestAWatchCanBeRenewedAfterAWake(t *testing.T) {
	f := newFixture(t)
	server, client := pair(t)
	p := f.watch(server, time.Hour)
	_, _ = client.Write([]byte("x"))
	expectWake(t, p, false)
	// The Forwarder read the byte and parks again: the one-shot registration is re-armed.
	buf := make([]byte, 1)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	f.sys.Root.Send(f.w, &messages.WatchIdle{Conn: server, Holder: p.PID, Deadline: time.Now().Add(time.Hour)})
	p.ExpectNothing(200 * time.Millisecond)
	_, _ = client.Write([]byte("y"))
	expectWake(t, p, false)
}

func TestAClosedConnectionWakesAtOnce(t *testing.T) {
	f := newFixture(t)
	server, _ := pair(t)
	server.Close()
	// Its Forwarder closed it meanwhile; the wake is what a Forwarder that can no longer be
	// watched gets (it then waits with a goroutine, or ignores the wake).
	expectWake(t, f.watch(server, time.Hour), false)
}

func TestClosedWatchedConnectionLeavesNoWakeButItsDeadline(t *testing.T) {
	f := newFixture(t)
	server, _ := pair(t)
	p := f.watch(server, 400*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the watch is registered
	// Closed by its Forwarder while watched: the close takes it out of the epoll set, so no
	// readiness report; the entry goes at its deadline.
	server.Close()
	p.ExpectNothing(200 * time.Millisecond)
	expectWake(t, p, true)
}

func TestReusedDescriptorReplacesTheWatch(t *testing.T) {
	f := newFixture(t)
	server, _ := pair(t)
	old := f.watch(server, 400*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the watch is registered
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	oldFd := fdOf(t, server)
	server.Close()
	// The accepted socket takes the lowest free descriptor: the one just closed.
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fdOf(t, s.(*net.TCPConn)) != oldFd {
		t.Skip("the new connection did not reuse the descriptor")
	}
	p := f.watch(s.(*net.TCPConn), time.Hour)
	_, _ = client.Write([]byte("x"))
	expectWake(t, p, false)
	old.ExpectNothing(600 * time.Millisecond) // not even at its deadline: the watch is gone
}

func fdOf(t *testing.T, c *net.TCPConn) uintptr {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	_ = rc.Control(func(s uintptr) { fd = s })
	return fd
}

func TestStoppingWakesEveryWatchedConnection(t *testing.T) {
	f := newFixture(t)
	var probes []*actortest.Probe
	for range 3 {
		server, _ := pair(t)
		probes = append(probes, f.watch(server, time.Hour))
	}
	time.Sleep(50 * time.Millisecond) // the watches are registered
	if err := f.sys.Root.StopFuture(f.w).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		expectWake(t, p, false)
	}
}

func TestPollFailureRestartsAndWakesEveryone(t *testing.T) {
	f := newFixture(t)
	server, client := pair(t)
	p := f.watch(server, time.Hour)
	time.Sleep(50 * time.Millisecond)
	f.sys.Root.Send(f.w, &messages.IdlePollFailed{Err: syscall.EBADF})
	// The restart wakes the watched connection (its registration went with the old epoll)...
	expectWake(t, p, false)
	// ...and the restarted watcher works.
	buf := make([]byte, 1)
	_ = client.SetDeadline(time.Now().Add(actortest.Wait))
	f.sys.Root.Send(f.w, &messages.WatchIdle{Conn: server, Holder: p.PID, Deadline: time.Now().Add(time.Hour)})
	_, _ = client.Write([]byte("x"))
	expectWake(t, p, false)
	_, _ = server.Read(buf)
}
