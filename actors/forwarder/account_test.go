//go:build linux

package forwarder

import (
	"bufio"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// newLogRig is newRig with an access log: a probe stands in for the access log writer (logs),
// and its PID goes in cfg.AccessLog before the Engine is made.
func newLogRig(t *testing.T, cfg Config) (*rig, *actortest.Probe) {
	t.Helper()
	r, logs, _ := newLogRigClosing(t, cfg)
	return r, logs
}

// newLogRigClosing is newLogRig that also returns how to close the Engine and wait for its loop
// (once: the cleanup then does nothing).
func newLogRigClosing(t *testing.T, cfg Config) (*rig, *actortest.Probe, func()) {
	t.Helper()
	sys := actortest.NewSystem(t)
	lr := &loopRig{t: t, sys: sys, disp: actortest.NewProbe(t, sys), acceptor: actortest.NewProbe(t, sys)}
	logs := actortest.NewProbe(t, sys)
	cfg.Dispatcher, cfg.AccessLog = lr.disp.PID, logs.PID
	e, err := NewEngine(&cfg, sys, lr.acceptor.PID, EngineOptions{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	lr.engine = e
	closed := false
	closeEngine := func() {
		if !closed {
			closed = true
			e.Close()
			e.Wait()
		}
	}
	t.Cleanup(closeEngine)
	c := lr.connect()
	return &rig{loopRig: lr, loopClient: c, client: c.conn}, logs, closeEngine
}

// logLines collects access log batches from logs until n lines are in, and returns them without
// their newlines. Every batch must hold whole lines, as many as it says.
func logLines(t *testing.T, logs *actortest.Probe, n int) []string {
	t.Helper()
	var lines []string
	for len(lines) < n {
		b := actortest.Expect[*messages.AccessLogBatch](logs)
		text := string(b.Buf)
		if !strings.HasSuffix(text, "\n") {
			t.Fatalf("batch does not end with a whole line: %q", text)
		}
		got := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(got) != b.Lines {
			t.Fatalf("batch says %d lines, holds %d: %q", b.Lines, len(got), text)
		}
		lines = append(lines, got...)
	}
	if len(lines) != n {
		t.Fatalf("got %d log lines, want %d: %q", len(lines), n, lines)
	}
	return lines
}

// loopStats asks the rig's (one) loop for its counts.
func (r *loopRig) loopStats() *messages.LoopStats {
	r.t.Helper()
	p := actortest.NewProbe(r.t, r.sys)
	actortest.Equal(r.t, "loops answering", r.engine.Stats(&messages.StatsRequest{ReplyTo: p.PID}), 1)
	s := actortest.Expect[*messages.LoopStats](p)
	p.ExpectNothing(50 * time.Millisecond)
	return s
}

// A routed GET and a refused malformed request are counted by backend, method class and status
// class, with their bytes, the upstream connection and their durations.
func TestRequestsCountedByBackendAndClass(t *testing.T) {
	r := newRig(t, Config{})
	addr := backend(t, answering(ok2))
	const get = "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"
	r.send(get)
	p := r.expectPick(messages.Release{}, false)
	lease := messages.Lease{ID: 1, Backend: 0}
	r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
	r.expectRelease(messages.Release{Lease: lease, Outcome: messages.OutcomeOK, Status: 200})

	const bad = "GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	r.send(bad)
	refused := r.readUntilClose()
	if !strings.HasPrefix(refused, "HTTP/1.1 400 ") {
		t.Fatalf("smuggling attempt: got %q, want a 400", refused)
	}
	r.expectEnded() // settled before ConnEnded goes out

	s := r.loopStats()
	actortest.Equal(t, "loop", s.Loop, r.engine.workers[0].l.ID())
	tr := &s.Traffic
	actortest.Equal(t, "backends counted", len(tr.Backends), 1)
	b := &tr.Backends[0]
	var wantReq [messages.NumMethods][messages.NumCodes]uint64
	wantReq[messages.MethodGET][messages.Code2xx] = 1
	actortest.Equal(t, "backend 0 requests", b.Requests, wantReq)
	actortest.Equal(t, "backend 0 failed", b.Failed, uint64(0))
	actortest.Equal(t, "backend 0 bytes in", b.BytesIn, uint64(len(get)))
	actortest.Equal(t, "backend 0 bytes out", b.BytesOut, uint64(len(ok2)))
	actortest.Equal(t, "backend 0 dialled", b.Dialled, uint64(1))
	actortest.Equal(t, "backend 0 reused", b.Reused, uint64(0))
	actortest.Equal(t, "backend 0 stale", b.Stale, uint64(0))
	actortest.Equal(t, "backend 0 retries", b.Retries, uint64(0))
	actortest.Equal(t, "backend 0 head observations", b.Head.Count(), uint64(1))
	actortest.Equal(t, "backend 0 duration observations", b.Duration.Count(), uint64(1))
	if b.Head.SumDuration() <= 0 || b.Duration.SumDuration() < b.Head.SumDuration() {
		t.Fatalf("backend 0: head %v, duration %v: want 0 < head <= duration", b.Head.SumDuration(), b.Duration.SumDuration())
	}

	// The refused request: its head never parsed, so its method is not trusted (class other).
	u := &tr.Unrouted
	var wantUnrouted [messages.NumMethods][messages.NumCodes]uint64
	wantUnrouted[messages.MethodOther][messages.Code4xx] = 1
	actortest.Equal(t, "unrouted requests", u.Requests, wantUnrouted)
	actortest.Equal(t, "unrouted failed", u.Failed, uint64(0))
	actortest.Equal(t, "unrouted bytes out", u.BytesOut, uint64(len(refused)))
	actortest.Equal(t, "unrouted duration observations", u.Duration.Count(), uint64(1))
	actortest.Equal(t, "unrouted head observations", u.Head.Count(), uint64(0))
	actortest.Equal(t, "unrouted dialled", u.Dialled, uint64(0))
	var wantLocal [messages.NumLocalReasons]uint64
	wantLocal[messages.LocalBadRequest] = 1
	actortest.Equal(t, "local answers", tr.Local, wantLocal)
}

// The bytes of a request the load balancer refuses were received from the client all the same:
// request_bytes_total says "bytes received from clients (request heads and bodies)".
func TestRefusedRequestBytesCounted(t *testing.T) {
	r := newRig(t, Config{})
	const bad = "GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	r.send(bad)
	r.readUntilClose()
	r.expectEnded()
	actortest.Equal(t, "unrouted bytes in", r.loopStats().Traffic.Unrouted.BytesIn, uint64(len(bad)))
}

// jsonFields are the keys of every JSON access log line.
var jsonFields = []string{"time", "client", "method", "target", "proto", "status", "bytes_in", "bytes_out",
	"duration_ms", "upstream_head_ms", "backend", "retries", "outcome", "reason", "request_id", "user_agent"}

// parseJSONLine decodes one access log line, checking that it has exactly jsonFields.
func parseJSONLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("access log line is not JSON: %v: %s", err, line)
	}
	for _, k := range jsonFields {
		if _, ok := m[k]; !ok {
			t.Fatalf("access log line lacks %q: %s", k, line)
		}
	}
	if len(m) != len(jsonFields) {
		t.Fatalf("access log line has %d fields, want %d: %s", len(m), len(jsonFields), line)
	}
	return m
}

// checkFields compares the listed fields of a decoded line (numbers decode as float64).
func checkFields(t *testing.T, which string, m map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		actortest.Equal(t, which+" "+k, m[k], v)
	}
}

