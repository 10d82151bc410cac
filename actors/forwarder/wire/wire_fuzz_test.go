package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets check that the parsers never panic, that their result does not depend on
// how the input is split into reads, that what they accept is passed on verbatim, and that
// net/http (the oracle) reads everything we accept the same way: we may be stricter than
// net/http, never looser.

// maxSeed keeps the corpus small: the fuzzer mutates, and above all minimizes, a large input
// slowly (every run reads it twice, once a byte at a time). The limits that need large inputs
// are the table tests' business.
const maxSeed = 1 << 10

func FuzzRequestHead(f *testing.F) {
	for _, tc := range requestCases {
		if len(tc.in) <= maxSeed {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(typicalRequest))
	f.Add([]byte(typicalRequest + typicalRequest))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h, h2 RequestHead
		src := bytes.NewReader(data)
		br := bufio.NewReader(src)
		err := h.Read(br, Limits{})
		err2 := h2.Read(bufio.NewReaderSize(oneByte(data), 16), Limits{})
		checkSameErr(t, err, err2)
		checkTight(t, data, &h, err)
		if err != nil {
			checkReadErr(t, err, 400, 414, 431, 501, 505)
			return
		}
		if !bytes.Equal(h.Raw, h2.Raw) || !slices.EqualFunc(h.Fields, h2.Fields, equalField) {
			t.Fatalf("the result depends on read sizes:\n%q\n%q", h.Raw, h2.Raw)
		}
		// Raw is the input verbatim, after skipped empty lines.
		consumed := len(data) - src.Len() - br.Buffered()
		start := consumed - len(h.Raw)
		if start < 0 || !bytes.Equal(data[start:consumed], h.Raw) || strings.Trim(string(data[:start]), "\r\n") != "" {
			t.Fatalf("Raw %q is not the input %q after empty lines", h.Raw, data[:consumed])
		}
		checkRequestOracle(t, &h)
	})
}

// tight limits let small inputs reach the 414 and 431 paths.
var tight = Limits{MaxRequestLine: 24, MaxHeaderBytes: 96, MaxHeaders: 3}

// checkTight reads data under tight limits through two read sizes: the outcome must not
// depend on them, and what passes the tight limits must read the same under the defaults.
func checkTight(t *testing.T, data []byte, h *RequestHead, err error) {
	var ht, ht2 RequestHead
	errT := ht.Read(bufio.NewReader(bytes.NewReader(data)), tight)
	errT2 := ht2.Read(bufio.NewReaderSize(oneByte(data), 16), tight)
	checkSameErr(t, errT, errT2)
	if errT == nil && (err != nil || !bytes.Equal(ht.Raw, h.Raw)) {
		t.Fatalf("accepted under tight limits, not under the defaults (%v)", err)
	}
}

// checkRequestOracle fails unless net/http reads an accepted head the same way.
func checkRequestOracle(t *testing.T, h *RequestHead) {
	t.Helper()
	if !bytes.HasSuffix(h.Raw, []byte("\r\n\r\n")) {
		t.Fatalf("accepted a head not ending in CRLF CRLF: %q", h.Raw)
	}
	req, gerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(h.Raw)))
	if gerr != nil {
		t.Fatalf("we accept what net/http refuses (%v):\n%q", gerr, h.Raw)
	}
	if req.Method != string(h.Method) || req.RequestURI != string(h.Target) {
		t.Fatalf("got %s %s, net/http read %s %s", h.Method, h.Target, req.Method, req.RequestURI)
	}
	if req.ProtoMajor != h.Major || req.ProtoMinor != h.Minor {
		t.Fatalf("got version %d.%d, net/http read %d.%d", h.Major, h.Minor, req.ProtoMajor, req.ProtoMinor)
	}
	switch {
	case h.Chunked:
		if req.ContentLength != -1 || !slices.Equal(req.TransferEncoding, []string{"chunked"}) {
			t.Fatalf("got chunked, net/http read length %d coding %q", req.ContentLength, req.TransferEncoding)
		}
	case h.ContentLength >= 0:
		if req.ContentLength != h.ContentLength {
			t.Fatalf("got length %d, net/http read %d", h.ContentLength, req.ContentLength)
		}
	default:
		if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
			t.Fatalf("got no body, net/http read length %d coding %q", req.ContentLength, req.TransferEncoding)
		}
	}
	if req.Close != h.Close {
		t.Fatalf("got Close %v, net/http read %v", h.Close, req.Close)
	}
	if h.Target[0] == '/' && req.Host != string(h.Host) {
		t.Fatalf("got Host %q, net/http read %q", h.Host, req.Host)
	}
}

