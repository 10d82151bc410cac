package main

import (
	"bufio"
	"bytes"
)

// maxHead is the largest request head accepted, in bytes: the request line, the header lines
// and the blank line that ends them, line endings included (blank lines before the request line
// count too). A larger head is answered 400 Bad Request (the contract's reason phrases have no
// 431) and the connection is closed, since where the request ends is unknown.
const maxHead = 8 << 10

// maxName is the longest resource name, in bytes.
const maxName = 27

// method is a request method this server knows, or methodOther.
type method uint8

const (
	methodOther method = iota
	methodGet
	methodHead
	methodPut
)

// String returns the method as written on the wire ("" for methodOther).
func (m method) String() string {
	switch m {
	case methodGet:
		return "GET"
	case methodHead:
		return "HEAD"
	case methodPut:
		return "PUT"
	}
	return ""
}

// request is one parsed request head. A conn owns one and reuses it for every request on the
// connection; read resets it.
//
// The parser is strict where leniency would let two parties disagree on where a request ends
// (request smuggling), and lenient only where RFC 9112 allows: a bare LF ends a line, and
// empty lines before the request line are skipped.
type request struct {
	// method is GET, HEAD or PUT; methodOther makes the request bad.
	method method
	// name is the resource name without its leading slash, a slice of nameBuf; empty when the
	// target is not /name with a valid name (the request is then bad).
	name    []byte
	nameBuf [maxName]byte
	// line is the request line as received, without its line ending, for FAIL log entries. It
	// is a copy, valid until the next read. When the head was too large it holds what fitted.
	line []byte
	// contentLength is the Content-Length header's value, -1 when the head has none.
	contentLength int64
	// closeAfter is set by a Connection header with the token "close": the connection closes
	// after the response.
	closeAfter bool
	// bad means the request is not one this server serves: the answer is 400.
	bad bool
	// unframed means where the request ends is unknown (a malformed head, an invalid
	// Content-Length, Transfer-Encoding, a head over maxHead): the connection must close after
	// the 400. unframed implies bad.
	unframed bool
}

// reset clears r for the next request, keeping its buffers.
func (r *request) reset() {
	r.method = methodOther
	r.name = nil
	r.line = r.line[:0]
	r.contentLength = -1
	r.closeAfter = false
	r.bad = false
	r.unframed = false
}

// markUnframed makes r bad and unframed.
func (r *request) markUnframed() {
	r.bad = true
	r.unframed = true
}

// read reads one request head from br, whose buffer must hold at least maxHead bytes. A nil
// error means a head was read to its end, or was found bad (r.bad) and a 400 is due. An error
// means the connection ended, failed or timed out before a whole head arrived: no answer is
// possible and the connection should just close. read does not allocate once r.line has grown
// to the longest request line seen.
func (r *request) read(br *bufio.Reader) error {
	r.reset()
	total := 0
	// The request line, after any empty lines.
	for {
		l, err := br.ReadSlice('\n')
		total += len(l)
		if err == bufio.ErrBufferFull || total > maxHead {
			r.line = append(r.line, trimEOL(l)...)
			r.markUnframed()
			return nil
		}
		if err != nil {
			return err
		}
		if l = trimEOL(l); len(l) > 0 {
			r.line = append(r.line, l...)
			break
		}
	}
	r.parseRequestLine()
	// The header lines, up to the empty line.
	for {
		l, err := br.ReadSlice('\n')
		total += len(l)
		if err == bufio.ErrBufferFull || total > maxHead {
			r.markUnframed()
			return nil
		}
		if err != nil {
			return err
		}
		l = trimEOL(l)
		if len(l) == 0 {
			return nil
		}
		r.parseHeader(l)
	}
}

// trimEOL strips a trailing LF or CRLF.
func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
	}
	return l
}

// parseRequestLine parses r.line: METHOD SP /name SP HTTP/1.1, single spaces. A line of any
// other shape, with control characters, or with another version is unframed; an unknown
// method or an invalid target only makes the request bad (its head is sound, so the
// connection can go on).
func (r *request) parseRequestLine() {
	l := r.line
	if hasCTL(l) {
		r.markUnframed()
		return
	}
	sp1 := bytes.IndexByte(l, ' ')
	if sp1 <= 0 {
		r.markUnframed()
		return
	}
	m, rest := l[:sp1], l[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		r.markUnframed()
		return
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if string(version) != "HTTP/1.1" {
		r.markUnframed()
		return
	}
	switch string(m) {
	case "GET":
		r.method = methodGet
	case "HEAD":
		r.method = methodHead
	case "PUT":
		r.method = methodPut
	default:
		r.bad = true
	}
	if len(target) < 2 || target[0] != '/' || !validName(target[1:]) {
		r.bad = true
		return
	}
	r.name = append(r.nameBuf[:0], target[1:]...)
}

// validName reports whether b is a resource name: 1 to maxName characters of A-Z a-z 0-9 _ -.
func validName(b []byte) bool {
	if len(b) == 0 || len(b) > maxName {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseHeader parses one header line, "Name: value". The headers that matter are
// Content-Length, Transfer-Encoding (not supported: unframed) and Connection; others are
// checked for shape and ignored.
func (r *request) parseHeader(l []byte) {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || hasCTL(l) || !isToken(l[:colon]) {
		// Also catches obsolete line folding (a leading space) and a space before the colon.
		r.markUnframed()
		return
	}
	name, value := l[:colon], trimOWS(l[colon+1:])
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, ok := parseLength(value)
		if !ok || (r.contentLength >= 0 && r.contentLength != n) {
			r.markUnframed()
			return
		}
		r.contentLength = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		r.markUnframed()
	case bytes.EqualFold(name, []byte("Connection")):
		for len(value) > 0 {
			var tok []byte
			tok, value, _ = bytes.Cut(value, []byte(","))
			if bytes.EqualFold(trimOWS(tok), []byte("close")) {
				r.closeAfter = true
			}
		}
	}
}

// parseLength parses a Content-Length value: one or more decimal digits, at most 1<<62.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<62-d)/10 { // checked before multiplying: n*10 could wrap negative
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// trimOWS strips spaces and tabs at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasCTL reports whether b has a control character other than a tab (a stray CR, a NUL).
func hasCTL(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// isToken reports whether b is an RFC 9110 token (a header name).
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}
