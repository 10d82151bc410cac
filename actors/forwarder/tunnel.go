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
// held for the tunnel's whole life. The client connection always closes after a tunnel.
func (c *clientConn) tunnel(p *messages.BackendPicked) bool {
	up := c.up.conn
	c.up.conn = nil
	defer up.Close()
	c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeOK}
	if err := c.writeHead(c.up.br.Buffered()); err != nil {
		return false
	}
	_ = c.conn.SetDeadline(time.Time{})
	_ = up.SetDeadline(time.Time{})

	done := make(chan any, 1)
	go func() {
		// Client to backend: what the client buffer holds first, then the socket.
		defer func() {
			r := recover()
			if r != nil {
				r = fmt.Sprintf("tunnel: %v", r)
			}
			done <- r
		}()
		if n := c.br.Buffered(); n > 0 {
			b, _ := c.br.Peek(n)
			if _, err := up.Write(b); err != nil {
				return
			}
			_, _ = c.br.Discard(n)
		}
		_, _ = io.Copy(up, c.conn)
		closeWrite(up)
	}()
	_, _ = io.Copy(c.conn, up)
	closeWrite(c.conn)
	// One direction is over; the other gets the idle timeout to finish.
	idle := time.Now().Add(c.cfg.idleTimeout())
	_ = c.conn.SetDeadline(idle)
	_ = up.SetDeadline(idle)
	select {
	case r := <-done:
		if r != nil {
			panic(r)
		}
	case <-c.abort:
		_ = up.Close()
		_ = c.conn.Close()
		if r := <-done; r != nil {
			panic(r)
		}
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