// TestRequestOracle crosses request-line and field variants that random mutation rarely
// builds (target forms, escapes, IPv6 literals, framing and connection fields) and checks
// each head we accept against net/http.
func TestRequestOracle(t *testing.T) {
	targets := []string{
		"/", "/a?b", "/%41", "/%4", "/%zz", "/a%", "/?%", "/?#", "/a#b", "//a", "/a;b=c", "/~a/!$&'()*+,;=:@",
		"*", "http://a", "http://a/", "http://a:80/", "http://a:/", "HTTP://A/", "https://a?b", "http://a?b/c",
		"http://[::1]/", "http://[::1]:8/", "http://[::ffff:1.2.3.4]/", "http://[1::2::3]/", "http://[fe80::1%25eth0]/",
		"http://[1.2.3.4]/", "http://[v1.x]/", "http://[::1%]/", "http://[]/", "http://[::1]x/", "http://a]/", "http://a[/",
		"http://a@b/", "http://a:b/", "http://a:99999/", "http://a:123456/", "http://a:80:90/", "http://_a.b-c~!$&'()*+,;=/",
		"http://a%41/", "http:/a", "http:a", "ftp://a/", "http://", "https://a:443?x#y",
		"a:80", "a:", "[::1]:443", "[::1]", "a.b:0", "a:08", ":80",
	}
	methods := []string{"GET", "OPTIONS", "CONNECT", "PRI", "get"}
	hosts := []string{"", "a", "a:80", "[::1]", "[::1]:80", "a:", ":80", "a%41", "a%4", "[::1", "a]", "-", "a..b", "1.2.3.4:65536"}
	fields := []string{
		"Connection: close", "Connection: keep-alive", "Connection: Keep-Alive, close", "connection: CLOSE",
		"Connection: ,close,", "Connection: \tclose\t", "Connection: closed", "Connection: keep-alive\r\nConnection: close",
		"Content-Length: 0", "Content-Length: 00", "Content-Length: 1", "Content-Length: 9223372036854775807",
		"Content-Length: 1\r\nContent-Length: 1", "Content-Length:  1 ", "Transfer-Encoding: chunked",
		"Transfer-Encoding: CHUNKED", "Transfer-Encoding:  chunked ", "Transfer-Encoding: chunked,",
		"Transfer-Encoding: chunked\r\nContent-Length: 1", "Expect: 100-continue", "Upgrade: h2c\r\nConnection: Upgrade",
		"X: \xff", "X:", "X-\xff: 1",
	}
	check := func(t *testing.T, in string) {
		var h RequestHead
		if h.Read(bufio.NewReader(strings.NewReader(in)), Limits{}) == nil {
			checkRequestOracle(t, &h)
		}
	}
	for _, v := range []string{"1.0", "1.1"} {
		for _, m := range methods {
			for _, tg := range targets {
				check(t, m+" "+tg+" HTTP/"+v+"\r\nHost: a\r\n\r\n")
			}
		}
		for _, host := range hosts {
			check(t, "GET / HTTP/"+v+"\r\nHost: "+host+"\r\n\r\n")
		}
		for _, f := range fields {
			check(t, "POST / HTTP/"+v+"\r\nHost: a\r\n"+f+"\r\n\r\n")
		}
	}
}

func FuzzResponseHead(f *testing.F) {
	for _, tc := range responseCases {
		if len(tc.in) <= maxSeed {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(typicalResponse))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h, h2 ResponseHead
		src := bytes.NewReader(data)
		br := bufio.NewReader(src)
		err := h.Read(br, Limits{})
		err2 := h2.Read(bufio.NewReaderSize(oneByte(data), 16), Limits{})
		checkSameErr(t, err, err2)
		if err != nil {
			checkReadErr(t, err, 502)
			return
		}
		if !bytes.Equal(h.Raw, h2.Raw) || !slices.EqualFunc(h.Fields, h2.Fields, equalField) {
			t.Fatalf("the result depends on read sizes:\n%q\n%q", h.Raw, h2.Raw)
		}
		consumed := len(data) - src.Len() - br.Buffered()
		if !bytes.Equal(data[:consumed], h.Raw) || !bytes.HasSuffix(h.Raw, []byte("\r\n\r\n")) {
			t.Fatalf("Raw %q is not the input %q", h.Raw, data[:consumed])
		}
		if h.Status < 100 || h.Status > 599 {
			t.Fatalf("accepted status %d", h.Status)
		}
		for _, m := range []string{"GET", "HEAD", "CONNECT"} {
			if k := h.Body([]byte(m)); k == LengthBody && h.ContentLength <= 0 || k == ChunkedBody && !h.Chunked {
				t.Fatalf("Body(%s) = %v with length %d chunked %v", m, k, h.ContentLength, h.Chunked)
			}
		}

		// net/http refuses codings other than chunked, which we pass on to the client;
		// everything else we accept it must read the same way.
		req := &http.Request{Method: "GET"}
		resp, gerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(h.Raw)), req)
		if gerr != nil {
			if h.Chunked && codings(&h) == 1 || !h.Chunked && codings(&h) == 0 {
				t.Fatalf("we accept what net/http refuses (%v):\n%q", gerr, h.Raw)
			}
			return
		}
		if resp.StatusCode != h.Status {
			t.Fatalf("got status %d, net/http read %d", h.Status, resp.StatusCode)
		}
		if h.Body(nil) == LengthBody && resp.ContentLength != h.ContentLength {
			t.Fatalf("got length %d, net/http read %d", h.ContentLength, resp.ContentLength)
		}
		if h.Body(nil) == ChunkedBody && !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
			t.Fatalf("got chunked, net/http read coding %q", resp.TransferEncoding)
		}
	})
}