// checkLogTime checks a line's time: RFC 3339 in UTC, with milliseconds, between from and to.
func checkLogTime(t *testing.T, v any, from, to time.Time) {
	t.Helper()
	s, _ := v.(string)
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(s) {
		t.Fatalf("time %q: want RFC 3339 UTC with milliseconds", s)
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	if at.Before(from.Truncate(time.Millisecond)) || at.After(to) {
		t.Fatalf("time %v not within the test's [%v, %v]", at, from, to)
	}
}

func TestAccessLogLinesJSON(t *testing.T) {
	from := time.Now()
	r, logs := newLogRig(t, Config{AccessLogFormat: LogJSON})
	addr := backend(t, answering(ok2))
	client := r.client.LocalAddr().String()

	const routed = "GET /search?q=a%20b&x=\"1\" HTTP/1.1\r\nHost: x\r\nUser-Agent: test-agent/1.0 \"quoted\"\r\n" +
		"X-Request-ID: abc-123\r\n\r\n"
	r.send(routed)
	p := r.expectPick(messages.Release{}, false)
	lease := messages.Lease{ID: 1, Backend: 0}
	r.answer(p, &messages.BackendPicked{Lease: lease, Holder: p.Holder, Addr: addr})
	actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
	r.expectRelease(messages.Release{Lease: lease, Outcome: messages.OutcomeOK, Status: 200})

	const unrouted = "GET /none HTTP/1.1\r\nHost: x\r\nUser-Agent: ua2\r\n\r\n"
	r.send(unrouted)
	p = r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.NoBackend{Reason: messages.NoBackendDown})
	actortest.Equal(t, "no backend", r.readN(len(classic500)), string(classic500))

	lines := logLines(t, logs, 2)
	to := time.Now()

	first := parseJSONLine(t, lines[0])
	checkLogTime(t, first["time"], from, to)
	checkFields(t, "first", first, map[string]any{
		"client": client, "method": "GET", "target": `/search?q=a%20b&x="1"`, "proto": "HTTP/1.1",
		"status": 200.0, "bytes_in": float64(len(routed)), "bytes_out": float64(len(ok2)), "backend": addr,
		"retries": 0.0, "outcome": "ok", "reason": "", "request_id": "abc-123",
		"user_agent": `test-agent/1.0 "quoted"`,
	})
	head, ok := first["upstream_head_ms"].(float64)
	if !ok || head < 0 {
		t.Fatalf("first upstream_head_ms: got %v, want a number", first["upstream_head_ms"])
	}
	if d, ok := first["duration_ms"].(float64); !ok || d < head {
		t.Fatalf("first duration_ms: got %v, want a number at least upstream_head_ms %v", first["duration_ms"], head)
	}

	second := parseJSONLine(t, lines[1])
	checkLogTime(t, second["time"], from, to)
	// The request never went upstream, so no X-Request-ID was made for it: the line has the
	// client's, and the client sent none.
	checkFields(t, "second", second, map[string]any{
		"client": client, "method": "GET", "target": "/none", "proto": "HTTP/1.1",
		"status": 500.0, "bytes_in": float64(len(unrouted)), "bytes_out": float64(len(classic500)),
		"upstream_head_ms": nil, "backend": "", "retries": 0.0, "outcome": "local", "reason": "no_backend",
		"request_id": "", "user_agent": "ua2",
	})
	if _, ok := second["duration_ms"].(float64); !ok {
		t.Fatalf("second duration_ms: got %v, want a number", second["duration_ms"])
	}
	logs.ExpectNothing(logFlushAfter + 100*time.Millisecond)
}

