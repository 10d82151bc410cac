package forwarder

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// The latency sample of a 100-continue upload starts when the backend has the body: the client's
// time to send it is not the backend's.
func TestLatencySampleLeavesOutTheClientsUpload(t *testing.T) {
	r := newRig(t, Config{})
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			h, err := readHead(br)
			if err != nil {
				return
			}
			if strings.Contains(h, "Expect: 100-continue") {
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
				buf := make([]byte, 10)
				if _, err := io.ReadFull(br, buf); err != nil {
					return
				}
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	r.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Addr: addr})
	_ = r.client.SetReadDeadline(time.Now().Add(actortest.Wait))
	line, _ := r.br.ReadString('\n')
	r.br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("interim answer: got %q, want 100 Continue", line)
	}
	time.Sleep(400 * time.Millisecond) // the client takes its time with the body
	r.send("0123456789")
	r.readN(len("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	r.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	var rel messages.Release
	switch m := r.disp.Next().Msg.(type) {
	case *messages.PickBackend:
		rel = m.Release
	case *messages.ReleaseLease:
		rel = m.Release
	}
	if rel.Outcome != messages.OutcomeOK || rel.Latency <= 0 || rel.Latency > 300*time.Millisecond {
		t.Errorf("release: got %v with latency %v, want ok with the backend's own (near zero) latency", rel.Outcome, rel.Latency)
	}
}
