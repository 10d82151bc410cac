package tests

// End-to-end tests of issue 4 (HTTP/1.1 proxying): persistent connections, framing, smuggling
// defences, headers added upstream, timeouts, drain and the connection cap. Each test runs the
// real loadbalancer binary on loopback in front of real httpservers or of in-test backends
// (pxBackend) whose behaviour a test needs to control or observe, and talks to it with a real
// client over TCP.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pxHealthAnswer is what a healthy backend answers to the load balancer's health check.
const pxHealthAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n0\n0"

// pxBackend is an in-test backend. Health checks (always on a fresh connection) are answered
// here; every other connection is counted and handed to the handler with a reader positioned
// at its first byte. At clean-up it closes the listener and every connection, then waits for
// the handlers.
type pxBackend struct {
	*loopbackServer
	conns atomic.Int64 // connections other than health checks
}

func startPxBackend(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *pxBackend {
	t.Helper()
	b := &pxBackend{}
	b.loopbackServer = startLoopbackServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		const hc = "GET /healthcheck "
		if p, _ := br.Peek(len(hc)); string(p) == hc {
			if _, err := pxReadHead(br); err == nil {
				_, _ = io.WriteString(c, pxHealthAnswer)
			}
			return
		}
		b.conns.Add(1)
		handle(c, br)
	})
	return b
}

// pxReadHead reads a message head up to and including its empty line, as received.
func pxReadHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" || line == "\n" {
			return sb.String(), nil
		}
	}
}

// pxHeadFields splits a head into its start line and its fields (name, value) in order.
func pxHeadFields(head string) (start string, fields [][2]string) {
	lines := strings.Split(strings.TrimRight(head, "\r\n"), "\r\n")
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		fields = append(fields, [2]string{name, strings.TrimSpace(value)})
	}
	return lines[0], fields
}

// pxValues returns the values of every field called name (case-insensitive).
func pxValues(fields [][2]string, name string) []string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f[0], name) {
			vs = append(vs, f[1])
		}
	}
	return vs
}

// pxOK is a 200 response with body.
func pxOK(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// pxServeEach serves requests on a kept-alive connection, parsed with net/http's reader (an
// independent parser: bodies arrive decoded, trailers filled in), answering each with what fn
// returns, until the client closes or asks to close.
func pxServeEach(fn func(req *http.Request, body []byte) string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, fn(req, body)); err != nil || req.Close {
				return
			}
		}
	}
}

// pxStartLB starts the load balancer in front of in-test backends and waits until the
// start-up health round has marked them up.
func pxStartLB(t *testing.T, backends []*pxBackend, flags ...string) *Proc {
	t.Helper()
	var args []string
	for _, b := range backends {
		args = append(args, b.Port)
	}
	lb := startLB(t, args, flags...)
	waitBackendsUp(t, lb, len(backends))
	return lb
}

// pxDial connects to addr with a deadline for the whole conversation; closed at clean-up.
func pxDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := dial(t, addr)
	return c, bufio.NewReader(c)
}

// pxWrite writes s to c, failing the test on error.
func pxWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// pxReadFull reads exactly n bytes from br.
func pxReadFull(t *testing.T, br *bufio.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if k, err := io.ReadFull(br, b); err != nil {
		t.Fatalf("reading %d bytes: %v after %q", n, err, b[:k])
	}
	return string(b)
}

// pxReadToClose reads until the peer closes the connection. closed reports that it did (EOF
// or a reset), as opposed to the read deadline passing or another error.
func pxReadToClose(c net.Conn, r io.Reader, within time.Duration) (got []byte, closed bool, err error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	got, err = io.ReadAll(r)
	switch {
	case err == nil:
		return got, true, nil
	case errors.Is(err, syscall.ECONNRESET):
		return got, true, err
	}
	return got, false, err
}

// pxStatus returns the status code of the response at the start of b, or 0.
func pxStatus(b []byte) int {
	line, _, _ := strings.Cut(string(b), "\r\n")
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0
	}
	st, _ := strconv.Atoi(f[1])
	return st
}

// pxTryGet does one GET on a fresh connection and returns status and body (Content-Length
// framed), or an error; safe to call from any goroutine.
func pxTryGet(addr, path string) (int, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		return 0, nil, err
	}
	br := bufio.NewReader(c)
	st, head, n, err := readResponseHead(br)
	if err != nil {
		return 0, nil, err
	}
	if n < 0 {
		return st, nil, fmt.Errorf("response without Content-Length: %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return st, nil, err
	}
	return st, body, nil
}

// 1. Persistent connections.