// A request that goes upstream without an X-Request-ID of its own gets one made for it, and
// the log line has it.
func TestAccessLogHasTheMadeRequestID(t *testing.T) {
	r, logs := newLogRig(t, Config{})
	heads := make(chan string, 1)
	addr := backend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		h, _ := readHead(br)
		heads <- h
		c.Write([]byte(ok2))
	})
	r.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Request-ID: not valid\r\n\r\n")
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	r.readN(len(ok2))
	made := requestIDOf(t, <-heads)
	line := parseJSONLine(t, logLines(t, logs, 1)[0])
	actortest.Equal(t, "request_id", line["request_id"], made)
}

// requestIDOf returns the X-Request-ID a backend got, checking that it is a UUID the load
// balancer made.
func requestIDOf(t *testing.T, head string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^X-Request-ID: (.*)\r$`).FindAllStringSubmatch(head, -1)
	if len(m) != 1 {
		t.Fatalf("want one X-Request-ID upstream, got %d in %q", len(m), head)
	}
	id := m[0][1]
	if len(id) != 36 {
		t.Fatalf("X-Request-ID %q: want a 36-character UUID", id)
	}
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("X-Request-ID %q: %v", id, err)
	}
	return id
}

func TestAccessLogCombinedLine(t *testing.T) {
	from := time.Now()
	r, logs := newLogRig(t, Config{AccessLogFormat: LogCombined})
	addr := backend(t, answering(ok2))
	const req = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: ua \"x\"\\y\r\nReferer: http://ref.example/p\r\n" +
		"X-Request-ID: abc-123\r\n\r\n"
	r.send(req)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1, Backend: 0}, Holder: p.Holder, Addr: addr})
	r.readN(len(ok2))
	line := logLines(t, logs, 1)[0]
	to := time.Now()

	host, _, _ := net.SplitHostPort(r.client.LocalAddr().String()) // the combined format has no port
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(host) + ` - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] ` +
		`"GET /a\?b=1 HTTP/1\.1" 200 ` + strconv.Itoa(len(ok2)) + ` "http://ref\.example/p" "ua \\x22x\\x22\\x5cy" ` +
		// bytes in, duration, upstream head, backend, retries, outcome, reason, request ID
		strconv.Itoa(len(req)) + ` (\d+\.\d{6}) (\d+\.\d{6}) ` + regexp.QuoteMeta(addr) + ` 0 ok - "abc-123"$`)
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("combined line %q does not match %s", line, re)
	}
	at, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[1])
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(from.Truncate(time.Second)) || at.After(to) {
		t.Fatalf("time %v not within the test's [%v, %v]", at, from, to)
	}
	dur, _ := strconv.ParseFloat(m[2], 64)
	head, _ := strconv.ParseFloat(m[3], 64)
	if head <= 0 || dur < head {
		t.Fatalf("duration %s, time to the response head %s: want 0 < head <= duration", m[2], m[3])
	}
}

// A local answer in the combined format: no backend ("-"), outcome local, the reason, and an
// empty request ID as "-".
func TestAccessLogCombinedLocalAnswer(t *testing.T) {
	r, logs := newLogRig(t, Config{AccessLogFormat: LogCombined})
	const req = "GET /none HTTP/1.1\r\nHost: x\r\n\r\n"
	r.send(req)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.NoBackend{Reason: messages.NoBackendQueueTimeout})
	r.readN(len(classic500))
	line := logLines(t, logs, 1)[0]
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET /none HTTP/1\.1" 500 ` + strconv.Itoa(len(classic500)) +
		` "-" "-" ` + strconv.Itoa(len(req)) + ` \d+\.\d{6} - - 0 local queue_timeout "-"$`)
	if !re.MatchString(line) {
		t.Fatalf("combined line %q does not match %s", line, re)
	}
}

