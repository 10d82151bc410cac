package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// parsed is what a test expects read to make of a head.
type parsed struct {
	method        method
	name          string
	line          string
	contentLength int64
	closeAfter    bool
	bad           bool
	unframed      bool
}

func got(r *request) parsed {
	return parsed{r.method, string(r.name), string(r.line), r.contentLength, r.closeAfter, r.bad, r.unframed}
}

var readTests = []struct {
	name    string
	in      string
	want    parsed
	wantErr bool
}{
	// The three methods, the plainest heads.
	{name: "GET", in: "GET /a HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1}},
	{name: "HEAD", in: "HEAD /a HTTP/1.1\r\n\r\n",
		want: parsed{method: methodHead, name: "a", line: "HEAD /a HTTP/1.1", contentLength: -1}},
	{name: "PUT", in: "PUT /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 12}},
	// Every allowed character, 27 of them: the longest name.
	{name: "27-char name", in: "GET /Az09_-Az09_-Az09_-Az09_-xyz HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, name: "Az09_-Az09_-Az09_-Az09_-xyz", line: "GET /Az09_-Az09_-Az09_-Az09_-xyz HTTP/1.1", contentLength: -1}},
	// 28 is one too many: bad, but the head is sound.
	{name: "28-char name", in: "GET /Az09_-Az09_-Az09_-Az09_-xyzq HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, line: "GET /Az09_-Az09_-Az09_-Az09_-xyzq HTTP/1.1", contentLength: -1, bad: true}},
	// Header names are case-insensitive, values trimmed, other headers ignored.
	{name: "headers", in: "PUT /a HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: \t 7 \r\nX-Other: y\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 7}},
	// Connection: close, alone or in a list, any case.
	{name: "connection close", in: "GET /a HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, closeAfter: true}},
	{name: "connection other", in: "GET /a HTTP/1.1\r\nConnection: closed\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1}},
	// A bare LF ends lines, and empty lines before the request are skipped (RFC 9112).
	{name: "bare LF", in: "\r\n\nGET /a HTTP/1.1\nHost: x\n\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1}},
	// The same Content-Length twice is one.
	{name: "repeated length", in: "PUT /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 3}},

	// Bad but framed: the connection can go on.
	{name: "unknown method", in: "POST /a HTTP/1.1\r\n\r\n",
		want: parsed{name: "a", line: "POST /a HTTP/1.1", contentLength: -1, bad: true}},
	{name: "lowercase method", in: "get /a HTTP/1.1\r\n\r\n",
		want: parsed{name: "a", line: "get /a HTTP/1.1", contentLength: -1, bad: true}},
	{name: "dot in name", in: "GET /a.b HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, line: "GET /a.b HTTP/1.1", contentLength: -1, bad: true}},
	{name: "empty name", in: "GET / HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, line: "GET / HTTP/1.1", contentLength: -1, bad: true}},
	{name: "no slash", in: "GET a HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, line: "GET a HTTP/1.1", contentLength: -1, bad: true}},
	{name: "two slashes", in: "GET //a HTTP/1.1\r\n\r\n",
		want: parsed{method: methodGet, line: "GET //a HTTP/1.1", contentLength: -1, bad: true}},

	// Unframed: a 400 and the connection closes.
	{name: "HTTP/1.0", in: "GET /a HTTP/1.0\r\n\r\n",
		want: parsed{line: "GET /a HTTP/1.0", contentLength: -1, bad: true, unframed: true}},
	{name: "no version", in: "GET /a\r\n\r\n",
		want: parsed{line: "GET /a", contentLength: -1, bad: true, unframed: true}},
	{name: "one word", in: "GARBAGE\r\n\r\n",
		want: parsed{line: "GARBAGE", contentLength: -1, bad: true, unframed: true}},
	{name: "four words", in: "GET /a HTTP/1.1 x\r\n\r\n",
		want: parsed{line: "GET /a HTTP/1.1 x", contentLength: -1, bad: true, unframed: true}},
	{name: "double space", in: "GET  /a HTTP/1.1\r\n\r\n",
		want: parsed{line: "GET  /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "stray CR", in: "GET /a\r HTTP/1.1\r\n\r\n",
		want: parsed{line: "GET /a\r HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "NUL", in: "GET /a HTTP/1.1\r\nX: \x00\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "no colon", in: "GET /a HTTP/1.1\r\nHost\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "empty header name", in: "GET /a HTTP/1.1\r\n: x\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "space before colon", in: "GET /a HTTP/1.1\r\nHost : x\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "folded line", in: "GET /a HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "length not a number", in: "PUT /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "negative length", in: "PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "empty length", in: "PUT /a HTTP/1.1\r\nContent-Length: \r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "huge length", in: "PUT /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	// Found by FuzzRequestRead: n*10 wrapped negative past 1<<62 and slipped past the check.
	{name: "length that wraps", in: "PUT /a HTTP/1.1\r\nContent-Length: 9227000000000000000\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	// The largest length accepted, and one more.
	{name: "length 1<<62", in: "PUT /a HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 1 << 62}},
	{name: "length 1<<62+1", in: "PUT /a HTTP/1.1\r\nContent-Length: 4611686018427387905\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "two lengths", in: "PUT /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 1, bad: true, unframed: true}},
	{name: "list length", in: "PUT /a HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	{name: "chunked", in: "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		want: parsed{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	// A head of maxHead bytes is fine; one more byte is not.
	{name: "head at limit", in: padHead(maxHead),
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1}},
	{name: "head over limit", in: padHead(maxHead + 1),
		want: parsed{method: methodGet, name: "a", line: "GET /a HTTP/1.1", contentLength: -1, bad: true, unframed: true}},
	// A request line longer than the buffer: what fitted is kept for the log.
	{name: "request line over limit", in: "GET /" + strings.Repeat("a", maxHead) + " HTTP/1.1\r\n\r\n",
		want: parsed{line: "GET /" + strings.Repeat("a", maxHead-5), contentLength: -1, bad: true, unframed: true}},

	// No whole head: an error, nothing to answer.
	{name: "nothing", in: "", wantErr: true},
	{name: "cut request line", in: "GET /a HT", wantErr: true},
	{name: "cut headers", in: "GET /a HTTP/1.1\r\nHost: x\r\n", wantErr: true},
}

// padHead returns a GET head of exactly n bytes.
func padHead(n int) string {
	start, end := "GET /a HTTP/1.1\r\nX-Pad: ", "\r\n\r\n"
	return start + strings.Repeat("p", n-len(start)-len(end)) + end
}

func TestRequestRead(t *testing.T) {
	for _, tt := range readTests {
		t.Run(tt.name, func(t *testing.T) {
			var r request
			err := r.read(bufio.NewReaderSize(strings.NewReader(tt.in), maxHead))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", got(&r))
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if g := got(&r); g != tt.want {
				t.Errorf("got  %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestRequestReadPipelined(t *testing.T) {
	// Heads read one after another from one reader, bodies skipped between them, the request
	// reused: nothing of one request leaks into the next.
	in := "PUT /a HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc" +
		"POST /b HTTP/1.1\r\n\r\n" +
		"GET /c HTTP/1.1\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), maxHead)
	var r request
	want := []parsed{
		{method: methodPut, name: "a", line: "PUT /a HTTP/1.1", contentLength: 3, closeAfter: true},
		{name: "b", line: "POST /b HTTP/1.1", contentLength: -1, bad: true},
		{method: methodGet, name: "c", line: "GET /c HTTP/1.1", contentLength: -1},
	}
	for i, w := range want {
		if err := r.read(br); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if g := got(&r); g != w {
			t.Fatalf("request %d: got %+v, want %+v", i, g, w)
		}
		if r.contentLength > 0 {
			br.Discard(int(r.contentLength))
		}
	}
	if err := r.read(br); err != io.EOF {
		t.Fatalf("after the last request: got %v, want EOF", err)
	}
}

func TestRequestReadAllocs(t *testing.T) {
	in := "PUT /some-file HTTP/1.1\r\nHost: example\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
	sr := strings.NewReader(in)
	br := bufio.NewReaderSize(sr, maxHead)
	var r request
	allocs := testing.AllocsPerRun(1000, func() {
		sr.Reset(in)
		br.Reset(sr)
		if err := r.read(br); err != nil || r.bad {
			t.Fatalf("read: %v, bad %v", err, r.bad)
		}
	})
	if allocs != 0 {
		t.Errorf("read allocates %v times per request, want 0", allocs)
	}
}

func FuzzRequestRead(f *testing.F) {
	for _, tt := range readTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r request
		err := r.read(bufio.NewReaderSize(strings.NewReader(string(in)), maxHead))
		if err != nil || r.bad {
			if r.unframed && !r.bad {
				t.Fatalf("unframed but not bad")
			}
			return
		}
		// Accepted: a known method, a valid name, and net/http reads the same request.
		if r.method == methodOther || !validName(r.name) {
			t.Fatalf("accepted %q with method %v name %q", in, r.method, r.name)
		}
		// net/http's ReadRequest does not skip empty lines before the request (its server does).
		trimmed := strings.TrimLeft(string(in), "\r\n")
		hr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(trimmed)))
		if err != nil {
			t.Fatalf("accepted %q, which net/http rejects: %v", in, err)
		}
		if hr.Method != r.method.String() || hr.RequestURI != "/"+string(r.name) {
			t.Fatalf("%q: got %s /%s, net/http %s %s", in, r.method, r.name, hr.Method, hr.RequestURI)
		}
		if r.contentLength >= 0 && hr.ContentLength != r.contentLength {
			t.Fatalf("%q: got length %d, net/http %d", in, r.contentLength, hr.ContentLength)
		}
		if r.closeAfter != hr.Close {
			t.Fatalf("%q: got close %v, net/http %v", in, r.closeAfter, hr.Close)
		}
	})
}
