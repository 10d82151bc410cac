package forwarder

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/loadbalancer/loadbalancer/messages"
)

// tunnel relays an upgraded connection (101 Switching Protocols, e.g. WebSocket) both ways until
// either side closes; then the other direction gets the idle timeout to finish. The slot stays
// held for the tunnel's whole life. An abort (stop, restart) closes both sockets. The client
// connection always closes after a tunnel.
func (c *clientConn) tunnel(p *messages.BackendPicked) bool {
	up := c.up.conn
	c.up.conn = nil
	defer up.Close()
	c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeOK}
	// A tunnel has no deadlines while both sides are open, so a peer that vanishes without a
	// close (a NAT that forgot the flow, a laptop put to sleep) would hold it, and its slot,
	// forever: TCP keep-alive probes find such peers within about a minute.
	tunnelKeepAlive(c.conn)
	tunnelKeepAlive(up)
	if err := c.writeHead(c.up.br.Buffered()); err != nil {
		return false
	}
	_ = c.conn.SetDeadline(time.Time{})
	_ = up.SetDeadline(time.Time{})

	// One direction is over: the other gets the idle timeout to finish.
	ended := func() {
		idle := time.Now().Add(c.cfg.idleTimeout())
		_ = c.conn.SetDeadline(idle)
		_ = up.SetDeadline(idle)
	}
	done := make(chan any, 2)
	relay := func(copyFn func()) {
		defer func() {
			r := recover()
			if r != nil {
				r = fmt.Sprintf("tunnel: %v", r)
			}
			done <- r
		}()
		copyFn()
		ended()
	}
	go relay(func() { // client to backend: what the client buffer holds first, then the socket
		if n := c.br.Buffered(); n > 0 {
			b, _ := c.br.Peek(n)
			if _, err := up.Write(b); err != nil {
				return
			}
			_, _ = c.br.Discard(n)
		}
		_, _ = io.Copy(up, c.conn)
		closeWrite(up)
	})
	go relay(func() { // backend to client
		_, _ = io.Copy(c.conn, up)
		closeWrite(c.conn)
	})
	var crash any
	for left := 2; left > 0; {
		select {
		case r := <-done:
			left--
			if r != nil && crash == nil {
				crash = r
				_ = up.Close()
				_ = c.conn.Close()
			}
		case <-c.abort:
			_ = up.Close()
			_ = c.conn.Close()
			for ; left > 0; left-- {
				<-done
			}
		}
	}
	if crash != nil {
		panic(crash)
	}
	return false
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// tunnelKeepAlive turns on TCP keep-alive probes on a tunnelled connection: after 30 s of
// silence, every 10 s, and the connection fails after 3 unanswered.
func tunnelKeepAlive(conn net.Conn) {
	if tc, ok := rawTCP(conn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
	}
}
