package health

import (
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// route reads a request head and answers what answerFor says for its request line (for
// example "GET / HTTP/1.1"), then closes the connection. heads, when not nil, gets every
// request head read.
func route(heads chan<- string, answerFor func(requestLine string) string) handler {
	return func(c net.Conn, _ <-chan struct{}) {
		head, err := readRequest(c)
		if err != nil {
			return
		}
		if heads != nil {
			heads <- string(head)
		}
		line, _, _ := strings.Cut(string(head), "\r\n")
		_, _ = c.Write([]byte(answerFor(line)))
	}
}

// website answers 200 with body on "/", and 404 on every other path (the classic
// /healthcheck among them), like an ordinary web server.
func website(heads chan<- string, body string) handler {
	return route(heads, func(line string) string {
		if strings.HasPrefix(line, "GET / ") || strings.HasPrefix(line, "HEAD / ") {
			return ok(body)
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
	})
}

// mustStatus parses s or fails the test.
func mustStatus(t *testing.T, s string) StatusSet {
	t.Helper()
	set, err := ParseStatusSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestHTTPCheckMonitor runs the http check in a monitor against an ordinary web server, which
// fails the classic check (404 on /healthcheck) and passes the http one (200 on /).
func TestHTTPCheckMonitor(t *testing.T) {
	web := serve(t, website(nil, "hello"))
	dead := deadAddr(t)

	_, classic, _ := spawnMonitor(t, &Config{Backends: backends(web.addr), Interval: never})
	r := actortest.Expect[*messages.HealthReport](classic)
	checkReport(t, r, down)
	if !strings.Contains(r.Backends[0].Reason, "404") {
		t.Fatalf("got reason %q, want the 404", r.Backends[0].Reason)
	}

	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(web.addr, dead),
		Check:    Check{Kind: KindHTTP},
		Interval: never,
	})
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	// Up, and not counted: the http check leaves the load estimate to the Dispatcher.
	checkReport(t, r, messages.BackendHealth{Up: true}, down)
	wantDown(t, r.Backends[1], "dial", "refused")
}

func TestHTTPCheckSendsRequest(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string // the request; %s stands for the backend's address
	}{
		// The defaults: GET /, Host is the backend's address.
		{"defaults", Check{Kind: KindHTTP},
			"GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadbalancer-health\r\nConnection: close\r\n\r\n"},
		// Everything configured: path with a query, HEAD, a virtual host.
		{"configured", Check{Kind: KindHTTP, Path: "/status?full=1", Method: "HEAD", Host: "app.example"},
			"HEAD /status?full=1 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: loadbalancer-health\r\nConnection: close\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			heads := make(chan string, 1)
			srv := serve(t, route(heads, func(string) string { return ok("") }))
			got := probeWith(t, srv.addr, actortest.Wait, tc.check)
			actortest.Equal(t, "health", got, messages.BackendHealth{Up: true})
			actortest.Equal(t, "request", <-heads, strings.ReplaceAll(tc.want, "%s", srv.addr))
		})
	}
}

