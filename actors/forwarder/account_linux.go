//go:build linux

package forwarder

import (
	"fmt"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/evloop"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Counting and logging requests, on the loop: every request that ends is counted in its loop's
// TrafficStats (the loop's own state, copied out on a StatsRequest) and, with an access log,
// appended as a line to the loop's batch, which goes to the writer by message when it is full
// or logFlushAfter after its first line. Nothing here locks, and nothing sends a message per
// request.

const (
	// logBatch is the size of a batch buffer and logFlushAt how full it goes out.
	logBatch   = 64 << 10
	logFlushAt = 48 << 10
	// logFlushAfter is the longest a line waits in a loop's batch.
	logFlushAfter = 200 * time.Millisecond
)

// traffic returns the loop's counts for backend b, growing the table to it.
func (w *worker) traffic(b int) *messages.BackendTraffic {
	if b < 0 {
		return &w.stats.Unrouted
	}
	for b >= len(w.stats.Backends) {
		w.stats.Backends = append(w.stats.Backends, messages.BackendTraffic{})
	}
	return &w.stats.Backends[b]
}

// snapshot copies the loop's counts: the copy is the receiver's.
func (w *worker) snapshot() *messages.LoopStats {
	s := &messages.LoopStats{Loop: w.l.ID(), Traffic: w.stats}
	s.Traffic.Backends = append([]messages.BackendTraffic(nil), w.stats.Backends...)
	return s
}

// settle counts the request that just ended (answered, or cut off), once, and logs it.
func (c *conn) settle() {
	if !c.open {
		return
	}
	c.open = false
	now := c.w.l.Refresh()
	status := 0
	switch {
	case c.local != messages.LocalNone:
		status = int(c.localStatus)
	case c.gotResp:
		status = c.resp.Status
	}
	out := c.lastOut
	if c.pending.Lease.ID != 0 {
		out = c.pending.Outcome
	}
	failed := status >= 500 || out == messages.OutcomeBackendFailed || out == messages.OutcomeTimeout ||
		out == messages.OutcomeConnectFailed
	backend := -1
	if c.routed {
		backend = c.backend
	}
	t := c.w.traffic(backend)
	method := messages.MethodOther
	if c.headOK {
		method = methodClass(c.req.Method)
	}
	t.Requests[method][codeClass(status)]++
	if failed {
		t.Failed++
	}
	dur := time.Duration(now - c.startAt)
	if status != 101 {
		// An upgraded connection (a WebSocket) lives as long as it likes: its life is in the
		// access log, not in the request durations it would swamp.
		t.Duration.Observe(dur)
	}
	if c.gotResp && c.routed {
		t.Head.Observe(c.headAfter)
	}
	retries := 0
	if c.attempt > 1 {
		retries = int(c.attempt) - 1
		t.Retries += uint64(retries)
	}
	in, sent := c.rx-uint64(c.cin.len())-c.rxMark, c.tx-c.txMark
	if !c.headOK {
		// A head refused (400, 408, 431) was never consumed: all that came is the request's
		// (the connection closes after the answer).
		in = c.rx - c.rxMark
	}
	t.BytesIn += in
	t.BytesOut += sent
	if c.local != messages.LocalNone {
		c.w.stats.Local[c.local]++
	}
	if c.cfg.AccessLog == nil {
		return
	}
	r := &c.w.rec
	*r = logRecord{at: time.Now(), client: c.clientIP, port: c.cport, status: status, bytesIn: in,
		bytesOut: sent, dur: dur, retries: retries, reason: c.local}
	if c.headOK {
		r.method, r.target, r.minor = c.req.Method, c.req.Target, c.req.Minor
		r.userAgent = fieldValue(c.req.Fields, "User-Agent")
		if c.cfg.AccessLogFormat == LogCombined {
			r.referer = fieldValue(c.req.Fields, "Referer")
		}
		if c.ridMade {
			r.requestIDv = uuidText(c.rid)
			r.requestID = r.requestIDv[:]
		} else {
			r.requestID = clientRequestID(c.req.Fields)
		}
	}
	if c.routed {
		r.backend = c.addr
		if c.gotResp {
			r.head = c.headAfter
		}
	}
	r.outcome = outcomeName(c.local, out, status, c.endedBy)
	c.w.logLine(r)
}

// outcomeName says how a request ended, for the access log: "ok" (the backend's answer went
// out whole), "local" (the load balancer answered; the reason says why), "crashed" (a panic in
// the load balancer cut it), "lb_closed" (the load balancer closed the connection: shutdown, or
// the end of the drain), "client_closed" (the client left or broke its request),
// "backend_failed" (the response broke off), "upstream_timeout" or "connect_failed".
func outcomeName(local messages.LocalReason, o messages.Outcome, status int, endedBy uint8) string {
	switch {
	case local != messages.LocalNone && endedBy != endedByCrash:
		return "local"
	case endedBy == endedByCrash:
		return "crashed"
	case o == messages.OutcomeNone && endedBy == endedByLB:
		return "lb_closed"
	case o == messages.OutcomeBackendFailed:
		return "backend_failed"
	case o == messages.OutcomeTimeout:
		return "upstream_timeout"
	case o == messages.OutcomeConnectFailed:
		return "connect_failed"
	case o == messages.OutcomeClientFailed, status == 0:
		return "client_closed"
	}
	return "ok"
}

// uuidText formats a request ID as the header carries it.
func uuidText(u [16]byte) (t [36]byte) {
	appendUUID(t[:0], u)
	return t
}

// logLine appends r to the loop's batch, sending the batch on when it is full enough.
func (w *worker) logLine(r *logRecord) {
	if w.alog == nil {
		select {
		case w.alog = <-w.cfg.AccessLogFree:
			w.alog = w.alog[:0]
		default:
			w.alog = make([]byte, 0, logBatch)
		}
	}
	if w.cfg.AccessLogFormat == LogCombined {
		w.alog = r.appendCombined(w.alog, &w.tc)
	} else {
		w.alog = r.appendJSON(w.alog, &w.tc)
	}
	w.alogLines++
	switch {
	case len(w.alog) >= logFlushAt:
		w.flushLog()
	case !w.alogTimer.timer.Armed():
		w.l.Arm(&w.alogTimer.timer, &w.alogTimer, w.l.Now()+int64(logFlushAfter))
	}
}

// flushLog sends the loop's batch to the writer.
func (w *worker) flushLog() {
	if w.alogLines == 0 {
		return
	}
	w.l.Disarm(&w.alogTimer.timer)
	w.e.system.Root.Send(w.cfg.AccessLog, &messages.AccessLogBatch{Buf: w.alog, Lines: w.alogLines})
	w.alog, w.alogLines = nil, 0
}

// logFlusher is the loop's handler for the batch's deadline.
type logFlusher struct {
	w     *worker
	timer evloop.Timer
}

func (f *logFlusher) Ready(int32, uint32) {}
func (f *logFlusher) Deliver(any)         {}
func (f *logFlusher) Expired()            { f.w.flushLog() }
func (f *logFlusher) Crashed(v any, _ []byte) {
	f.w.cfg.logger().Error("forwarder: access log flush panicked", "panic", fmt.Sprint(v))
}

// statsMsg asks a loop for its counts (Engine.Stats).
type statsMsg struct{ req *messages.StatsRequest }

// Stats has every loop send its counts (*messages.LoopStats) to m.ReplyTo, and returns how many
// loops will answer.
func (e *Engine) Stats(m *messages.StatsRequest) int {
	for _, w := range e.workers {
		w.l.Post(w, statsMsg{req: m})
	}
	return len(e.workers)
}

// setConfigMsg gives a loop the Forwarders' new configuration (Engine.SetConfig).
type setConfigMsg struct{ cfg *Config }

// SetConfig gives every loop cfg, the Forwarders' configuration from now on (a reload): each
// connection takes it up at its next request; an exchange in progress finishes under the one it
// began with. The caller keeps the access log settings, which a reload does not change.
func (e *Engine) SetConfig(cfg *Config) {
	for _, w := range e.workers {
		w.l.Post(w, setConfigMsg{cfg: cfg})
	}
}