func TestProxyKeepAliveReuse(t *testing.T) {
	// One keep-alive backend that answers every request with its target.
	be := startPxBackend(t, pxServeEach(func(req *http.Request, _ []byte) string {
		return pxOK(req.RequestURI)
	}))
	lb := pxStartLB(t, []*pxBackend{be})

	c, br := pxDial(t, lb.Addr)
	const n = 1000
	for i := range n {
		path := "/r" + strconv.Itoa(i)
		st, raw := exchange(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n")
		if st != 200 || !strings.HasSuffix(raw, "\r\n\r\n"+path) {
			t.Fatalf("request %d: got %q, want 200 with body %q", i, raw, path)
		}
	}
	// Health checks come on fresh connections and are not counted. A handful is what a pool
	// with reuse opens; without reuse it would be one per request.
	t.Logf("%d requests, %d upstream connections", n, be.conns.Load())
	if got := be.conns.Load(); got < 1 || got > 5 {
		t.Fatalf("%d sequential requests on one client connection opened %d upstream connections, want 1 to 5", n, got)
	}
	// A client that asks to close gets its response, then the connection closes.
	pxWrite(t, c, "GET /last HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
	got, closed, err := pxReadToClose(c, br, 10*time.Second)
	if !closed || pxStatus(got) != 200 || !strings.HasSuffix(string(got), "\r\n\r\n/last") {
		t.Fatalf("Connection: close: got %q (%v, closed %v), want 200 /last and the connection closed", got, err, closed)
	}
}

func TestProxyHTTP10KeepAlive(t *testing.T) {
	// An HTTP/1.0 client that asks for keep-alive keeps its connection for several requests,
	// both with a tolerant in-test backend and with the reference httpserver.
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("file"))
	hs := startHTTPServer(t, dir, "-L")
	be := startPxBackend(t, pxServeEach(func(req *http.Request, _ []byte) string {
		return pxOK(req.RequestURI)
	}))
	for _, tc := range []struct {
		name     string
		backend  string
		path     string
		wantBody string
	}{
		// The in-test backend answers whatever version it is asked in.
		{"in-test backend", be.Port, "/a", "/a"},
		// The reference backend speaks HTTP/1.1 only (a 1.0 request line is a 400 there), so
		// the load balancer must forward in its own version (RFC 9110 §2.5).
		{"httpserver", strconv.Itoa(hs.Port), "/f", "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := startLB(t, []string{tc.backend})
			waitBackendsUp(t, lb, 1)
			c, br := pxDial(t, lb.Addr)
			for i := range 3 {
				st, raw := exchange(t, c, br, "GET "+tc.path+" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
				if st != 200 || !strings.HasSuffix(raw, "\r\n\r\n"+tc.wantBody) {
					t.Fatalf("HTTP/1.0 keep-alive request %d: got %q, want 200 with body %q", i, raw, tc.wantBody)
				}
			}
			// Without keep-alive, HTTP/1.0 closes after the response.
			pxWrite(t, c, "GET "+tc.path+" HTTP/1.0\r\n\r\n")
			got, closed, err := pxReadToClose(c, br, 10*time.Second)
			if !closed || pxStatus(got) != 200 {
				t.Fatalf("HTTP/1.0 without keep-alive: got %q (%v), want a 200 and the connection closed", got, err)
			}
		})
	}
}

func TestProxyPipelining(t *testing.T) {
	// Two backends that say who they are: pipelined requests are answered in order, and each is
	// balanced on its own (both backends serve some).
	backend := func(name string) *pxBackend {
		return startPxBackend(t, pxServeEach(func(req *http.Request, body []byte) string {
			if len(body) > 0 {
				return pxOK(fmt.Sprintf("%s %s %d", name, req.RequestURI, len(body)))
			}
			return pxOK(name + " " + req.RequestURI)
		}))
	}
	a, b := backend("A"), backend("B")
	lb := pxStartLB(t, []*pxBackend{a, b})

	c, br := pxDial(t, lb.Addr)
	const n = 40
	var all strings.Builder
	for i := range n {
		// Mostly GETs; some requests with bodies of either framing, small and large, so that
		// each must end exactly where the next request begins.
		switch size := 1 + i*397%9000; i % 5 {
		case 1:
			fmt.Fprintf(&all, "POST /p%d HTTP/1.1\r\nHost: lb\r\nContent-Length: %d\r\n\r\n%s", i, size, strings.Repeat("x", size))
		case 3:
			fmt.Fprintf(&all, "POST /p%d HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", i, size, strings.Repeat("y", size))
		default:
			fmt.Fprintf(&all, "GET /p%d HTTP/1.1\r\nHost: lb\r\n\r\n", i)
		}
	}
	pxWrite(t, c, all.String()) // every request in one write
	seen := map[string]int{}
	for i := range n {
		st, _, body := readResponse(t, br)
		f := strings.Fields(string(body))
		wantLen := ""
		if i%5 == 1 || i%5 == 3 {
			wantLen = strconv.Itoa(1 + i*397%9000)
		}
		if st != 200 || len(f) < 2 || f[1] != "/p"+strconv.Itoa(i) || (wantLen != "" && (len(f) != 3 || f[2] != wantLen)) {
			t.Fatalf("pipelined response %d: got %d %q, want 200 for /p%d (body length %q)", i, st, body, i, wantLen)
		}
		seen[f[0]]++
	}
	if seen["A"] == 0 || seen["B"] == 0 {
		t.Fatalf("pipelined requests per backend: got %v, want both backends used", seen)
	}
}

// 2. Backends that close after every response.

func TestProxyCloseBackends(t *testing.T) {
	dir := t.TempDir()
	var bs []*Proc
	for range 3 {
		bs = append(bs, startHTTPServer(t, dir, "-L", "--close"))
	}
	lb := startLB(t, ports(bs...))
	waitBackendsUp(t, lb, 3)

	const clients = 64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	dials := make([]atomic.Int64, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pxKeepAliveClient(lb.Addr, i, &dials[i])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range dials {
		if d := dials[i].Load(); d != 1 {
			t.Errorf("client %d opened %d connections, want 1 (the load balancer keeps client connections alive)", i, d)
		}
	}
}

// pxKeepAliveClient PUTs its own file (some bodies too big to be held for a replay), then GETs
// and HEADs it, all on one kept-alive connection; it counts its dials.
func pxKeepAliveClient(addr string, i int, dials *atomic.Int64) error {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	name := fmt.Sprintf("k%d", i)
	body := bytes.Repeat([]byte(name+"."), 100+i*40) // up to about 12 KiB
	for round := range 2 {
		if err := putGetHead(hc, addr, name, body, 3); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
	}
	return nil
}

// 3. Chunked both ways.

func TestProxyChunkedRequest(t *testing.T) {
	// The backend decodes the body with net/http and answers with what it got: the body's
	// length and checksum, and the trailer.
	be := startPxBackend(t, pxServeEach(func(req *http.Request, body []byte) string {
		return pxOK(fmt.Sprintf("te=%v len=%d sum=%x trailer=%q", req.TransferEncoding, len(body), sha256.Sum256(body), req.Trailer.Get("X-Sum")))
	}))
	lb := pxStartLB(t, []*pxBackend{be})

	// A large body in chunks of odd sizes, some with extensions.
	rng := rand.New(rand.NewPCG(1, 2))
	var body, wireBody bytes.Buffer
	for body.Len() < 300<<10 {
		chunk := make([]byte, 1+rng.IntN(20000))
		for i := range chunk {
			chunk[i] = byte('a' + rng.IntN(26))
		}
		body.Write(chunk)
		ext := ""
		if rng.IntN(3) == 0 {
			ext = `;name="va;lue";x=1`
		}
		fmt.Fprintf(&wireBody, "%x%s\r\n%s\r\n", len(chunk), ext, chunk)
	}
	wireBody.WriteString("0\r\nX-Sum: abc\r\n\r\n")

	for _, tc := range []struct {
		name, head string
		wire       []byte
		want       string
	}{
		// The small case from RFC 9112 §7.1, with a trailer.
		{"small", "POST /s HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
			[]byte("4\r\nWiki\r\n5;a=b\r\npedia\r\n0\r\nX-Sum: abc\r\n\r\n"),
			fmt.Sprintf("te=[chunked] len=9 sum=%x trailer=\"abc\"", sha256.Sum256([]byte("Wikipedia")))},
		// A body larger than any buffer, written in pieces.
		{"large", "PUT /l HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
			wireBody.Bytes(),
			fmt.Sprintf("te=[chunked] len=%d sum=%x trailer=\"abc\"", body.Len(), sha256.Sum256(body.Bytes()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := pxDial(t, lb.Addr)
			pxWrite(t, c, tc.head)
			for rest := tc.wire; len(rest) > 0; {
				n := min(len(rest), 7777)
				if _, err := c.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			st, _, got := readResponse(t, br)
			if st != 200 || string(got) != tc.want {
				t.Fatalf("chunked request: backend got %d %q, want 200 %q", st, got, tc.want)
			}
			// The body ended where it should: the connection carries the next request.
			if st, raw := exchange(t, c, br, "GET /next HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 {
				t.Fatalf("request after the chunked one: got %q, want 200", raw)
			}
		})
	}
}

func TestProxyChunkedResponse(t *testing.T) {
	// A large chunked response with extensions and trailers, written by the backend in pieces
	// of odd sizes.
	rng := rand.New(rand.NewPCG(3, 4))
	var large bytes.Buffer
	large.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n")
	for i := 0; large.Len() < 1<<20; i++ {
		chunk := make([]byte, 1+rng.IntN(30000))
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		if i%5 == 0 {
			fmt.Fprintf(&large, "%X;i=%d\r\n", len(chunk), i)
		} else {
			fmt.Fprintf(&large, "%x\r\n", len(chunk))
		}
		large.Write(chunk)
		large.WriteString("\r\n")
	}
	large.WriteString("0\r\nX-Checksum: 42\r\nX-Other: \"q\"\r\n\r\n")
	responses := map[string]string{
		"/small": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: v\r\n\r\n",
		"/large": large.String(),
		"/plain": pxOK("plain"),
	}
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			resp := responses[req.URL.Path]
			for rest := resp; len(rest) > 0; {
				n := min(len(rest), 1+pxSplit(len(rest)))
				if _, err := io.WriteString(c, rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
		}
	})
	lb := pxStartLB(t, []*pxBackend{be})

	c, br := pxDial(t, lb.Addr)
	for _, path := range []string{"/small", "/large", "/small", "/plain"} {
		pxWrite(t, c, "GET "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n")
		want := responses[path]
		if d := equalOrDiff([]byte(pxReadFull(t, br, len(want))), []byte(want)); d != "" {
			t.Fatalf("GET %s: the response is not passed on verbatim: %s", path, d)
		}
	}
	// Nothing after the last response: the framing ended exactly.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("unexpected byte %q after the last response", b)
	}
}

// pxSplit returns a pseudo-random size for splitting writes (0 to n-1), safe for concurrent use.
func pxSplit(n int) int { return rand.IntN(min(n, 9000)) }

// 4. Responses without a body, interim responses, close-delimited bodies.

func TestProxyBodilessResponses(t *testing.T) {
	answers := map[string]string{
		// HEAD: Content-Length says how big a GET would be; no body follows.
		"HEAD /head": "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		// 204 and 304 never have a body, whatever their fields say.
		"GET /204": "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
		"GET /304": "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n",
		// Interim responses are passed on before the final one.
		"GET /103": "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 102 Processing\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
		"GET /ok": pxOK("ok"),
		// A HEAD answer says how a GET would be framed, chunked included; no body follows.
		"HEAD /chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	}
	closeBody := bytes.Repeat([]byte("close-delimited body. "), 20000)
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/close" {
				// No Content-Length, not chunked: the body ends when the connection does.
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
				_, _ = c.Write(closeBody)
				return
			}
			if _, err := io.WriteString(c, answers[req.Method+" "+req.URL.Path]); err != nil {
				return
			}
		}
	})
	lb := pxStartLB(t, []*pxBackend{be})

	c, br := pxDial(t, lb.Addr)
	for _, req := range []string{"HEAD /head", "GET /204", "GET /304", "GET /103", "HEAD /chunked", "HEAD /head", "GET /ok"} {
		method, path, _ := strings.Cut(req, " ")
		pxWrite(t, c, method+" "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n")
		want := answers[req]
		if d := equalOrDiff([]byte(pxReadFull(t, br, len(want))), []byte(want)); d != "" {
			t.Fatalf("%s: response not passed on verbatim: %s", req, d)
		}
	}
	// A close-delimited response reaches the client whole, and the client connection closes
	// after it (there is no other way to tell the client where the body ends).
	pxWrite(t, c, "GET /close HTTP/1.1\r\nHost: lb\r\n\r\n")
	got, closed, err := pxReadToClose(c, br, 20*time.Second)
	want := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + string(closeBody)
	if d := equalOrDiff(got, []byte(want)); d != "" {
		t.Fatalf("close-delimited response: %s", d)
	}
	if !closed {
		t.Fatalf("close-delimited response: the client connection did not close (%v)", err)
	}
}

// 5. Expect: 100-continue.

func TestProxyExpectContinue(t *testing.T) {
	var mu sync.Mutex
	var garbage []string // what the backend could not parse as a request
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := pxReadHead(br)
			if err != nil {
				if head != "" {
					mu.Lock()
					garbage = append(garbage, head)
					mu.Unlock()
				}
				return
			}
			start, fields := pxHeadFields(head)
			f := strings.Fields(start)
			if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
				mu.Lock()
				garbage = append(garbage, head)
				mu.Unlock()
				return
			}
			n := 0
			if v := pxValues(fields, "Content-Length"); len(v) == 1 {
				n, _ = strconv.Atoi(v[0])
			}
			switch f[1] {
			case "/continue":
				// Says 100 Continue, then reads the body.
				if len(pxValues(fields, "Expect")) != 1 {
					_, _ = io.WriteString(c, pxOK("no Expect field arrived"))
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
				body := make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return
				}
				_, _ = io.WriteString(c, pxOK("got "+string(body)))
			case "/deny":
				// Answers at once without 100; as a server that keeps the connection, it
				// must then read and discard the body the request announced (RFC 9110
				// §10.1.1) before the next request.
				_, _ = io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\ndenied")
				if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
					return
				}
			default:
				if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
					return
				}
				_, _ = io.WriteString(c, pxOK(f[1]))
			}
		}
	})
	lb := pxStartLB(t, []*pxBackend{be})

	t.Run("100 then body", func(t *testing.T) {
		c, br := pxDial(t, lb.Addr)
		pxWrite(t, c, "PUT /continue HTTP/1.1\r\nHost: lb\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
		// The body is sent only after the 100: a load balancer that kept it back would leave
		// this read waiting until the deadline.
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		st, head, _, err := readResponseHead(br)
		if err != nil || st != 100 {
			t.Fatalf("before the body: got %q (%v), want 100 Continue", head, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		st, raw := exchange(t, c, br, "hello world")
		if st != 200 || !strings.HasSuffix(raw, "\r\n\r\ngot hello world") {
			t.Fatalf("after the body: got %q, want 200 \"got hello world\"", raw)
		}
	})

	t.Run("final status without 100", func(t *testing.T) {
		c, br := pxDial(t, lb.Addr)
		pxWrite(t, c, "PUT /deny HTTP/1.1\r\nHost: lb\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
		// The body is never sent: the answer must come without it.
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		st, head, n, err := readResponseHead(br)
		if err != nil || st != 401 || n != 6 {
			t.Fatalf("got %q (%v), want 401 with a 6-byte body", head, err)
		}
		if body := pxReadFull(t, br, 6); body != "denied" {
			t.Fatalf("401 body: got %q, want \"denied\"", body)
		}
		c.Close()
		// The upstream connection still owes the backend the announced body: it must not
		// carry another request (which the backend would read as that body).
		for i := range 3 {
			if st, body, err := pxTryGet(lb.Addr, "/after"+strconv.Itoa(i)); err != nil || st != 200 || string(body) != "/after"+strconv.Itoa(i) {
				t.Fatalf("request %d after the refused one: got %d %q (%v), want 200", i, st, body, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(garbage) > 0 {
			t.Fatalf("the backend received bytes that were not a request: %q (a request was sent down a connection that still owed a body)", garbage)
		}
	})
}

// 6. Upgrade (WebSocket).

func TestProxyWebSocketTunnel(t *testing.T) {
	tunnelEnded := make(chan struct{}, 1)
	heads := make(chan string, 4)
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := pxReadHead(br)
			if err != nil {
				return
			}
			start, _ := pxHeadFields(head)
			const switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
			switch {
			case strings.HasPrefix(start, "GET /ws "):
				heads <- head
				_, _ = io.WriteString(c, switching)
				_, _ = io.WriteString(c, "hello from the backend\n") // unprompted, right after the 101
				_, _ = io.Copy(c, br)                                // echo until the client side closes
				tunnelEnded <- struct{}{}
				return
			case strings.HasPrefix(start, "GET /ws-bye "):
				// The backend ends the tunnel.
				_, _ = io.WriteString(c, switching+"bye\n")
				return
			case strings.HasPrefix(start, "GET /ws-refuse "):
				// No upgrade: an ordinary response, and the connection goes on.
				_, _ = io.WriteString(c, pxOK("refused"))
			default:
				_, _ = io.WriteString(c, pxOK("plain"))
			}
		}
	})
	lb := pxStartLB(t, []*pxBackend{be}, "-N", "1")
	const upgrade = " HTTP/1.1\r\nHost: lb\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

	t.Run("echo", func(t *testing.T) {
		c, br := pxDial(t, lb.Addr)
		pxWrite(t, c, "GET /ws"+upgrade)
		st, head, _, err := readResponseHead(br)
		if err != nil || st != 101 {
			t.Fatalf("upgrade: got %q (%v), want 101", head, err)
		}
		if h := <-heads; !regexp.MustCompile(`(?i)\r\nConnection: *upgrade\r\n`).MatchString(h) ||
			!regexp.MustCompile(`(?i)\r\nUpgrade: *websocket\r\n`).MatchString(h) {
			t.Fatalf("the backend got %q, want Connection: upgrade and Upgrade: websocket", h)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "hello from the backend\n" {
			t.Fatalf("backend to client after the 101: got %q (%v)", line, err)
		}
		// Several round trips of raw bytes, of growing size.
		for i, size := range []int{1, 10, 1000, 100 << 10, 3} {
			msg := bytes.Repeat([]byte{byte('a' + i)}, size)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if echo := pxReadFull(t, br, size); echo != string(msg) {
				t.Fatalf("round trip %d: the echo differs from what was sent (%d bytes)", i, size)
			}
		}
		// Closing the client ends the tunnel on the backend's side.
		c.Close()
		select {
		case <-tunnelEnded:
		case <-time.After(20 * time.Second):
			t.Fatal("the backend's side of the tunnel is still open after the client closed")
		}
		// The tunnel held the only slot (-N 1); it is given back.
		if st, body, err := pxTryGet(lb.Addr, "/plain"); err != nil || st != 200 {
			t.Fatalf("after the tunnel: got %d %q (%v), want 200", st, body, err)
		}
	})

	t.Run("backend closes", func(t *testing.T) {
		c, br := pxDial(t, lb.Addr)
		pxWrite(t, c, "GET /ws-bye"+upgrade)
		if st, head, _, err := readResponseHead(br); err != nil || st != 101 {
			t.Fatalf("upgrade: got %q (%v), want 101", head, err)
		}
		got, closed, err := pxReadToClose(c, br, 20*time.Second)
		if string(got) != "bye\n" || !closed {
			t.Fatalf("after the backend closed the tunnel: got %q (%v, closed %v), want \"bye\\n\" and the connection closed", got, err, closed)
		}
	})

	t.Run("upgrade refused", func(t *testing.T) {
		c, br := pxDial(t, lb.Addr)
		if st, raw := exchange(t, c, br, "GET /ws-refuse"+upgrade); st != 200 || !strings.HasSuffix(raw, "refused") {
			t.Fatalf("refused upgrade: got %q, want 200 refused", raw)
		}
		// Still plain HTTP on the same connection.
		if st, raw := exchange(t, c, br, "GET /plain HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 || !strings.HasSuffix(raw, "plain") {
			t.Fatalf("after a refused upgrade: got %q, want 200 plain", raw)
		}
	})
}

// 7. Smuggling and bad input.

// pxRecorder is an in-test backend that records every byte it receives on connections other
// than health checks, as soon as it arrives, and answers each head without framing fields
// with 200 "ok".
type pxRecorder struct {
	*pxBackend
	mu       sync.Mutex
	received []string
}

func startPxRecorder(t *testing.T) *pxRecorder {
	r := &pxRecorder{}
	r.pxBackend = startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := pxReadHead(br)
			r.record(head)
			if err != nil {
				return
			}
			if l := strings.ToLower(head); strings.Contains(l, "transfer-encoding") || strings.Contains(l, "content-length") {
				// Not expected here: keep everything that comes until the connection ends.
				buf := make([]byte, 4096)
				for {
					n, err := br.Read(buf)
					r.record(string(buf[:n]))
					if err != nil {
						return
					}
				}
			}
			if _, err := io.WriteString(c, pxOK("ok")); err != nil {
				return
			}
		}
	})
	return r
}

func (r *pxRecorder) record(b string) {
	if b != "" {
		r.mu.Lock()
		r.received = append(r.received, b)
		r.mu.Unlock()
	}
}

// take returns what was received since the last take.
func (r *pxRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.received
	r.received = nil
	return got
}

// pxBadRequest is one request the load balancer must refuse.
type pxBadRequest struct {
	name string
	req  string
	want int
}

// pxRunBadRequests sends each request on its own connection and checks that it is answered
// with its status, that the connection then closes, and that nothing reached the backend.
func pxRunBadRequests(t *testing.T, lb *Proc, rec *pxRecorder, tests []pxBadRequest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, lb.Addr)
			_, _ = io.WriteString(c, tt.req) // the load balancer may close before reading it all
			got, closed, err := pxReadToClose(c, c, 10*time.Second)
			if st := pxStatus(got); st != tt.want {
				t.Errorf("got %q (%v), want status %d", got, err, tt.want)
			}
			if !closed {
				t.Errorf("the connection was not closed after the answer (%v)", err)
			}
			// Nothing of it may reach a backend. Connections end asynchronously at the
			// backend: give a forwarded request a moment to show up (and the caller
			// checks again at the end).
			time.Sleep(50 * time.Millisecond)
			if got := rec.take(); len(got) > 0 {
				t.Errorf("the backend received %q, want nothing", got)
			}
		})
	}
}

