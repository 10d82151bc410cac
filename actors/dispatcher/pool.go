package dispatcher

import (
	"net"
	"time"
)

// idleConn is an upstream connection at rest, owned by the Dispatcher until handed out.
type idleConn struct {
	conn  net.Conn
	since time.Time
}

// idlePool holds one backend's idle upstream connections, most recently used last: handing out
// the warmest one first lets the coldest age out.
type idlePool struct {
	conns []idleConn
}

func (p *idlePool) len() int { return len(p.conns) }

func (p *idlePool) put(c net.Conn, now time.Time) {
	p.conns = append(p.conns, idleConn{conn: c, since: now})
}

// take hands out the most recently used connection that has been idle less than maxIdle, or
// nil. Older ones it meets are closed.
func (p *idlePool) take(maxIdle time.Duration) net.Conn {
	if len(p.conns) == 0 {
		return nil
	}
	cutoff := time.Now().Add(-maxIdle)
	for n := len(p.conns); n > 0; n = len(p.conns) {
		ic := p.conns[n-1]
		p.conns[n-1] = idleConn{}
		p.conns = p.conns[:n-1]
		if ic.since.After(cutoff) {
			return ic.conn
		}
		_ = ic.conn.Close()
	}
	return nil
}

// closeOlder closes the connections idle since before cutoff.
func (p *idlePool) closeOlder(cutoff time.Time) {
	kept := p.conns[:0]
	for _, ic := range p.conns {
		if ic.since.Before(cutoff) {
			_ = ic.conn.Close()
			continue
		}
		kept = append(kept, ic)
	}
	clear(p.conns[len(kept):])
	p.conns = kept
}

func (p *idlePool) closeAll() {
	for _, ic := range p.conns {
		_ = ic.conn.Close()
	}
	clear(p.conns)
	p.conns = p.conns[:0]
}