// A request that needed a second backend keeps its X-Request-ID: every backend it reached got
// the same one, and so does its log line, with the retry counted.
func TestRetryKeepsRequestID(t *testing.T) {
	t.Run("connect refused", func(t *testing.T) {
		r, logs := newLogRig(t, Config{})
		heads := make(chan string, 2)
		live := backend(t, func(c net.Conn) {
			h, _ := readHead(bufio.NewReader(c))
			heads <- h
			c.Write([]byte(ok2))
		})
		r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		p := r.expectPick(messages.Release{}, false)
		first := messages.Lease{ID: 1, Backend: 0}
		r.answer(p, &messages.BackendPicked{Lease: first, Holder: p.Holder, Addr: deadAddr(t)})
		p = r.expectPick(messages.Release{Lease: first, Outcome: messages.OutcomeConnectFailed}, true)
		second := messages.Lease{ID: 2, Backend: 1}
		r.answer(p, &messages.BackendPicked{Lease: second, Holder: p.Holder, Addr: live})
		actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
		id := requestIDOf(t, <-heads)
		line := parseJSONLine(t, logLines(t, logs, 1)[0])
		checkFields(t, "line", line, map[string]any{"request_id": id, "retries": 1.0, "backend": live,
			"outcome": "ok", "status": 200.0})
		r.expectRelease(messages.Release{Lease: second, Outcome: messages.OutcomeOK, Status: 200})
		s := r.loopStats()
		actortest.Equal(t, "retries on the backend that answered", s.Traffic.Backends[1].Retries, uint64(1))
		actortest.Equal(t, "requests on the backend that answered", s.Traffic.Backends[1].Total(), uint64(1))
	})
	t.Run("backend broke the connection", func(t *testing.T) {
		r, logs := newLogRig(t, Config{})
		heads := make(chan string, 2)
		dying := backend(t, func(c net.Conn) {
			h, _ := readHead(bufio.NewReader(c))
			heads <- h
			_ = c.(*net.TCPConn).SetLinger(0) // reset, no answer
		})
		live := backend(t, func(c net.Conn) {
			h, _ := readHead(bufio.NewReader(c))
			heads <- h
			c.Write([]byte(ok2))
		})
		r.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		p := r.expectPick(messages.Release{}, false)
		first := messages.Lease{ID: 1, Backend: 0}
		r.answer(p, &messages.BackendPicked{Lease: first, Holder: p.Holder, Addr: dying})
		p = r.expectPick(messages.Release{Lease: first, Outcome: messages.OutcomeBackendFailed}, true)
		r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 2, Backend: 1}, Holder: p.Holder, Addr: live})
		actortest.Equal(t, "response", r.readN(len(ok2)), ok2)
		id1, id2 := requestIDOf(t, <-heads), requestIDOf(t, <-heads)
		actortest.Equal(t, "X-Request-ID on the second backend", id2, id1)
		line := parseJSONLine(t, logLines(t, logs, 1)[0])
		checkFields(t, "line", line, map[string]any{"request_id": id1, "retries": 1.0, "backend": live,
			"outcome": "ok"})
	})
}