func TestProxyBadRequests(t *testing.T) {
	rec := startPxRecorder(t)
	lb := pxStartLB(t, []*pxBackend{rec.pxBackend})

	// A kept-alive connection of another client, used before and after the bad requests.
	other, otherBr := pxDial(t, lb.Addr)
	if st, _ := exchange(t, other, otherBr, "GET /before HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 {
		t.Fatalf("before the bad requests: got %d, want 200", st)
	}
	rec.take()

	fields := func(n, size int) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "X-Field-%d: %s\r\n", i, strings.Repeat("v", size))
		}
		return sb.String()
	}
	const post = "POST / HTTP/1.1\r\nHost: lb\r\n"
	pxRunBadRequests(t, lb, rec, []pxBadRequest{
		// CL.TE / TE.CL: two framings, the classic smuggling vector.
		{"Content-Length and Transfer-Encoding", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400},
		{"Transfer-Encoding and Content-Length", post + "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG", 400},
		// Two lengths: a recipient that takes the other one sees another message.
		{"two Content-Length fields", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"two equal Content-Length fields", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"Content-Length list", post + "Content-Length: 5, 5\r\n\r\nhello", 400},
		// Lengths that some parsers read as numbers.
		{"Content-Length -1", post + "Content-Length: -1\r\n\r\n", 400},
		{"Content-Length 1 2", post + "Content-Length: 1 2\r\n\r\nab", 400},
		{"Content-Length 0x10", post + "Content-Length: 0x10\r\n\r\n", 400},
		{"Content-Length +5", post + "Content-Length: +5\r\n\r\nhello", 400},
		// The final coding is not chunked: the length cannot be known (RFC 9112 §6.3).
		{"Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\nabc", 400},
		{"Transfer-Encoding chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding chunked twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		// A field some parsers fold into the previous one, or read as a new one.
		{"obs-fold", "GET / HTTP/1.1\r\nHost: lb\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"obs-fold after the request line", "GET / HTTP/1.1\r\n Host: lb\r\n\r\n", 400},
		// "Transfer-Encoding : chunked" is ignored by some and honoured by others.
		{"whitespace before the colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		// Line ends that parsers disagree on, and control bytes.
		{"bare CR in a field", "GET / HTTP/1.1\r\nHost: lb\r\nX-A: a\rb\r\n\r\n", 400},
		{"NUL in a field", "GET / HTTP/1.1\r\nHost: lb\r\nX-A: a\x00b\r\n\r\n", 400},
		{"control character in a field", "GET / HTTP/1.1\r\nHost: lb\r\nX-A: a\x01b\r\n\r\n", 400},
		{"NUL in the target", "GET /a\x00b HTTP/1.1\r\nHost: lb\r\n\r\n", 400},
		// Not a method, not a target.
		{"invalid method", "G@T / HTTP/1.1\r\nHost: lb\r\n\r\n", 400},
		{"invalid target", "GET foo HTTP/1.1\r\nHost: lb\r\n\r\n", 400},
		// HTTP/1.1 requires Host (RFC 9112 §3.2).
		{"no Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
		// Limits: 414 above --max-request-line, 431 above --max-header-bytes or --max-headers.
		{"request line too long", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: lb\r\n\r\n", 414},
		{"header section too large", "GET / HTTP/1.1\r\nHost: lb\r\n" + fields(70, 1000) + "\r\n", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: lb\r\n" + fields(101, 1) + "\r\n", 431},
	})

	// The other client's connection and new connections are served as before.
	if st, _ := exchange(t, other, otherBr, "GET /after HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 {
		t.Fatalf("other connection after the bad requests: got %d, want 200", st)
	}
	if st, body, err := pxTryGet(lb.Addr, "/new"); err != nil || st != 200 || string(body) != "ok" {
		t.Fatalf("new connection after the bad requests: got %d %q (%v), want 200 ok", st, body, err)
	}
	// The recorder does see what is forwarded, and nothing else came late.
	var got []string
	waitFor(t, "the backend to record the good requests", func() bool {
		got = append(got, rec.take()...)
		return len(got) >= 2
	})
	for _, r := range got {
		if !strings.HasPrefix(r, "GET /after HTTP/1.1\r\n") && !strings.HasPrefix(r, "GET /new HTTP/1.1\r\n") {
			t.Errorf("the backend received %q, want only the good requests", r)
		}
	}
}

func TestProxyBadChunkedBody(t *testing.T) {
	// The head is valid; the chunked body that follows it, all sent at once, is not. The
	// client gets 400 and the connection closes, and the backend gets nothing: the whole
	// request was in the load balancer's hands before anything had to go upstream.
	rec := startPxRecorder(t)
	lb := pxStartLB(t, []*pxBackend{rec.pxBackend})
	const chunked = "POST / HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
	pxRunBadRequests(t, lb, rec, []pxBadRequest{
		// Not hex.
		{"invalid chunk size", chunked + "zz\r\nhello\r\n0\r\n\r\n", 400},
		// A sign some number parsers accept.
		{"chunk size with sign", chunked + "+5\r\nhello\r\n0\r\n\r\n", 400},
		// An extension without a name.
		{"invalid chunk extension", chunked + "5;=x\r\nhello\r\n0\r\n\r\n", 400},
		// A chunk-size line ended by a bare LF.
		{"chunk extension with a bare LF", chunked + "5;a\nhello\r\n0\r\n\r\n", 400},
		// Chunk data longer than its size says.
		{"chunk data overrun", chunked + "3\r\nhello\r\n0\r\n\r\n", 400},
	})
	if st, body, err := pxTryGet(lb.Addr, "/new"); err != nil || st != 200 || string(body) != "ok" {
		t.Fatalf("new connection after the bad requests: got %d %q (%v), want 200 ok", st, body, err)
	}
}

func TestProxyBadChunkedBodyStreamed(t *testing.T) {
	// A chunked body that turns bad deep inside, after the head and much of the body have
	// been streamed upstream (a streaming proxy cannot hold it all back). The client gets its
	// 400 and the connection closes; the backend never sees the bad bytes nor a complete
	// request: its connection is cut in the middle of the body.
	type outcome struct {
		n   int
		err error
	}
	outcomes := make(chan outcome, 4)
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			outcomes <- outcome{err: err}
			return
		}
		body, err := io.ReadAll(req.Body)
		outcomes <- outcome{len(body), err}
		if err == nil {
			_, _ = io.WriteString(c, pxOK("ok"))
		}
	})
	lb := pxStartLB(t, []*pxBackend{be})

	var req strings.Builder
	req.WriteString("POST /up HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("a", 1000)
	for range 300 {
		fmt.Fprintf(&req, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	req.WriteString("zz\r\nbad\r\n0\r\n\r\n")

	c := dial(t, lb.Addr)
	_, _ = io.WriteString(c, req.String())
	got, closed, err := pxReadToClose(c, c, 20*time.Second)
	if pxStatus(got) != 400 || !closed {
		t.Errorf("bad chunk after 300 KB: got %q (%v, closed %v), want 400 and the connection closed", got, err, closed)
	}
	select {
	case o := <-outcomes:
		if !errors.Is(o.err, io.ErrUnexpectedEOF) {
			t.Errorf("the backend's read of the body: got %d bytes and %v, want the body cut short (unexpected EOF) before the bad chunk", o.n, o.err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("the backend's connection was not cut")
	}
}

// 8. Headers added upstream.

func TestProxyForwardedHeaders(t *testing.T) {
	heads := make(chan string, 16)
	be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := pxReadHead(br)
			if err != nil {
				return
			}
			heads <- head
			if _, err := io.WriteString(c, pxOK("ok")); err != nil {
				return
			}
		}
	})
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

	// send makes one request through lb with the extra fields and returns the fields the
	// backend got.
	send := func(t *testing.T, lb *Proc, extra string) [][2]string {
		t.Helper()
		st, _, body := do(t, lb.Addr, "GET /h HTTP/1.1\r\nHost: lb\r\n"+extra+"\r\n")
		if st != 200 || string(body) != "ok" {
			t.Fatalf("got %d %q, want 200 ok", st, body)
		}
		select {
		case h := <-heads:
			_, f := pxHeadFields(h)
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("the backend got no request")
			return nil
		}
	}
	one := func(t *testing.T, f [][2]string, name string) string {
		t.Helper()
		vs := pxValues(f, name)
		if len(vs) != 1 {
			t.Fatalf("%s fields upstream: got %q, want exactly one (all fields: %q)", name, vs, f)
		}
		return vs[0]
	}
	none := func(t *testing.T, f [][2]string, name string) {
		t.Helper()
		if vs := pxValues(f, name); len(vs) != 0 {
			t.Errorf("%s upstream: got %q, want none", name, vs)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		lb := pxStartLB(t, []*pxBackend{be})
		f := send(t, lb, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Request-ID: abc-123_XYZ\r\n")
		if got := one(t, f, "X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For: got %q, want %q", got, "203.0.113.7, 127.0.0.1")
		}
		if got := one(t, f, "X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto: got %q, want http", got)
		}
		if got := one(t, f, "X-Request-ID"); got != "abc-123_XYZ" {
			t.Errorf("X-Request-ID: got %q, want the client's abc-123_XYZ", got)
		}
		// Two X-Forwarded-For fields from the client: both values kept, in order.
		f = send(t, lb, "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 203.0.113.7\r\n")
		if got := one(t, f, "X-Forwarded-For"); got != "198.51.100.1, 203.0.113.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For from two fields: got %q, want %q", got, "198.51.100.1, 203.0.113.7, 127.0.0.1")
		}
		// None from the client: added.
		f = send(t, lb, "")
		if got := one(t, f, "X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For: got %q, want 127.0.0.1", got)
		}
		id1 := one(t, f, "X-Request-ID")
		if !uuidRe.MatchString(id1) {
			t.Errorf("X-Request-ID without one from the client: got %q, want a UUID", id1)
		}
		if id2 := one(t, send(t, lb, ""), "X-Request-ID"); id2 == id1 || !uuidRe.MatchString(id2) {
			t.Errorf("X-Request-ID of a second request: got %q after %q, want a new UUID", id2, id1)
		}
		// Invalid IDs are replaced.
		for _, bad := range []string{"has space", `quo"te`, "a,b", strings.Repeat("x", 300), "caf\xc3\xa9"} {
			got := one(t, send(t, lb, "X-Request-ID: "+bad+"\r\n"), "X-Request-ID")
			if !uuidRe.MatchString(got) {
				t.Errorf("X-Request-ID %q from the client: got %q upstream, want a new UUID", bad, got)
			}
		}
	})

	t.Run("hop-by-hop", func(t *testing.T) {
		lb := pxStartLB(t, []*pxBackend{be})
		f := send(t, lb, "Connection: keep-alive, X-Secret, x-other\r\nX-Secret: s\r\nX-Other: o\r\nKeep-Alive: timeout=5\r\n"+
			"TE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Keep: k\r\n")
		for _, name := range []string{"Connection", "X-Secret", "X-Other", "Keep-Alive", "TE", "Proxy-Connection", "Upgrade"} {
			none(t, f, name)
		}
		if got := one(t, f, "X-Keep"); got != "k" {
			t.Errorf("X-Keep: got %q, want k (end-to-end fields pass)", got)
		}
		if got := one(t, f, "Host"); got != "lb" {
			t.Errorf("Host: got %q, want lb", got)
		}
	})

	for _, tc := range []struct {
		flag    string
		off     string // the field the flag switches off
		clients string // the client's value, which then passes unchanged
	}{
		{"--no-forwarded-for", "X-Forwarded-For", "203.0.113.7"},
		{"--no-forwarded-proto", "X-Forwarded-Proto", "https"},
		{"--no-request-id", "X-Request-ID", "abc"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			lb := pxStartLB(t, []*pxBackend{be}, tc.flag)
			f := send(t, lb, "")
			none(t, f, tc.off)
			// The other two are still added.
			for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"} {
				if name != tc.off {
					one(t, f, name)
				}
			}
			// What the client sent passes untouched.
			f = send(t, lb, tc.off+": "+tc.clients+"\r\n")
			if got := one(t, f, tc.off); got != tc.clients {
				t.Errorf("%s with %s: got %q, want the client's %q", tc.off, tc.flag, got, tc.clients)
			}
		})
	}
}

