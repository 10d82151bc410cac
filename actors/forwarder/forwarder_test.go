package forwarder

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

const ok2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

// rig is one Forwarder under test: a real client connection over loopback, a probe standing in
// for the Dispatcher, and a parent supervising the Forwarder the way the Acceptor does.
type rig struct {
	t      *testing.T
	sys    *actor.ActorSystem
	disp   *actortest.Probe
	idle   *actortest.Probe // the IdleWatcher, when the Config asked for one with idleProbe
	client net.Conn
	br     *bufio.Reader
	fwd    *actor.PID
	events chan *actor.SupervisorEvent
	server net.Conn // the load balancer's end of the client connection
}

func newRig(t *testing.T, cfg Config, dispatcherPID func(*actor.ActorSystem) *actor.PID) *rig {
	t.Helper()
	sys := actortest.NewSystem(t)
	r := &rig{t: t, sys: sys, events: make(chan *actor.SupervisorEvent, 16)}
	if dispatcherPID == nil {
		r.disp = actortest.NewProbe(t, sys)
		cfg.Dispatcher = r.disp.PID
	} else {
		cfg.Dispatcher = dispatcherPID(sys)
	}
	if cfg.Idle == idleProbe {
		r.idle = actortest.NewProbe(t, sys)
		cfg.Idle = r.idle.PID
	}
	sub := sys.EventStream.Subscribe(func(e any) {
		if ev, ok := e.(*actor.SupervisorEvent); ok {
			r.events <- ev
		}
	})
	t.Cleanup(func() { sys.EventStream.Unsubscribe(sub) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r.client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r.server = server
	r.br = bufio.NewReader(r.client)
	strategy := actor.NewOneForOneStrategy(3, 10*time.Second, func(any) actor.Directive { return actor.RestartDirective })
	fwdCh := make(chan *actor.PID, 1)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			fwdCh <- ctx.Spawn(Props(&cfg, server))
		case *actor.Terminated:
			ctx.Send(cfg.Dispatcher, &messages.ForgetHolder{Holder: m.Who})
		}
	}, actor.WithSupervisor(strategy)))
	t.Cleanup(func() { _ = sys.Root.StopFuture(parent).Wait() })
	r.fwd = <-fwdCh
	return r
}

// idleProbe in Config.Idle makes newRig stand a probe in for the IdleWatcher (rig.idle).
var idleProbe = actor.NewPID("test", "idle-probe")

func (r *rig) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.client, s); err != nil {
		r.t.Fatal(err)
	}
}

// expectPick waits for a PickBackend from the Forwarder and checks its fields.
func (r *rig) expectPick(wantRelease messages.Release, wantRetry bool) *messages.PickBackend {
	r.t.Helper()
	m := actortest.Expect[*messages.PickBackend](r.disp)
	if m.Holder == nil || m.Holder.Id != r.fwd.Id {
		r.t.Fatalf("PickBackend holder: got %v, want %v", m.Holder, r.fwd)
	}
	got := m.Release
	gotIdle := got.Idle != nil
	got.Idle = nil
	if got.Outcome == messages.OutcomeOK && got.Latency <= 0 {
		r.t.Fatalf("PickBackend.Release: an answered request with latency %v", got.Latency)
	}
	got.Latency = 0 // measured: only its presence is checked
	wantIdle := wantRelease.Idle != nil
	wantRelease.Idle = nil
	actortest.Equal(r.t, "PickBackend.Release", got, wantRelease)
	actortest.Equal(r.t, "PickBackend.Release has idle", gotIdle, wantIdle)
	actortest.Equal(r.t, "PickBackend.Retry", m.Retry, wantRetry)
	return &messages.PickBackend{Holder: m.Holder, ReplyTo: m.ReplyTo} // a copy: the sender reuses m
}

func (r *rig) answer(p *messages.PickBackend, msg any) { r.sys.Root.Send(p.ReplyTo, msg) }

// readAll reads what the client gets until the load balancer closes the connection.
func (r *rig) readUntilClose() string {
	r.t.Helper()
	_ = r.client.SetReadDeadline(time.Now().Add(actortest.Wait))
	b, err := io.ReadAll(r.br)
	if err != nil {
		r.t.Fatalf("reading until close: %v (got %q)", err, b)
	}
	return string(b)
}

