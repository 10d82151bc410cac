package forwarder

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Stress tests of the whole Forwarder lifecycle against the real Dispatcher, run inline as in
// the daemon, on two event loops: many clients at once, every way a connection can end, and
// afterwards every slot of N must be free.

// stressFront is an Acceptor stand-in: a listener whose connections each go to an event loop,
// under a parent that passes every ConnEnded on as ForgetHolder, with a real, inline Dispatcher.
type stressFront struct {
	sys  *actor.ActorSystem
	disp *actor.PID
	addr string
}

func newStressFront(t *testing.T, fcfg Config, dcfg *dispatcher.Config) *stressFront {
	t.Helper()
	sys := actortest.NewSystem(t)
	f := &stressFront{sys: sys}
	f.disp = sys.Root.Spawn(dispatcher.Props(dcfg))
	fcfg.Dispatcher = f.disp
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.ConnEnded); ok {
			ctx.Send(f.disp, &messages.ForgetHolder{Holder: m.Holder})
		}
	}))
	e, err := NewEngine(&fcfg, sys, parent, EngineOptions{Loops: 2})
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
			peer := netip.MustParseAddrPort(c.RemoteAddr().String())
			e.Adopt(rawFdTB(t, c), peer)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		e.Close()
		e.Wait()
		_ = sys.Root.StopFuture(parent).Wait()
	})
	return f
}

// slotsFree checks that the Dispatcher grants n picks at once to fresh holders: no slot leaked.
func (f *stressFront) slotsFree(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(actortest.Wait)
	for {
		ep := reply.New(f.sys, n)
		var got int
		holders := make([]*actor.PID, n)
		for i := range holders {
			holders[i] = actor.NewPID("nonhost", "probe-holder-"+string(rune('a'+i))+time.Now().Format("150405.000000000"))
			f.sys.Root.Send(f.disp, &messages.PickBackend{Holder: holders[i], ReplyTo: ep.PID()})
		}
		for i := 0; i < n; i++ {
			select {
			case m := <-ep.C:
				if _, ok := m.(*messages.BackendPicked); ok {
					got++
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		for _, h := range holders {
			f.sys.Root.Send(f.disp, &messages.ForgetHolder{Holder: h})
		}
		ep.Close()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots free: got %d of %d granted at once, want all (a slot leaked)", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clients runs workers goroutines, each making each connections to the front one after the
// other, with a deadline, and handing them to client, which reports a failure as a non-empty
// string; a worker ends when it cannot dial.
func (f *stressFront) clients(t *testing.T, workers, each int, client func(w, i int, c net.Conn, br *bufio.Reader) string) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c, err := net.Dial("tcp", f.addr)
				if err != nil {
					t.Error(err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(actortest.Wait))
				if e := client(w, i, c, bufio.NewReader(c)); e != "" {
					t.Error(e)
				}
				c.Close()
			}
		}(w)
	}
	wg.Wait()
}

// Keep-alive, pipelined, one-shot and hung-up connections, 16 clients at once through N=4.
func TestStressMixedConnections(t *testing.T) {
	addr := backend(t, answering(ok2))
	const n = 4
	f := newStressFront(t, Config{}, &dispatcher.Config{Backends: []messages.Backend{{Addr: addr}}, N: n, QueueTimeout: actortest.Wait})
	f.clients(t, 16, 60, func(w, i int, c net.Conn, br *bufio.Reader) string {
		switch (w + i) % 4 {
		case 0: // one request, close
			io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if b, _ := io.ReadAll(br); string(b) != ok2 {
				return "close: " + string(b)
			}
		case 1: // keep-alive, three requests
			for k := 0; k < 3; k++ {
				io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
				b := make([]byte, len(ok2))
				if _, err := io.ReadFull(br, b); err != nil || string(b) != ok2 {
					return "keepalive: " + string(b) + " " + errString(err)
				}
			}
		case 2: // pipelined
			io.WriteString(c, strings.Repeat("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 3))
			b := make([]byte, 3*len(ok2))
			if _, err := io.ReadFull(br, b); err != nil || string(b) != strings.Repeat(ok2, 3) {
				return "pipelined: " + string(b) + " " + errString(err)
			}
		case 3: // client hangs up right after the request
			io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		return ""
	})
	f.slotsFree(t, n)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// slowAnswering answers after d.
func slowAnswering(resp string, d time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readHead(br); err != nil {
				return
			}
			time.Sleep(d)
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

// N=1 with a backend slower than the pick timeout: most picks give up waiting (their late
// answers are dropped and given back), and every fifth request crashes its Forwarder.
func TestStressPickTimeoutsAndReuse(t *testing.T) {
	addr := backend(t, slowAnswering(ok2, 30*time.Millisecond))
	const n = 1
	f := newStressFront(t, Config{PickTimeout: 10 * time.Millisecond, testCrash: true},
		&dispatcher.Config{Backends: []messages.Backend{{Addr: addr}}, N: n, QueueTimeout: actortest.Wait})
	f.clients(t, 8, 40, func(w, i int, c net.Conn, br *bufio.Reader) string {
		hdr := ""
		if (w+i)%5 == 0 {
			hdr = "X-Crash-Test: receive\r\n"
		}
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
		b := make([]byte, len(classic500))
		n, err := io.ReadFull(br, b[:min(len(ok2), len(b))])
		if got := string(b[:n]); err != nil || (got != ok2 && !strings.HasPrefix(string(classic500), got)) {
			return fmt.Sprintf("response: %q %v", got, err)
		}
		return ""
	})
	f.slotsFree(t, n)
}