// A line waits in its loop's batch for more (a message per batch, not per request), at most
// logFlushAfter: it arrives on its own, without more traffic, no sooner than that after the
// request was sent.
func TestAccessLogBatchFlushedAfterItsDeadline(t *testing.T) {
	r, logs := newLogRig(t, Config{})
	addr := backend(t, answering(ok2))
	sent := time.Now()
	r.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	r.readN(len(ok2))
	b := actortest.Expect[*messages.AccessLogBatch](logs)
	if waited := time.Since(sent); waited < logFlushAfter {
		t.Fatalf("batch came %v after the request, before the flush deadline %v", waited, logFlushAfter)
	}
	actortest.Equal(t, "lines in the batch", b.Lines, 1)
	logs.ExpectNothing(logFlushAfter + 100*time.Millisecond)
}

// Closing the Engine sends the lines still in a loop's batch: the last requests are not lost
// with the loop.
func TestAccessLogFlushedOnClose(t *testing.T) {
	r, logs, closeEngine := newLogRigClosing(t, Config{})
	addr := backend(t, answering(ok2))
	r.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	r.readN(len(ok2))
	r.expectRelease(messages.Release{Lease: messages.Lease{ID: 1}, Outcome: messages.OutcomeOK, Status: 200})
	closeEngine() // the loop is gone after it: its flush timer can no longer fire
	b := actortest.Expect[*messages.AccessLogBatch](logs)
	actortest.Equal(t, "lines", b.Lines, 1)
	line := parseJSONLine(t, strings.TrimSuffix(string(b.Buf), "\n"))
	checkFields(t, "line", line, map[string]any{"target": "/a", "status": 200.0, "backend": addr})
}

// A loop fills a batch buffer it finds on the free list rather than making one.
func TestAccessLogReusesFreeBuffers(t *testing.T) {
	free := make(chan []byte, 1)
	mine := make([]byte, 0, logBatch)
	free <- append(mine, "stale bytes"...)
	r, logs := newLogRig(t, Config{AccessLogFree: free})
	addr := backend(t, answering(ok2))
	r.send(getA)
	p := r.expectPick(messages.Release{}, false)
	r.answer(p, &messages.BackendPicked{Lease: messages.Lease{ID: 1}, Holder: p.Holder, Addr: addr})
	r.readN(len(ok2))
	b := actortest.Expect[*messages.AccessLogBatch](logs)
	if cap(b.Buf) != cap(mine) || &b.Buf[:1][0] != &mine[:1][0] {
		t.Fatal("the batch is not in the buffer from the free list")
	}
	if !strings.HasPrefix(string(b.Buf), `{"time":"`) {
		t.Fatalf("the reused buffer was not emptied first: %q", b.Buf)
	}
}