// 9. Timeouts.

func TestProxySlowloris(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("served"))
	b := startHTTPServer(t, dir, "-L")
	lb := startLB(t, ports(b), "--header-timeout", "1s", "-N", "1")
	waitBackendsUp(t, lb, 1)

	// Slow clients trickle a head one byte every 300 ms; it would take half a minute to
	// complete, far beyond the header timeout and the read deadline below.
	slowHead := "GET /f HTTP/1.1\r\nHost: lb\r\nX-Slow: " + strings.Repeat("s", 80) + "\r\n\r\n"
	const slow = 200
	type result struct {
		got    []byte
		closed bool
		err    error
	}
	results := make(chan result, slow)
	var started sync.WaitGroup
	started.Add(slow)
	for range slow {
		go func() {
			c, err := net.DialTimeout("tcp", lb.Addr, 10*time.Second)
			if err != nil {
				started.Done()
				results <- result{err: err}
				return
			}
			defer c.Close()
			done := make(chan struct{})
			var r result
			go func() {
				defer close(done)
				r.got, r.closed, r.err = pxReadToClose(c, c, 20*time.Second)
			}()
			for i := range len(slowHead) {
				_, err := c.Write([]byte{slowHead[i]})
				if i == 0 {
					started.Done()
				}
				if err != nil {
					break
				}
				select {
				case <-done:
				case <-time.After(300 * time.Millisecond):
					continue
				}
				break
			}
			<-done
			results <- r
		}()
	}
	started.Wait()

	// Normal clients in parallel: every one is served, through the only slot.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				st, body, err := pxTryGet(lb.Addr, "/f")
				if err != nil || st != 200 || string(body) != "served" {
					errs <- fmt.Errorf("normal client %d request %d: got %d %q (%v), want 200 served", i, j, st, body, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// One line per kind of failure, with an example, rather than one per connection.
	var answered408, notClosed, otherAnswer int
	var example string
	for range slow {
		r := <-results
		switch {
		case !r.closed:
			notClosed++
			example = fmt.Sprintf("%v after %q", r.err, r.got)
		case len(r.got) > 0 && pxStatus(r.got) != 408:
			otherAnswer++
			example = fmt.Sprintf("%q", r.got)
		case len(r.got) > 0:
			answered408++
		}
	}
	if notClosed > 0 {
		t.Errorf("%d of %d slow clients: the connection was not closed (e.g. %s)", notClosed, slow, example)
	}
	if otherAnswer > 0 {
		t.Errorf("%d of %d slow clients got an answer other than 408 before the close (e.g. %s)", otherAnswer, slow, example)
	}
	t.Logf("%d of %d slow clients got a 408 before the close", answered408, slow)
	if st, body, err := pxTryGet(lb.Addr, "/f"); err != nil || st != 200 {
		t.Fatalf("after the slow clients: got %d %q (%v), want 200", st, body, err)
	}
}

func TestProxyIdleTimeout(t *testing.T) {
	be := startPxBackend(t, pxServeEach(func(req *http.Request, _ []byte) string { return pxOK("ok") }))
	lb := pxStartLB(t, []*pxBackend{be}, "--idle-timeout", "500ms")
	c, br := pxDial(t, lb.Addr)
	if st, raw := exchange(t, c, br, "GET / HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 {
		t.Fatalf("got %q, want 200", raw)
	}
	// Idle from now on: the load balancer closes the connection.
	got, closed, err := pxReadToClose(c, br, 20*time.Second)
	if !closed {
		t.Fatalf("idle connection not closed by the load balancer (%v)", err)
	}
	if len(got) > 0 && pxStatus(got) != 408 {
		t.Fatalf("idle connection: got %q before the close, want nothing or a 408", got)
	}
}

func TestProxyGatewayErrors(t *testing.T) {
	gatewayBody := regexp.MustCompile(`^[^\r\n]+\n$`)
	check := func(t *testing.T, lb *Proc, wantStatus int) {
		t.Helper()
		st, head, body := do(t, lb.Addr, "GET /x HTTP/1.1\r\nHost: lb\r\n\r\n")
		if st != wantStatus || !gatewayBody.Match(body) || !strings.Contains(head, "Content-Type: text/plain") {
			t.Fatalf("got %q%q, want %d with a one-line text body", head, body, wantStatus)
		}
	}

	t.Run("response timeout 504", func(t *testing.T) {
		be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
		lb := pxStartLB(t, []*pxBackend{be}, "--error-codes", "gateway", "--response-timeout", "500ms")
		check(t, lb, 504)
	})

	t.Run("no backend 503", func(t *testing.T) {
		lb := startLB(t, []string{strconv.Itoa(freePort(t))}, "--error-codes", "gateway")
		check(t, lb, 503)
		waitFor(t, "the backend marked down", func() bool { return strings.Contains(lb.Stderr(), "backend down") })
		check(t, lb, 503)
	})

	for _, tc := range []struct {
		name, answer string
	}{
		// Each is something the load balancer must not pass on.
		{"two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{"bad status code", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
		{"Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"bad chunk size in the body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"closed before a response", ""},
	} {
		t.Run("malformed response 502/"+tc.name, func(t *testing.T) {
			be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := pxReadHead(br); err == nil {
					_, _ = io.WriteString(c, tc.answer)
				}
			})
			lb := pxStartLB(t, []*pxBackend{be}, "--error-codes", "gateway")
			if tc.name == "bad chunk size in the body" {
				// The head went out before the body turned bad: the client cannot be
				// given a 502 any more; it must see the connection end instead of a
				// complete response.
				c, br := pxDial(t, lb.Addr)
				pxWrite(t, c, "GET /x HTTP/1.1\r\nHost: lb\r\n\r\n")
				got, closed, err := pxReadToClose(c, br, 20*time.Second)
				if !closed || (pxStatus(got) != 502 && !strings.HasPrefix(string(got), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) ||
					strings.Contains(string(got), "zz") {
					t.Fatalf("got %q (%v), want a 502, or the head alone and the connection closed", got, err)
				}
				return
			}
			check(t, lb, 502)
		})
	}

	t.Run("malformed response classic 500", func(t *testing.T) {
		be := startPxBackend(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := pxReadHead(br); err == nil {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
			}
		})
		lb := pxStartLB(t, []*pxBackend{be})
		st, head, body := do(t, lb.Addr, "GET /x HTTP/1.1\r\nHost: lb\r\n\r\n")
		if got := head + string(body); st != 500 || got != classic500 {
			t.Fatalf("got %q, want the classic 500", got)
		}
	})
}