func TestHTTPCheckJudges(t *testing.T) {
	long := strings.Repeat("x", MaxCheckBody) + "ok"
	tests := []struct {
		name   string
		check  Check
		answer string
		want   []string // parts of the reason; nil means up
	}{
		// The default status set takes successes and redirects.
		{"200", Check{}, ok(""), nil},
		{"204 no body", Check{}, "HTTP/1.1 204 No Content\r\n\r\n", nil},
		{"301", Check{}, "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", nil},
		{"404", Check{}, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", []string{"status 404 not in 200-399"}},
		{"500", Check{}, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", []string{"status 500 not in 200-399"}},
		// A configured set replaces the default, and its reason names it.
		{"404 expected", Check{Status: StatusSet{{200, 299}, {404, 404}}}, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", nil},
		{"301 not expected", Check{Status: StatusSet{{200, 200}, {204, 204}}}, "HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n", []string{"status 301 not in 200,204"}},
		// The body substring, whatever the framing.
		{"body has it", Check{Body: "ok"}, ok("all ok here"), nil},
		{"body lacks it", Check{Body: "ok"}, ok("degraded"), []string{`body does not contain "ok"`}},
		{"chunked", Check{Body: "ready"}, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nrea\r\n2\r\ndy\r\n0\r\n\r\n", nil},
		{"close-delimited", Check{Body: "ready"}, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall ready", nil},
		{"beyond the cap", Check{Body: "ok"}, ok(long), []string{`body does not contain "ok" in its first 65536 bytes`}},
		// The status is judged before the body.
		{"body but 503", Check{Body: "ok"}, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nok", []string{"status 503"}},
		// The body ends before its Content-Length.
		{"short body", Check{Body: "ready"}, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nnot", []string{"read response body", "EOF"}},
		// Not HTTP at all.
		{"raw bytes", Check{}, "0\n5", []string{ErrNotHTTP.Error()}},
		{"nothing", Check{}, "", []string{"read response head", "EOF"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, answer(tc.answer))
			check := tc.check
			check.Kind = KindHTTP
			got := probeWith(t, srv.addr, actortest.Wait, check)
			if tc.want == nil {
				actortest.Equal(t, "health", got, messages.BackendHealth{Up: true})
				return
			}
			wantDown(t, got, tc.want...)
		})
	}
}

// TestHTTPCheckHeadOnly checks that without a body substring, and with HEAD, the check passes
// on the head alone: a backend that promises a body and keeps the connection open does not hold
// the probe until its deadline.
func TestHTTPCheckHeadOnly(t *testing.T) {
	for _, method := range []string{"GET", "HEAD"} {
		t.Run(method, func(t *testing.T) {
			srv := serve(t, func(c net.Conn, done <-chan struct{}) {
				if _, err := readRequest(c); err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"))
				<-done
			})
			got := probeWith(t, srv.addr, time.Minute, Check{Kind: KindHTTP, Method: method})
			actortest.Equal(t, "health", got, messages.BackendHealth{Up: true})
		})
	}
}

// TestHTTPCheckBodyFoundEarly checks that the body substring passes the check as soon as it has
// arrived, even when the rest of the body never comes.
func TestHTTPCheckBodyFoundEarly(t *testing.T) {
	srv := serve(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstatus: ok"))
		<-done
	})
	got := probeWith(t, srv.addr, time.Minute, Check{Kind: KindHTTP, Body: "ok"})
	actortest.Equal(t, "health", got, messages.BackendHealth{Up: true})
}

// TestFindBody checks that the body substring is found wherever the reads split it, and only
// within the first MaxCheckBody bytes.
func TestFindBody(t *testing.T) {
	c := &httpCheck{body: []byte("ready")}
	readers := map[string]func(io.Reader) io.Reader{
		"one read":       func(r io.Reader) io.Reader { return r },
		"byte by byte":   iotest.OneByteReader,
		"half at a time": iotest.HalfReader,
	}
	// Positions around the edges of the search buffer (4 bytes kept plus 4096 read) and of the
	// cap.
	for _, at := range []int{0, 1, 4090, 4094, 4095, 4096, 4099, 4100, 8190, MaxCheckBody - 5} {
		body := strings.Repeat("-", at) + "ready" + strings.Repeat("-", 100)
		for name, wrap := range readers {
			if err := c.findBody(wrap(io.LimitReader(strings.NewReader(body), MaxCheckBody))); err != nil {
				t.Errorf("at %d, %s: got %v, want found", at, name, err)
			}
		}
	}
	body := strings.Repeat("-", MaxCheckBody-4) + "ready"
	err := c.findBody(iotest.HalfReader(io.LimitReader(strings.NewReader(body), MaxCheckBody)))
	if err == nil || !strings.Contains(err.Error(), "in its first 65536 bytes") {
		t.Errorf("straddling the cap: got %v, want not found in the first 65536 bytes", err)
	}
}

func TestHTTPCheckTimeout(t *testing.T) {
	// The head arrives, the body does not: the reason names the timeout.
	srv := serve(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot yet"))
		<-done
	})
	got := probeWith(t, srv.addr, 200*time.Millisecond, Check{Kind: KindHTTP, Body: "ok"})
	wantDown(t, got, "no complete answer within 200ms")
}

func TestHTTPCheckHeadTooLong(t *testing.T) {
	srv := serve(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Padding: " + strings.Repeat("x", 1000) + "\r\n")
		for i := 0; i < 2*maxAnswer/len(line); i++ {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
		<-done
	})
	wantDown(t, probeWith(t, srv.addr, time.Minute, Check{Kind: KindHTTP}), "no complete response head in 16384 bytes")
}
