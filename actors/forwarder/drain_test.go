//go:build linux

package forwarder

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// A request already sent on an idle keep-alive connection when the drain reaches its loop (its
// bytes in the socket, its readiness not handled yet) is served, with Connection: close, and
// the connection closes after it; it is not reset.
func TestDrainServesARequestAlreadySent(t *testing.T) {
	r := newRig(t, Config{})
	addr := backend(t, answering(ok2))
	const get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	r.send(get)
	p := r.expectPick(messages.Release{}, false)
	lease := messages.Lease{ID: 1, Backend: 0}
	r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "first response", r.readN(len(ok2)), ok2)
	r.expectRelease(messages.Release{Lease: lease, Outcome: messages.OutcomeOK, Status: 200})

	// On the loop's thread, so that it handles nothing in between: the next request goes out
	// from the client and is waited for in the server's socket, then the drain comes.
	w := r.engine.workers[0]
	c := w.conns.next
	o := onLoop{f: func() {
		if _, err := r.client.Write([]byte(get)); err != nil {
			t.Error(err)
			return
		}
		for deadline := time.Now().Add(actortest.Wait); ; {
			n, err := unix.IoctlGetInt(c.cfd, unix.SIOCINQ)
			if err != nil || n == len(get) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		w.Deliver(drainAll{})
	}, done: make(chan struct{})}
	w.l.Post(o, nil)
	<-o.done

	p = r.expectPick(messages.Release{}, false)
	lease = messages.Lease{ID: 2, Backend: 0}
	r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: addr})
	got := r.readUntilClose()
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "\r\nConnection: close\r\n") {
		t.Fatalf("the request sent before the drain: got %q, want a 200 with Connection: close, then the close", got)
	}
	r.expectEnded()
}

// A connection that has sent nothing when the drain comes (taken from the listener's backlog
// as it closed) still gets its first request served.
func TestDrainWaitsForAFreshConnectionsFirstRequest(t *testing.T) {
	r := newLoopRig(t, Config{})
	addr := backend(t, answering(ok2))
	r.engine.Drain()
	c := r.connect() // adopted by a draining loop
	time.Sleep(50 * time.Millisecond)
	c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	if got := c.readUntilClose(); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("got %q, want the 200 and the close", got)
	}
}