// 10. Shutdown.

func TestProxyShutdownDuringDownload(t *testing.T) {
	size := 100 << 20
	if testing.Short() {
		size = 8 << 20
	}
	// The file: 4 KiB blocks, each numbered, so that a lost, repeated or reordered block shows.
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i*7 + i>>8)
	}
	want := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, want), 1<<20)
	for i := range size / len(block) {
		binary.BigEndian.PutUint64(block, uint64(i))
		_, _ = bw.Write(block)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustWriteFile(t, filepath.Join(dir, "small"), []byte("small"))

	b := startHTTPServer(t, dir, "-L")
	lb := startLB(t, ports(b), "--drain-timeout", "60s")
	waitBackendsUp(t, lb, 1)

	// An idle keep-alive client.
	idle, idleBr := pxDial(t, lb.Addr)
	if st, raw := exchange(t, idle, idleBr, "GET /small HTTP/1.1\r\nHost: lb\r\n\r\n"); st != 200 {
		t.Fatalf("idle client: got %q, want 200", raw)
	}
	// A download in progress, read slowly at first.
	dl, dlBr := pxDial(t, lb.Addr)
	_ = dl.SetDeadline(time.Now().Add(2 * time.Minute))
	pxWrite(t, dl, "GET /big HTTP/1.1\r\nHost: lb\r\n\r\n")
	st, head, n, err := readResponseHead(dlBr)
	if err != nil || st != 200 || n != int64(size) {
		t.Fatalf("download head: got %q (%v), want 200 with %d bytes", head, err, size)
	}
	got := sha256.New()
	for range 8 {
		if _, err := io.CopyN(got, dlBr, 64<<10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	lb.Signal(syscall.SIGTERM)

	// The idle connection is closed.
	if rest, closed, err := pxReadToClose(idle, idleBr, 20*time.Second); !closed || len(rest) > 0 {
		t.Errorf("idle keep-alive connection at SIGTERM: got %q (%v), want it closed", rest, err)
	}
	// New connections are refused once the listener is closed.
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", lb.Addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	// The download completes, byte for byte.
	if _, err := io.CopyN(got, dlBr, int64(size-8*64<<10)); err != nil {
		t.Fatalf("download after SIGTERM: %v", err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("download after SIGTERM: the bytes differ from the file")
	}
	// Then that connection closes too, and the process exits 0.
	if rest, closed, err := pxReadToClose(dl, dlBr, 20*time.Second); !closed || len(rest) > 0 {
		t.Errorf("download connection after the response: got %q (%v), want it closed", rest, err)
	}
	if code, err := lb.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d (%v), want 0", code, err)
	}
}

// 11. The connection cap.

func TestProxyMaxConns(t *testing.T) {
	be := startPxBackend(t, pxServeEach(func(req *http.Request, _ []byte) string { return pxOK("ok") }))
	lb := pxStartLB(t, []*pxBackend{be}, "--max-conns", "5")

	served := func(c net.Conn, br *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
			return err
		}
		st, head, _, err := readResponseHead(br)
		if err != nil {
			return err
		}
		if st != 200 {
			return fmt.Errorf("got %q, want 200", head)
		}
		_, err = io.CopyN(io.Discard, br, 2)
		return err
	}
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var open []conn
	for i := range 5 {
		c, br := pxDial(t, lb.Addr)
		if err := served(c, br); err != nil {
			t.Fatalf("connection %d of 5: %v", i+1, err)
		}
		open = append(open, conn{c, br})
	}
	refused := func(what string) {
		t.Helper()
		c, br := pxDial(t, lb.Addr)
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
		if got, closed, err := pxReadToClose(c, br, 20*time.Second); !closed || len(got) > 0 {
			t.Fatalf("%s: got %q (%v), want the connection closed without an answer", what, got, err)
		}
	}
	refused("6th connection")
	// The five are still served.
	for i, o := range open {
		if err := served(o.c, o.br); err != nil {
			t.Fatalf("connection %d after the 6th was refused: %v", i+1, err)
		}
	}
	// One closes: a new one is accepted (once the load balancer has seen the close).
	open[0].c.Close()
	var next conn
	waitFor(t, "a new connection to be accepted", func() bool {
		c, err := net.DialTimeout("tcp", lb.Addr, 5*time.Second)
		if err != nil {
			return false
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if served(c, br) != nil {
			c.Close()
			return false
		}
		next = conn{c, br}
		return true
	})
	defer next.c.Close()
	// Five again: the cap still holds.
	refused("6th connection after the replacement")
}

// TestProxyIdleConnectionsPark checks that idle keep-alive connections hold no goroutine (an
// event loop holds them all), are served again when a request comes, and are closed by the load
// balancer when their client hangs up while they idle.
func TestProxyIdleConnectionsPark(t *testing.T) {
	const conns = 300
	be := startPxBackend(t, pxServeEach(func(req *http.Request, _ []byte) string { return pxOK("ok") }))
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	lb := pxStartLB(t, []*pxBackend{be}, "--pprof-addr", pprofAddr)

	served := func(c net.Conn, br *bufio.Reader, req string, n int) error {
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		for range n {
			st, head, _, err := readResponseHead(br)
			if err != nil {
				return err
			}
			if st != 200 {
				return fmt.Errorf("got %q, want 200", head)
			}
			if _, err := io.CopyN(io.Discard, br, 2); err != nil {
				return err
			}
		}
		return nil
	}
	const get = "GET / HTTP/1.1\r\nHost: lb\r\n\r\n"
	cs := make([]net.Conn, conns)
	brs := make([]*bufio.Reader, conns)
	for i := range conns {
		cs[i], brs[i] = pxDial(t, lb.Addr)
		if err := served(cs[i], brs[i], get, 1); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	goroutines := func() int {
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var n int
		if _, err := fmt.Fscanf(resp.Body, "goroutine profile: total %d", &n); err != nil {
			return -1
		}
		return n
	}
	idle := func() bool { n := goroutines(); return n >= 0 && n < conns/3 }
	waitFor(t, fmt.Sprintf("%d idle connections to hold no goroutine", conns), idle)

	// Each is served again: one request, or two pipelined, on the woken connection.
	for i := range conns {
		req, n := get, 1
		if i%2 == 1 {
			req, n = get+get, 2
		}
		if err := served(cs[i], brs[i], req, n); err != nil {
			t.Fatalf("connection %d after idling: %v", i, err)
		}
	}
	waitFor(t, "the connections to idle again", idle)

	// Half the clients hang up while their connections idle: the load balancer closes its ends.
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", lb.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for i := range conns / 2 {
		cs[i].Close()
	}
	waitFor(t, "the load balancer to close the connections whose clients left", func() bool {
		return fds() <= before-conns/2
	})
	for i := conns / 2; i < conns; i++ {
		if err := served(cs[i], brs[i], get, 1); err != nil {
			t.Fatalf("connection %d after the others left: %v", i, err)
		}
	}
}