// readN reads exactly n bytes the client gets.
func (r *rig) readN(n int) string {
	r.t.Helper()
	_ = r.client.SetReadDeadline(time.Now().Add(actortest.Wait))
	b := make([]byte, n)
	if k, err := io.ReadFull(r.br, b); err != nil {
		got := b[:k]
		if k > 200 {
			got = append(got[:100:100], append([]byte("..."), got[k-100:]...)...)
		}
		r.t.Fatalf("reading %d bytes: %v after %d (got %q)", n, err, k, got)
	}
	return string(b)
}

// backend is an in-test server: each accepted connection runs handle.
func backend(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// answering answers every request on a connection with resp (keep-alive).
func answering(resp string) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readHead(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

func readHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestForwardsAndReleasesWithIdleConnection(t *testing.T) {
	r := newRig(t, Config{}, nil)
	addr := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1, Backend: 0}, Addr: addr})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
	// The client is idle now: the slot goes back at once, with the clean upstream connection.
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release lease", rel.Release.Lease, messages.Lease{ID: 1, Backend: 0})
	actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeOK)
	if rel.Release.Idle == nil {
		t.Fatalf("release: got no idle connection, want the kept-alive upstream connection")
	}
	// The next request on the same client connection is balanced on its own and reuses it.
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr, Idle: rel.Release.Idle})
	actortest.Equal(t, "second response", r.readN(len(ok2)), ok2)
}

func TestPipelinedRequestsFoldTheRelease(t *testing.T) {
	r := newRig(t, Config{}, nil)
	addr := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	// The second request is already buffered: its pick carries the first lease back.
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeOK, Idle: dummyConn{}, Status: 200}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr})
	actortest.Equal(t, "responses", r.readN(2*len(ok2)), ok2+ok2)
}

// dummyConn marks "an idle connection is expected" in expectPick.
type dummyConn struct{ net.Conn }

func TestRefusedConnectMovesOn(t *testing.T) {
	r := newRig(t, Config{}, nil)
	live := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1, Backend: 0}, Addr: deadAddr(t)})
	// Nothing was sent, so the request keeps its slot and asks for the next best backend,
	// telling the Dispatcher the first one refused.
	p = r.expectPick(messages.Release{Lease: messages.Lease{ID: 1, Backend: 0}, Outcome: messages.OutcomeConnectFailed}, true)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Addr: live})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

func TestNoBackendGetsClassic500(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.NoBackend{Reason: messages.NoBackendDown})
	actortest.Equal(t, "response", r.readN(len(classic500)), string(classic500))
	// No body was left unread: the connection stays usable.
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	r.expectPick(messages.Release{}, false)
}

func TestSilentBackendTimesOut(t *testing.T) {
	r := newRig(t, Config{ResponseTimeout: 200 * time.Millisecond}, nil)
	hold := make(chan struct{})
	defer close(hold)
	addr := backend(t, func(c net.Conn) { <-hold })
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 7}, Addr: addr})
	actortest.Equal(t, "response", r.readN(len(classic500)), string(classic500))
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeTimeout)
	if rel.Release.Idle != nil {
		t.Fatalf("a timed-out connection came back as idle")
	}
}

func TestGatewayErrorCodes(t *testing.T) {
	r := newRig(t, Config{Errors: ErrorsGateway}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.NoBackend{Reason: messages.NoBackendQueueTimeout})
	want := string(gatewayResponses[failQueue])
	actortest.Equal(t, "response", r.readN(len(want)), want)
	if !strings.HasPrefix(want, "HTTP/1.1 503 ") {
		t.Fatalf("queue timeout in gateway mode: got %q, want a 503", want)
	}
}

func TestMalformedRequestGets400AndClose(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
	got := r.readUntilClose()
	if !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("smuggling attempt: got %q, want a 400", got)
	}
	r.expectForgotten() // the Forwarder stopped, and the request never reached the Dispatcher
	r.disp.ExpectNothing(100 * time.Millisecond)
}

