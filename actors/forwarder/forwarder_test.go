//go:build linux

package forwarder

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

const ok2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

// rig is one client connection to a Forwarder on an event loop, with probes standing in for the
// Dispatcher (disp) and the Acceptor (acceptor): loopRig and its first loopClient in one.
type rig struct {
	*loopRig
	*loopClient
	client net.Conn
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	lr := newLoopRig(t, cfg)
	c := lr.connect()
	return &rig{loopRig: lr, loopClient: c, client: c.conn}
}

// expectEnded waits for the Acceptor's ConnEnded: the connection closed.
func (r *rig) expectEnded() *messages.ConnEnded {
	r.t.Helper()
	return actortest.Expect[*messages.ConnEnded](r.acceptor)
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

// A request that breaks the framing rules (here both Content-Length and chunked: smuggling)
// gets 400 and the connection closes; it never reaches the Dispatcher.
func TestMalformedRequestGets400AndClose(t *testing.T) {
	r := newRig(t, Config{})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
	if got := r.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("smuggling attempt: got %q, want a 400", got)
	}
	r.expectEnded()
	r.disp.ExpectNothing(100 * time.Millisecond)
}

// Hop-by-hop fields stay here, the fields Connection names with them; X-Forwarded-For gets the
// client's address appended, X-Forwarded-Proto is set, a valid X-Request-ID is kept.
func TestHopByHopAndForwardedHeaders(t *testing.T) {
	r := newRig(t, Config{})
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

// A crash before the pick: the client gets the classic 500, the connection closes, and the
// Acceptor hears of the panic.
func TestCrashBeforePickIsAnswered(t *testing.T) {
	r := newRig(t, Config{testCrash: true})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: before-pick\r\n\r\n")
	actortest.Equal(t, "answer", r.readUntilClose(), string(classic500))
	if e := r.expectEnded(); e.Panic == nil {
		t.Fatal("ConnEnded without the panic")
	}
}

// A crash in the middle of a response: what was sent stays sent, the connection closes, and the
// lease goes back.
func TestCrashMidResponseClosesConnection(t *testing.T) {
	r := newRig(t, Config{testCrash: true})
	addr := backend(t, answering(ok2))
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Crash-Test: mid-response\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	if got := r.readUntilClose(); got != ok2 && !strings.HasPrefix(ok2, got) {
		t.Fatalf("got %q, want a prefix of the response", got)
	}
	if e := r.expectEnded(); e.Panic == nil {
		t.Fatal("ConnEnded without the panic")
	}
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "released lease", rel.Release.Lease.ID, uint64(1))
}

// When the client asked to close, a backend's keep-alive promise is rewritten to close; a
// backend that says nothing about the connection is passed on byte for byte. The client's close
// is hop-by-hop: the upstream connection is pooled all the same.
func TestClosingResponseDoesNotPromiseKeepAlive(t *testing.T) {
	tests := []struct {
		name, backend, want string
	}{
		{"keep-alive rewritten", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi",
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"},
		{"classic unchanged", ok2, ok2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{})
			addr := backend(t, answering(tt.backend))
			r.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			p := r.expectPick(messages.Release{}, false)
			r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
			actortest.Equal(t, "response", r.readUntilClose(), tt.want)
			actortest.Expect[*messages.ReleaseLease](r.disp)
			actortest.Equal(t, "pooled upstream connections", r.pooled(0), 1)
		})
	}
}

// A chunked body wholly in with the head is checked first: a malformed one gets 400 and never
// reaches the Dispatcher, let alone a backend.
func TestMalformedChunkedBodyGets400(t *testing.T) {
	r := newRig(t, Config{})
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	if got := r.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("bad chunk size: got %q, want a 400", got)
	}
	r.expectEnded()
	r.disp.ExpectNothing(100 * time.Millisecond)
}

// "Connection: Content-Length" must not remove the length of a body that is still sent:
// upstream, the body would be read as a second request (smuggling).
func TestConnectionCannotStripFraming(t *testing.T) {
	r := newRig(t, Config{NoRequestID: true, NoForwardedFor: true, NoForwardedProto: true})
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

// A reverse proxy opens no tunnels: CONNECT gets 501 and never reaches the Dispatcher.
func TestConnectMethodRefused(t *testing.T) {
	r := newRig(t, Config{})
	r.send("CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n")
	if got := r.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 501 ") {
		t.Fatalf("CONNECT: got %q, want a 501", got)
	}
	r.expectEnded()
	r.disp.ExpectNothing(100 * time.Millisecond)
}

// A backend that sends bytes after its response (a late body, an unsolicited answer): the pooled
// connection is dropped when they come, so the next request never reads them as its answer.
func TestDirtyIdleConnectionNotReused(t *testing.T) {
	r := newRig(t, Config{})
	sent := make(chan struct{})
	var conns atomic.Int32
	addr := backend(t, func(c net.Conn) {
		if conns.Add(1) > 1 {
			answering(ok2)(c) // the fresh connection after the dirty one
			return
		}
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, ok2)
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, "EVIL")
		close(sent)
		answering(ok2)(c)
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	actortest.Expect[*messages.ReleaseLease](r.disp)
	<-sent
	r.waitPooled(0, 0, "the connection with unasked bytes is still pooled")
	r.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2}, Addr: addr})
	actortest.Equal(t, "second response", r.readN(len(ok2)), ok2)
}

// Old clients send a CRLF after a body. Buffered bytes that are not a whole head must not keep
// the lease while the rest of a head may take until the header timeout.
func TestStrayCRLFDoesNotHoldTheSlot(t *testing.T) {
	r := newRig(t, Config{})
	addr := backend(t, answering(ok2))
	r.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	r.readN(len(ok2))
	rel := actortest.Expect[*messages.ReleaseLease](r.disp)
	actortest.Equal(t, "released lease", rel.Release.Lease.ID, uint64(1))
}

// After the client leaves an upgraded connection, a backend that never closes must not keep the
// slot (and two sockets) forever: it gets the idle timeout.
func TestTunnelEndsWhenClientLeavesAndBackendIsSilent(t *testing.T) {
	r := newRig(t, Config{IdleTimeout: 200 * time.Millisecond})
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
	r.expectEnded()
}

// Bytes both ways through a tunnel, and what the backend sent with its 101 arrives first.
func TestTunnelRelaysBothWays(t *testing.T) {
	r := newRig(t, Config{})
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		c.Write(buf) // echo
	})
	r.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
	actortest.Equal(t, "head and first bytes", r.readN(len(head)+5), head+"hello")
	r.send("ping")
	actortest.Equal(t, "echo", r.readN(4), "ping")
}
