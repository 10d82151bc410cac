package wire

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// respWant is what a successful ResponseHead.Read must produce; body is Body("GET").
type respWant struct {
	minor   int
	status  int
	reason  string
	cl      int64
	chunked bool
	close   bool
	body    BodyKind
	fields  int
}

type responseCase struct {
	name string
	in   string
	lim  Limits
	fail bool // Read must return an *Error with Status 502
	want respWant
}

var responseCases = []responseCase{
	// --- accepted ---

	// The plain case.
	{name: "ok", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", want: respWant{minor: 1, status: 200, reason: "OK", cl: 5, body: LengthBody, fields: 1}},
	// A chunked response.
	{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: -1, chunked: true, body: ChunkedBody, fields: 1}},
	// A coding before chunked is the client's to undo; framing is chunked and bytes pass through.
	{name: "gzip chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: -1, chunked: true, body: ChunkedBody, fields: 1}},
	// RFC 9112 §6.3 point 4: a final coding other than chunked means read until close.
	{name: "te not chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: -1, body: CloseDelimitedBody, fields: 1}},
	// No framing field: the body runs until close (RFC 9112 §6.3 point 8).
	{name: "close delimited", in: "HTTP/1.1 200 OK\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: -1, body: CloseDelimitedBody}},
	// Content-Length: 0 is no body.
	{name: "empty body", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: 0, body: NoBody, fields: 1}},
	// HTTP/1.0 closes unless it says keep-alive.
	{name: "http10", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", want: respWant{status: 200, reason: "OK", cl: 1, close: true, body: LengthBody, fields: 1}},
	// HTTP/1.0 with keep-alive.
	{name: "http10 keep-alive", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", want: respWant{status: 200, reason: "OK", cl: 1, body: LengthBody, fields: 2}},
	// Connection: close in HTTP/1.1.
	{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: 1, close: true, body: LengthBody, fields: 2}},
	// Tolerated: an empty reason phrase after the space.
	{name: "empty reason", in: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", want: respWant{minor: 1, status: 404, cl: 0, body: NoBody, fields: 1}},
	// Tolerated: no space after the code at all.
	{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", want: respWant{minor: 1, status: 204, cl: -1, body: NoBody}},
	// A reason phrase with spaces, a tab and obs-text.
	{name: "reason bytes", in: "HTTP/1.1 200 Very\tOK \xe2\x9c\x93\r\nContent-Length: 0\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "Very\tOK \xe2\x9c\x93", cl: 0, body: NoBody, fields: 1}},
	// Interim responses have no body.
	{name: "100 continue", in: "HTTP/1.1 100 Continue\r\n\r\n", want: respWant{minor: 1, status: 100, reason: "Continue", cl: -1, body: NoBody}},
	// 101 ends the HTTP part of the connection; no body.
	{name: "101", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", want: respWant{minor: 1, status: 101, reason: "Switching Protocols", cl: -1, body: NoBody, fields: 2}},
	// 304 with a Content-Length describing the representation: still no body.
	{name: "304 with length", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", want: respWant{minor: 1, status: 304, reason: "Not Modified", cl: 100, body: NoBody, fields: 1}},
	// The top of the range.
	{name: "599", in: "HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", want: respWant{minor: 1, status: 599, reason: "X", cl: 0, body: NoBody, fields: 1}},
	// Many Set-Cookie fields and a long line across small buffers.
	{name: "many fields", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("Set-Cookie: a=b\r\n", 50) + "X-Long: " + strings.Repeat("z", 5000) + "\r\nContent-Length: 0\r\n\r\n", want: respWant{minor: 1, status: 200, reason: "OK", cl: 0, body: NoBody, fields: 52}},

	// --- refused: 502 ---

	// RFC 9112 §6.3 point 3 would let us trust TE, but the head goes to the client unchanged,
	// Content-Length included: refuse rather than forward an ambiguous response.
	{name: "content-length and chunked", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", fail: true},
	// Several Content-Length values (RFC 9112 §6.3 point 5: 502).
	{name: "content-length twice", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", fail: true},
	// An invalid Content-Length (RFC 9112 §6.3 point 5: 502).
	{name: "content-length invalid", in: "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", fail: true},
	// A negative Content-Length.
	{name: "content-length negative", in: "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", fail: true},
	// Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1: faulty framing).
	{name: "te in http10", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", fail: true},
	// Chunked twice.
	{name: "chunked twice", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", fail: true},
	// Chunked, then another coding: never right.
	{name: "chunked not final", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", fail: true},
	// A malformed Transfer-Encoding list.
	{name: "te malformed", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;\r\n\r\n", fail: true},
	// Status codes are 100 to 599.
	{name: "status 600", in: "HTTP/1.1 600 X\r\n\r\n", fail: true},
	{name: "status 099", in: "HTTP/1.1 099 X\r\n\r\n", fail: true},
	// Three digits exactly.
	{name: "status four digits", in: "HTTP/1.1 2000 OK\r\n\r\n", fail: true},
	{name: "status two digits", in: "HTTP/1.1 20 OK\r\n\r\n", fail: true},
	{name: "status not digits", in: "HTTP/1.1 2x0 OK\r\n\r\n", fail: true},
	// No space between version and code.
	{name: "no space", in: "HTTP/1.1200 OK\r\n\r\n", fail: true},
	// Only HTTP/1.0 and HTTP/1.1.
	{name: "http2", in: "HTTP/2.0 200 OK\r\n\r\n", fail: true},
	// Not HTTP at all (a backend speaking something else).
	{name: "garbage", in: "SSH-2.0-OpenSSH_9.2\r\n\r\n", fail: true},
	// A control byte in the reason phrase.
	{name: "reason nul", in: "HTTP/1.1 200 O\x00K\r\n\r\n", fail: true},
	// A bare CR in the reason phrase: response splitting at the client.
	{name: "reason bare cr", in: "HTTP/1.1 200 OK\rSet-Cookie: x\r\n\r\n", fail: true},
	// Bare LF line ends: the client may not see the lines we see.
	{name: "bare lf", in: "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", fail: true},
	// RFC 9112 §5.2: a proxy must not pass obs-fold on unchanged.
	{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", fail: true},
	// RFC 9112 §5.1: a proxy must not pass whitespace before a colon on unchanged.
	{name: "space before colon", in: "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", fail: true},
	// A field name that is not a token.
	{name: "bad name", in: "HTTP/1.1 200 OK\r\nX(Y): 1\r\n\r\n", fail: true},
	// A control byte in a value.
	{name: "ctl in value", in: "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", fail: true},
	// Over MaxHeaders.
	{name: "too many fields", in: "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", lim: Limits{MaxHeaders: 1}, fail: true},
	// Over MaxHeaderBytes.
	{name: "head too large", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("v", 100) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 64}, fail: true},
	// An over-long status line.
	{name: "status line too long", in: "HTTP/1.1 200 " + strings.Repeat("O", 100) + "\r\n\r\n", lim: Limits{MaxRequestLine: 64}, fail: true},
}

func TestResponseRead(t *testing.T) {
	for _, tc := range responseCases {
		for _, rk := range readerKinds {
			t.Run(tc.name+"/"+rk.name, func(t *testing.T) {
				br := rk.new(tc.in)
				var h ResponseHead
				err := h.Read(br, tc.lim)
				if tc.fail {
					var we *Error
					if !errors.As(err, &we) || we.Status != 502 {
						t.Fatalf("got error %v, want *Error with status 502", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				got := respWant{minor: h.Minor, status: h.Status, reason: string(h.Reason), cl: h.ContentLength,
					chunked: h.Chunked, close: h.Close, body: h.Body([]byte("GET")), fields: len(h.Fields)}
				if got != tc.want {
					t.Errorf("got  %+v\nwant %+v", got, tc.want)
				}
				if !strings.HasPrefix(tc.in, string(h.Raw)) || !strings.HasSuffix(string(h.Raw), "\r\n\r\n") {
					t.Errorf("got Raw %q, want a prefix of the input ending in CRLF CRLF", h.Raw)
				}
				rest, _ := io.ReadAll(br)
				if len(h.Raw)+len(rest) != len(tc.in) {
					t.Errorf("got Raw of %d bytes and %d left, want %d in all", len(h.Raw), len(rest), len(tc.in))
				}
			})
		}
	}
}

func TestResponseReadErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error
	}{
		// A kept-alive backend connection closed before the response: the caller may retry.
		{"clean eof", "", io.EOF},
		// Closed inside the head.
		{"eof in head", "HTTP/1.1 200 OK\r\nContent-", io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h ResponseHead
			if err := h.Read(bufio.NewReader(strings.NewReader(tc.in)), Limits{}); err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestResponseBody walks RFC 9112 §6.3 through the request method and the status.
func TestResponseBody(t *testing.T) {
	const (
		length = "Content-Length: 10\r\n"
		chunk  = "Transfer-Encoding: chunked\r\n"
		gzip   = "Transfer-Encoding: gzip\r\n"
	)
	cases := []struct {
		name   string
		method string
		status string
		fields string
		want   BodyKind
	}{
		// A response to HEAD never has a body, whatever it announces (§6.3 point 1).
		{"head with length", "HEAD", "200", length, NoBody},
		{"head with chunked", "HEAD", "200", chunk, NoBody},
		{"head bare", "HEAD", "200", "", NoBody},
		// Nor do 1xx, 204 and 304 (§6.3 point 1).
		{"100", "GET", "100", "", NoBody},
		{"101", "GET", "101", "", NoBody},
		{"103 with length", "GET", "103", length, NoBody},
		{"204 with length", "GET", "204", length, NoBody},
		{"304 with chunked", "GET", "304", chunk, NoBody},
		// A 2xx to CONNECT starts a tunnel, not a body (§6.3 point 2).
		{"connect 200", "CONNECT", "200", "", NoBody},
		// A refused CONNECT has an ordinary body.
		{"connect 407", "CONNECT", "407", length, LengthBody},
		// Chunked (§6.3 point 4).
		{"chunked", "POST", "201", chunk, ChunkedBody},
		// Another final coding: until close (§6.3 point 4).
		{"gzip", "GET", "200", gzip, CloseDelimitedBody},
		// Content-Length (§6.3 point 6).
		{"length", "GET", "500", length, LengthBody},
		// Nothing: until close (§6.3 point 8).
		{"nothing", "GET", "200", "", CloseDelimitedBody},
		// 205 with no framing is close-delimited too (it should say Content-Length: 0).
		{"205", "GET", "205", "", CloseDelimitedBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h ResponseHead
			in := "HTTP/1.1 " + tc.status + " X\r\n" + tc.fields + "\r\n"
			if err := h.Read(bufio.NewReader(strings.NewReader(in)), Limits{}); err != nil {
				t.Fatal(err)
			}
			if got := h.Body([]byte(tc.method)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestResponseConn reads an interim response, a chunked one and a fixed-length one
// written in small pieces over net.Pipe and TCP.
func TestResponseConn(t *testing.T) {
	stream := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
	testConnTypes(t, func(t *testing.T, w, r net.Conn) {
		done := writeInPieces(w, stream, 1, 2, 3, 5, 8, 13)
		br := bufio.NewReaderSize(r, 16)
		var h ResponseHead
		if err := h.Read(br, Limits{}); err != nil || h.Status != 100 {
			t.Fatalf("got status %d, err %v; want 100", h.Status, err)
		}
		if err := h.Read(br, Limits{}); err != nil || h.Body(nil) != ChunkedBody {
			t.Fatalf("got %v, err %v; want a chunked 200", h.Body(nil), err)
		}
		if n, err := CopyChunked(io.Discard, br, Limits{}); err != nil || n != 13 {
			t.Fatalf("got %d bytes, err %v; want 13", n, err)
		}
		if err := h.Read(br, Limits{}); err != nil || h.Status != 404 || !h.Close || h.ContentLength != 2 {
			t.Fatalf("got status %d close %v length %d, err %v", h.Status, h.Close, h.ContentLength, err)
		}
		if b, _ := io.ReadAll(br); string(b) != "no" {
			t.Fatalf("got body %q, want %q", b, "no")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// typicalResponse is what a backend sends for a small file.
const typicalResponse = "HTTP/1.1 200 OK\r\n" +
	"Server: nginx/1.22.1\r\n" +
	"Date: Tue, 25 Nov 2025 10:00:00 GMT\r\n" +
	"Content-Type: application/javascript\r\n" +
	"Content-Length: 0\r\n" +
	"Last-Modified: Mon, 24 Nov 2025 09:00:00 GMT\r\n" +
	"Connection: keep-alive\r\n" +
	"ETag: \"6560a1b0-1a2b\"\r\n" +
	"Cache-Control: max-age=3600\r\n" +
	"Accept-Ranges: bytes\r\n" +
	"\r\n"

// TestResponseReadAllocs pins steady-state allocations of ResponseHead.Read at zero.
func TestResponseReadAllocs(t *testing.T) {
	br := bufio.NewReader(&repeatReader{b: []byte(typicalResponse)})
	var h ResponseHead
	read := func() {
		if err := h.Read(br, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if n := testing.AllocsPerRun(1000, read); n != 0 {
		t.Fatalf("got %v allocations per Read, want 0", n)
	}
}