func TestHopByHopAndForwardedHeaders(t *testing.T) {
	r := newRig(t, Config{}, nil)
	heads := make(chan string, 1)
	addr := backend(t, func(c net.Conn) {
		h, _ := readHead(bufio.NewReader(c))
		heads <- h
		io.WriteString(c, ok2)
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n" +
		"X-Forwarded-For: 10.1.1.1\r\nX-Request-ID: abc-123\r\nAccept: */*\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	want := "GET /a HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\nAccept: */*\r\n" +
		"X-Forwarded-For: 10.1.1.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
	actortest.Equal(t, "upstream head", <-heads, want)
}

func TestCrashBeforePickIsRestartedAndAnswered(t *testing.T) {
	r := newRig(t, Config{testCrash: true}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: before-pick\r\n\r\n")
	actortest.Equal(t, "response", r.readUntilClose(), string(classic500))
	r.expectRestart()
}

func TestCrashInReceiveIsRestartedAndAnswered(t *testing.T) {
	r := newRig(t, Config{testCrash: true}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: receive\r\n\r\n")
	actortest.Equal(t, "response", r.readUntilClose(), string(classic500))
	r.expectRestart()
}

func TestCrashInReceiveWithAnInlineAnswerIsAnswered(t *testing.T) {
	// With the real Dispatcher, run inline, the answer to the pick is in before the I/O
	// goroutine looks, after its Forwarder restarted: the restart must still win, and the slot
	// go back (N=1: the next client would wait for it forever). Without the check the race
	// went either way, so it runs several times.
	addr := backend(t, answering(ok2))
	for i := 0; i < 10; i++ {
		r, disp := newRigWithOneSlot(t, addr)
		r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: receive\r\n\r\n")
		actortest.Equal(t, "response", r.readUntilClose(), string(classic500))
		r.expectRestart()
		r.expectSlotFree(disp)
	}
}

// newRigWithOneSlot is a rig whose Forwarder talks to a real Dispatcher (run inline, as in the
// daemon) with N=1 and addr as its only backend.
func newRigWithOneSlot(t *testing.T, addr string) (*rig, *actor.PID) {
	t.Helper()
	var disp *actor.PID
	r := newRig(t, Config{testCrash: true}, func(sys *actor.ActorSystem) *actor.PID {
		cfg := &dispatcher.Config{Backends: []messages.Backend{{Addr: addr}}, N: 1, QueueTimeout: actortest.Wait * 2}
		disp = sys.Root.Spawn(dispatcher.Props(cfg))
		return disp
	})
	return r, disp
}

// expectSlotFree checks that another holder gets a slot from disp (N=1: none leaked).
func (r *rig) expectSlotFree(disp *actor.PID) {
	r.t.Helper()
	ep := reply.New(r.sys, 1)
	defer ep.Close()
	other := actortest.NewProbe(r.t, r.sys)
	r.sys.Root.Send(disp, &messages.PickBackend{Holder: other.PID, ReplyTo: ep.PID()})
	actortest.Recv[*messages.BackendPicked](r.t, ep.C)
}

func TestCrashMidResponseClosesConnection(t *testing.T) {
	r := newRig(t, Config{testCrash: true}, nil)
	addr := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: mid-response\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	// The head went out, so no error response can follow: the connection just closes.
	actortest.Equal(t, "response", r.readUntilClose(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
	r.expectRestart()
}

func (r *rig) expectRestart() {
	r.t.Helper()
	select {
	case ev := <-r.events:
		if ev.Directive != actor.RestartDirective || ev.Child.Id != r.fwd.Id {
			r.t.Fatalf("supervisor event: got %v for %v, want restart of %v", ev.Directive, ev.Child, r.fwd)
		}
	case <-time.After(actortest.Wait):
		r.t.Fatalf("no supervisor event")
	}
}

func TestCrashWithSlotGivesSlotBack(t *testing.T) {
	// With a real Dispatcher and N=1: a Forwarder that crashes holding the only slot must give
	// it back, or the next client waits forever.
	r, disp := newRigWithOneSlot(t, backend(t, answering(ok2)))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: after-pick\r\n\r\n")
	actortest.Equal(t, "response", r.readUntilClose(), string(classic500))
	r.expectRestart()
	r.expectSlotFree(disp)
}

func TestClosingResponseDoesNotPromiseKeepAlive(t *testing.T) {
	tests := []struct {
		name, backend, want string
	}{
		// The backend promises keep-alive but the client asked to close: the head says close.
		{"keep-alive rewritten", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi",
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"},
		// A backend that says nothing about the connection is passed on byte for byte.
		{"classic unchanged", ok2, ok2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{}, nil)
			addr := backend(t, answering(tt.backend))
			r.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			p := r.expectPick(messages.Release{}, false)
			r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
			actortest.Equal(t, "response", r.readUntilClose(), tt.want)
			// The client's close is hop-by-hop: the upstream connection is still reused.
			rel := actortest.Expect[*messages.ReleaseLease](r.disp)
			if rel.Release.Idle == nil {
				t.Fatalf("upstream connection not kept after a client-side close")
			}
		})
	}
}

func TestStaleIdleConnectionIsReplaced(t *testing.T) {
	// The backend closes after every response without saying so. The request sent down the
	// idle connection it had closed goes again on a fresh one, and the release says so.
	r := newRig(t, Config{}, nil)
	addr := backend(t, func(c net.Conn) {
		if _, err := readHead(bufio.NewReader(c)); err == nil {
			io.WriteString(c, ok2)
		}
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	actortest.Equal(t, "first response", r.readN(len(ok2)), ok2)
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	idle := rel.Release.Idle
	if idle == nil {
		t.Fatalf("no idle connection released")
	}
	// Wait until the backend's close has surely arrived.
	waitClosed(t, idle)
	for _, req := range []string{
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n",                         // no body: replayed
		"PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", // small body: held and replayed
	} {
		r.send(req)
		p = r.expectPick(messages.Release{}, false)
		r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr, Idle: idle})
		actortest.Equal(t, "response over a fresh connection", r.readN(len(ok2)), ok2)
		rel = actortest.Expect[*messages.ReleaseLease](r.disp)
		actortest.Equal(t, "release stale", rel.Release.Stale, true)
		actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeOK)
		idle = rel.Release.Idle
		waitClosed(t, idle)
	}
}

// waitClosed waits until the peer of c has closed it.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for stillOpen(c) {
		if time.Now().After(deadline) {
			t.Fatalf("peer never closed the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMalformedChunkedBodyGets400(t *testing.T) {
	// The whole body is in the buffer with the head: it is checked first, and the request
	// never reaches the Dispatcher, let alone a backend.
	r := newRig(t, Config{}, nil)
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	if got := r.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("bad chunk size: got %q, want a 400", got)
	}
	r.expectForgotten() // the Forwarder stopped, and never picked a backend
	r.disp.ExpectNothing(100 * time.Millisecond)
}

func TestConnectionCannotStripFraming(t *testing.T) {
	// "Connection: Content-Length" must not remove the length of a body that is still sent:
	// upstream, the body would be read as a second request (smuggling).
	r := newRig(t, Config{NoRequestID: true, NoForwardedFor: true, NoForwardedProto: true}, nil)
	heads := make(chan string, 1)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		h, _ := readHead(br)
		heads <- h
		io.WriteString(c, ok2)
	})
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nConnection: Content-Length, Host\r\nContent-Length: 3\r\n\r\nabc")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	actortest.Equal(t, "upstream head", <-heads, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
}

func TestConnectMethodRefused(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.send("CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n")
	if got := r.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 501 ") {
		t.Fatalf("CONNECT: got %q, want a 501", got)
	}
	r.expectForgotten() // the Forwarder stopped, and never picked a backend
	r.disp.ExpectNothing(100 * time.Millisecond)
}

func TestDirtyIdleConnectionNotReused(t *testing.T) {
	// The backend sends bytes after its response (a late body, an unsolicited answer): the
	// connection must not carry the next request, or that request gets those bytes.
	r := newRig(t, Config{}, nil)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, ok2)
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, "EVIL")
		readHead(br)
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	idle := actortest.Expect[*messages.ReleaseLease](r.disp).Release.Idle
	time.Sleep(100 * time.Millisecond) // let the late bytes arrive (the bug needs them there)
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr, Idle: idle})
	actortest.Equal(t, "second response", r.readN(len(ok2)), ok2)
}

func TestStrayCRLFDoesNotHoldTheSlot(t *testing.T) {
	// Old clients send a CRLF after a body. Buffered bytes that are not a whole head must not
	// keep the lease while the rest of a head may take until the header timeout.
	r := newRig(t, Config{}, nil)
	addr := backend(t, answering(ok2))
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "released lease", rel.Release.Lease.ID, uint64(1))
}

func TestTunnelEndsWhenClientLeavesAndBackendIsSilent(t *testing.T) {
	// After the client leaves an upgraded connection, a backend that never closes must not
	// keep the slot (and two sockets) forever: it gets the idle timeout.
	r := newRig(t, Config{IdleTimeout: 200 * time.Millisecond}, nil)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		<-hold // silent, and never closes on its own
	})
	r.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	r.client.(*net.TCPConn).CloseWrite()
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "released lease", rel.Release.Lease.ID, uint64(1))
}

// parkAfterOneRequest serves one request on a rig with an IdleWatcher probe and waits for the
// idle connection to be handed to the watcher.
func (r *rig) parkAfterOneRequest(addr string) *messages.WatchIdle {
	r.t.Helper()
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	actortest.Equal(r.t, "response", r.readN(len(ok2)), ok2)
	actortest.Expect[*messages.ReleaseLease](r.disp)
	start := time.Now()
	w := actortest.Expect[*messages.WatchIdle](r.idle)
	r.expectForgotten()
	if w.Holder == nil || w.Holder.Id != r.fwd.Id || w.Conn == nil {
		r.t.Fatalf("WatchIdle: got holder %v conn %v, want %v and the connection", w.Holder, w.Conn, r.fwd)
	}
	if left := time.Until(w.Deadline); left < 55*time.Second || left > 60*time.Second {
		r.t.Fatalf("WatchIdle deadline %v from now, want the 60s idle timeout from the last response", left)
	}
	if time.Since(start) > 2*time.Second {
		r.t.Fatalf("parked after %v, want about %v", time.Since(start), idleHold)
	}
	return w
}

func TestIdleConnectionParksAndWakes(t *testing.T) {
	r := newRig(t, Config{Idle: idleProbe}, nil)
	addr := backend(t, answering(ok2))
	r.parkAfterOneRequest(addr)
	// Parked: no goroutine reads the connection, so a request waits for the wake.
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	r.disp.ExpectNothing(300 * time.Millisecond)
	r.sys.Root.Send(r.fwd, messages.IdleReadable)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr})
	actortest.Equal(t, "response after the wake", r.readN(len(ok2)), ok2)
	// And it parks again.
	actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Expect[*messages.WatchIdle](r.idle)
	r.expectForgotten()
}

func TestParkedConnectionClosesWhenItsIdleTimeoutPasses(t *testing.T) {
	r := newRig(t, Config{Idle: idleProbe}, nil)
	r.parkAfterOneRequest(backend(t, answering(ok2)))
	r.sys.Root.Send(r.fwd, messages.IdleExpired)
	actortest.Equal(t, "after the idle timeout", r.readUntilClose(), "")
	r.expectStopped()
}

func TestDrainClosesParkedConnection(t *testing.T) {
	r := newRig(t, Config{Idle: idleProbe}, nil)
	r.parkAfterOneRequest(backend(t, answering(ok2)))
	r.sys.Root.Send(r.fwd, &messages.Drain{Deadline: time.Now().Add(time.Minute)})
	actortest.Equal(t, "after the drain", r.readUntilClose(), "")
	r.expectStopped()
}

func TestClientLeavingWhileParkedEndsTheForwarder(t *testing.T) {
	r := newRig(t, Config{Idle: idleProbe}, nil)
	r.parkAfterOneRequest(backend(t, answering(ok2)))
	r.client.Close()
	r.sys.Root.Send(r.fwd, messages.IdleReadable) // what the watcher sends on the hang-up
	r.expectStopped()
	r.expectForgotten() // from the parent, as the Acceptor does
	r.disp.ExpectNothing(100 * time.Millisecond)
}

func TestStaleWakeIsIgnored(t *testing.T) {
	// A wake for a descriptor this connection reused reaches a Forwarder whose goroutine runs:
	// nothing changes.
	r := newRig(t, Config{Idle: idleProbe}, nil)
	addr := backend(t, answering(ok2))
	r.sys.Root.Send(r.fwd, messages.IdleReadable)
	r.sys.Root.Send(r.fwd, messages.IdleExpired)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
}

// expectForgotten waits for the ForgetHolder that tells the Dispatcher this Forwarder holds no
// lease (it parked, or stopped).
func (r *rig) expectForgotten() {
	r.t.Helper()
	m := actortest.Expect[*messages.ForgetHolder](r.disp)
	if m.Holder == nil || m.Holder.Id != r.fwd.Id {
		r.t.Fatalf("ForgetHolder: got %v, want %v", m.Holder, r.fwd)
	}
}

// expectStopped waits for the Forwarder to be gone from the registry.
func (r *rig) expectStopped() {
	r.t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for {
		if _, ok := r.sys.ProcessRegistry.Get(r.fwd); !ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("the Forwarder did not stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLateReplyClosesItsIdleConnection(t *testing.T) {
	r := newRig(t, Config{PickTimeout: 200 * time.Millisecond}, nil)
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.NoBackend{Reason: messages.NoBackendDown})
	actortest.Equal(t, "first response", r.readN(len(classic500)), string(classic500))
	// The Dispatcher does not answer the next pick in time: the client gets the error and the
	// connection ends.
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	actortest.Equal(t, "second response", r.readUntilClose(), string(classic500))
	r.expectForgotten()
	// Its answer comes after all, with an idle upstream connection nobody will use. The reply
	// address resolved on the first answer, so this one still reaches the closed endpoint.
	idle, peer := net.Pipe()
	defer peer.Close()
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: r.fwd, Addr: "127.0.0.1:1", Idle: idle})
	_ = peer.SetReadDeadline(time.Now().Add(actortest.Wait))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the idle connection of a late reply: read got %v, want io.EOF (closed)", err)
	}
	// And the Dispatcher is told to forget the holder, which gives the late lease back (the
	// Acceptor's ForgetHolder may have come before the pick).
	r.expectForgotten()
}

func TestDrainDuringHeadStillServesTheRequest(t *testing.T) {
	r := newRig(t, Config{}, nil)
	addr := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond) // the head read is waiting for the rest
	r.sys.Root.Send(r.fwd, &messages.Drain{Deadline: time.Now().Add(time.Minute)})
	time.Sleep(50 * time.Millisecond) // the poke has woken it
	r.send("st: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	got := r.readUntilClose()
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "\r\n\r\nhi") {
		t.Fatalf("a request whose head was arriving when the drain began: got %q, want the backend's 200", got)
	}
}

func TestDrainDuringChunkedUploadFinishesIt(t *testing.T) {
	r := newRig(t, Config{}, nil)
	bodies := make(chan string, 1)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		var sb strings.Builder
		for { // the chunked body, up to its last chunk and the empty trailer
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			sb.WriteString(line)
			if strings.HasSuffix(sb.String(), "0\r\n\r\n") {
				break
			}
		}
		bodies <- sb.String()
		_, _ = io.WriteString(c, ok2)
	})
	r.send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	time.Sleep(50 * time.Millisecond) // the body copy is waiting for the next chunk
	r.sys.Root.Send(r.fwd, &messages.Drain{Deadline: time.Now().Add(time.Minute)})
	time.Sleep(50 * time.Millisecond)
	r.send("2\r\nde\r\n0\r\n\r\n")
	got := r.readUntilClose()
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("an upload in progress when the drain began: got %q, want the backend's 200", got)
	}
	actortest.Equal(t, "body upstream", <-bodies, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
}

func TestIdleConnectionOlderThanTheResponseTimeoutIsReused(t *testing.T) {
	// The read deadline the last response head left on a pooled connection has passed by the
	// time it is reused; the check before reuse must look at the socket, not at that deadline.
	r := newRig(t, Config{ResponseTimeout: 100 * time.Millisecond}, nil)
	var accepts atomic.Int32
	addr := backend(t, func(c net.Conn) { accepts.Add(1); answering(ok2)(c) })
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	actortest.Equal(t, "first response", r.readN(len(ok2)), ok2)
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	if rel.Release.Idle == nil {
		t.Fatalf("no idle connection released")
	}
	time.Sleep(300 * time.Millisecond)
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr, Idle: rel.Release.Idle})
	actortest.Equal(t, "second response", r.readN(len(ok2)), ok2)
	rel = actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release stale", rel.Release.Stale, false)
	actortest.Equal(t, "release reused", rel.Release.Reused, true)
	actortest.Equal(t, "backend connections", accepts.Load(), int32(1))
}

// trickle writes s to c a piece at a time, pausing every between pieces.
func trickle(c net.Conn, s string, piece int, every time.Duration) error {
	for len(s) > 0 {
		k := min(piece, len(s))
		if _, err := io.WriteString(c, s[:k]); err != nil {
			return err
		}
		s = s[k:]
		time.Sleep(every)
	}
	return nil
}

func TestBodyTimeoutIsAPauseNotARate(t *testing.T) {
	// With a 300 ms body timeout, a response body that keeps moving goes through however long
	// it takes, also after a fast one on the same connection (which once left big chunks,
	// each to be moved within one timeout, behind).
	r := newRig(t, Config{BodyTimeout: 300 * time.Millisecond}, nil)
	big := strings.Repeat("x", 2<<20)
	slow := strings.Repeat("y", 3000)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := readHead(br)
			if err != nil {
				return
			}
			if strings.HasPrefix(head, "GET /big ") {
				io.WriteString(c, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
				continue
			}
			io.WriteString(c, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(slow)))
			if trickle(c, slow, 100, 50*time.Millisecond) != nil { // 1.5 s in all
				return
			}
		}
	})
	headOf := func(n int) string { return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n) }
	r.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	actortest.Equal(t, "fast response", r.readN(len(headOf(len(big)))+len(big)) == headOf(len(big))+big, true)
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	r.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr, Idle: rel.Release.Idle})
	actortest.Equal(t, "trickled response", r.readN(len(headOf(len(slow)))+len(slow)), headOf(len(slow))+slow)
	rel = actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeOK)
}

func TestResponseBodyThatStallsIsCutOff(t *testing.T) {
	r := newRig(t, Config{BodyTimeout: 300 * time.Millisecond}, nil)
	release := make(chan struct{})
	addr := backend(t, func(c net.Conn) {
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
		<-release // the rest would come long after the timeout
		io.WriteString(c, "world")
	})
	t.Cleanup(func() { close(release) }) // runs before the backend's cleanup
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	// The client gets what came, then the close (nothing else can tell it the body is cut).
	actortest.Equal(t, "cut response", r.readUntilClose(), "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeBackendFailed)
}

func TestTricklingUploadGoesThroughAndAStalledOneIsCutOff(t *testing.T) {
	bodies := make(chan string, 1)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		b := make([]byte, 3000)
		if _, err := io.ReadFull(br, b); err != nil {
			bodies <- "cut after " + fmt.Sprint(len(strings.TrimRight(string(b), "\x00")))
			return
		}
		bodies <- string(b)
		io.WriteString(c, ok2)
	})
	body := strings.Repeat("z", 3000)
	r := newRig(t, Config{BodyTimeout: 300 * time.Millisecond}, nil)
	r.send("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	if err := trickle(r.client, body, 100, 50*time.Millisecond); err != nil { // 1.5 s in all
		t.Fatal(err)
	}
	actortest.Equal(t, "body upstream", <-bodies, body)
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)

	r = newRig(t, Config{BodyTimeout: 300 * time.Millisecond}, nil)
	r.send("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.send(body[:1000]) // and no more
	actortest.Equal(t, "body upstream", <-bodies, "cut after 1000")
	waitClosed(t, r.client)
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "release outcome", rel.Release.Outcome, messages.OutcomeClientFailed)
}

func TestTunnelTurnsOnKeepAliveProbes(t *testing.T) {
	// Nothing else would end a tunnel whose peers vanished without closing.
	r := newRig(t, Config{}, nil)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	addr := backend(t, func(c net.Conn) {
		if _, err := readHead(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		<-hold
	})
	_ = r.server.(*net.TCPConn).SetKeepAlive(false) // as the load balancer's listener accepts them
	actortest.Equal(t, "keep-alive before the tunnel", keepAliveOn(t, r.server), false)
	r.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	actortest.Equal(t, "keep-alive in the tunnel", keepAliveOn(t, r.server), true)
}

func keepAliveOn(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil || serr != nil {
		t.Fatalf("SO_KEEPALIVE: %v %v", err, serr)
	}
	return v != 0
}