// codings counts the transfer codings in a response head.
func codings(h *ResponseHead) int {
	n := 0
	for _, f := range h.Fields {
		if equalFold(f.Name, "transfer-encoding") {
			n += strings.Count(string(f.Value), ",") + 1
		}
	}
	return n
}

func FuzzChunked(f *testing.F) {
	for _, tc := range chunkedCases {
		if len(tc.in) <= maxSeed {
			f.Add([]byte(tc.in))
		}
	}
	f.Add(chunkedBody(100, 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out, out2 bytes.Buffer
		src := bytes.NewReader(data)
		br := bufio.NewReader(src)
		n, err := CopyChunked(&out, br, Limits{})
		n2, err2 := CopyChunked(&out2, bufio.NewReaderSize(oneByte(data), 16), Limits{})
		checkSameErr(t, err, err2)
		if n != int64(out.Len()) || !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("wrote %d bytes %q, not a prefix of the input", n, out.Bytes())
		}
		if err != nil {
			if err != io.ErrUnexpectedEOF {
				checkReadErr(t, err, 400, 431)
			}
			return
		}
		if n2 != n || !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("the result depends on read sizes: %d vs %d bytes", n, n2)
		}
		if consumed := len(data) - src.Len() - br.Buffered(); consumed != out.Len() {
			t.Fatalf("consumed %d bytes, wrote %d", consumed, out.Len())
		}

		want, trailer, ok := decodeChunked(out.Bytes())
		if !ok {
			t.Fatalf("accepted a body the reference decoder cannot read: %q", out.Bytes())
		}
		gbr := bufio.NewReader(bytes.NewReader(out.Bytes()))
		got, gerr := io.ReadAll(httputil.NewChunkedReader(gbr))
		if gerr != nil {
			if strings.Contains(gerr.Error(), "too much non-data") {
				return // net/http's anti-abuse ratio of extensions to data, not framing
			}
			t.Fatalf("we accept what net/http refuses (%v):\n%q", gerr, out.Bytes())
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("net/http decoded %q, want %q", got, want)
		}
		// net/http's chunked reader stops after the last chunk; the trailer section is a
		// MIME header and must take exactly the rest.
		rest, _ := io.ReadAll(gbr)
		if !bytes.Equal(rest, trailer) {
			t.Fatalf("net/http left %q after the last chunk, want %q", rest, trailer)
		}
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(trailer)))
		if _, err := tp.ReadMIMEHeader(); err != nil {
			t.Fatalf("net/http refuses the trailer section %q: %v", trailer, err)
		}
		if tp.R.Buffered() != 0 {
			t.Fatalf("trailer section %q not wholly read by net/http", trailer)
		}
	})
}

// decodeChunked is a plain reference decoder for bodies CopyChunked accepted: it returns the
// data and the trailer section (with the final CRLF).
func decodeChunked(b []byte) (data, trailer []byte, ok bool) {
	for {
		line, rest, found := bytes.Cut(b, []byte("\r\n"))
		if !found {
			return nil, nil, false
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseUint(strings.TrimRight(string(size), " \t"), 16, 64)
		if err != nil || n > uint64(len(rest)) {
			return nil, nil, false
		}
		if n == 0 {
			return data, rest, true
		}
		data = append(data, rest[:n]...)
		if !bytes.HasPrefix(rest[n:], []byte("\r\n")) {
			return nil, nil, false
		}
		b = rest[n+2:]
	}
}

// oneByte reads data one byte per read.
func oneByte(data []byte) io.Reader { return &oneByteReader{data} }

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func equalField(a, b Field) bool {
	return bytes.Equal(a.Name, b.Name) && bytes.Equal(a.Value, b.Value)
}

// checkSameErr fails unless two reads of the same bytes failed the same way.
func checkSameErr(t *testing.T, err, err2 error) {
	t.Helper()
	var we, we2 *Error
	if errors.As(err, &we) && errors.As(err2, &we2) {
		if we.Status != we2.Status {
			t.Fatalf("the status depends on read sizes: %v vs %v", err, err2)
		}
		return
	}
	if err != err2 {
		t.Fatalf("the error depends on read sizes: %v vs %v", err, err2)
	}
}

// checkReadErr fails unless err is an end of input or an *Error with one of the statuses.
func checkReadErr(t *testing.T, err error, statuses ...int) {
	t.Helper()
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return
	}
	var we *Error
	if !errors.As(err, &we) || !slices.Contains(statuses, we.Status) {
		t.Fatalf("got error %v, want an *Error with a status in %v", err, statuses)
	}
}
