package wire

import (
	"bufio"
	"bytes"
	"io"
)

// maxKeptHead is the largest Raw buffer a head keeps between Reads. A head that needed more
// (big cookies, an attack) gives its buffer back to the collector at the next Read, so that ten
// thousand idle connections cost ten thousand small buffers, not ten thousand large ones.
const maxKeptHead = 16 << 10

// RequestHead is one request head, parsed in place. Read fills it, reusing its buffers, so a
// connection keeps one RequestHead for all its requests and reading a head allocates nothing
// once the buffers have grown to the connection's usual head size.
//
// Every []byte field is a subslice of Raw and is valid until the next Read into the same
// RequestHead. After Read returns an error the fields are unspecified.
type RequestHead struct {
	// Raw is the whole head exactly as received, from the first byte of the request line to
	// the end of the empty line that ends the head (CRLF CRLF). Empty lines received before
	// the request line are not part of it. Raw is owned by the RequestHead.
	Raw []byte
	// Method is the request method, a token, case-sensitive ("GET").
	Method []byte
	// Target is the request target as received: origin-form ("/a?b"), absolute-form
	// ("http://host/a"), authority-form ("host:443", CONNECT only) or "*" (OPTIONS only).
	Target []byte
	// Major and Minor are the HTTP version: 1.0 or 1.1.
	Major, Minor int
	// Fields is every header field in order, as received. The slice is reused across Reads.
	Fields []Field
	// Host is the value of the Host field; nil when there is none (only in HTTP/1.0), empty
	// (not nil) when the field is present with an empty value.
	Host []byte
	// ContentLength is the Content-Length value, -1 when absent (always when Chunked).
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked. It is the only transfer coding accepted.
	Chunked bool
	// Close reports that the connection must close after this exchange: HTTP/1.1 with
	// "Connection: close", or HTTP/1.0 without "Connection: keep-alive".
	Close bool
	// Expect100 reports "Expect: 100-continue" in an HTTP/1.1 request (RFC 9110 §10.1.1 says
	// to ignore it in HTTP/1.0).
	Expect100 bool
	// Upgrade reports an HTTP/1.1 request whose Connection field has the "upgrade" token and
	// that has a non-empty Upgrade field (RFC 9110 §7.8).
	Upgrade bool
}

// Read reads one request head from br into h, reusing h's buffers. Up to four empty lines
// before the request line are skipped (RFC 9112 §2.2). It returns
//
//   - nil, with h filled in, when the head is complete and valid; br is left at the first
//     byte of the body (or of the next request);
//   - io.EOF if br ended cleanly before the first byte of a request (empty lines aside);
//   - io.ErrUnexpectedEOF if br ended inside the head;
//   - the error br returned, unwrapped, for any other read failure (so a deadline's
//     net.Error with Timeout() passes through);
//   - an *Error for malformed input, with the status to answer (400, 414, 431, 501, 505).
//
// It works with a bufio.Reader of any size: a line longer than the buffer is gathered across
// reads. After an error the connection must not be read further.
func (h *RequestHead) Read(br *bufio.Reader, lim Limits) error {
	h.reset()
	if r, err := skipEmptyLines(br); r != rNone {
		return requestError(r)
	} else if err != nil {
		return err
	}
	raw, r, err := readHead(br, h.Raw, lim.maxRequestLine(), lim.maxHeaderBytes())
	h.Raw = raw
	if err != nil {
		return err
	}
	if r == rNone {
		r = h.parse(lim.maxHeaders())
	}
	if r != rNone {
		return requestError(r)
	}
	return nil
}

// Body tells how the request body is framed: ChunkedBody, LengthBody (ContentLength > 0) or
// NoBody. Requests are never close-delimited (RFC 9112 §6.3).
func (h *RequestHead) Body() BodyKind {
	switch {
	case h.Chunked:
		return ChunkedBody
	case h.ContentLength > 0:
		return LengthBody
	}
	return NoBody
}

func (h *RequestHead) reset() {
	if cap(h.Raw) > maxKeptHead {
		h.Raw = nil
	}
	*h = RequestHead{Raw: h.Raw[:0], Fields: h.Fields[:0], ContentLength: -1}
}

// skipEmptyLines discards up to maxEmptyLines CRLFs waiting in front of a request line. It
// returns io.EOF when br ends cleanly after them.
func skipEmptyLines(br *bufio.Reader) (reason, error) {
	for n := 0; ; n++ {
		b, err := br.Peek(2)
		if len(b) == 2 {
			if b[0] != '\r' || b[1] != '\n' {
				return rNone, nil
			}
			if n == maxEmptyLines {
				return rEmptyLines, nil
			}
			br.Discard(2)
			continue
		}
		if len(b) == 1 && b[0] != '\r' {
			return rNone, nil // readHead reports the error with the byte in hand
		}
		if len(b) == 1 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return rNone, err
	}
}

func (h *RequestHead) parse(maxFields int) reason {
	raw := h.Raw
	nl := bytes.IndexByte(raw, '\n') // readHead guarantees one
	if nl == 0 || raw[nl-1] != '\r' {
		return rBareLF
	}
	if r := h.parseRequestLine(raw[:nl-1]); r != rNone {
		return r
	}
	fi := fieldInfo{cl: -1}
	var r reason
	if h.Fields, r = parseFields(raw, nl+1, h.Fields, maxFields, &fi); r != rNone {
		return r
	}
	return h.frame(&fi)
}

// parseRequestLine parses method SP request-target SP HTTP-version (RFC 9112 §3): exactly two
// single spaces, nothing else.
func (h *RequestHead) parseRequestLine(line []byte) reason {
	i := 0
	for i < len(line) && class[line[i]]&cToken != 0 {
		i++
	}
	switch {
	case i == len(line):
		return rRequestLine
	case i == 0 || line[i] != ' ':
		return rMethod
	}
	h.Method = line[:i]
	rest := line[i+1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return rRequestLine // no version (HTTP/0.9), or two spaces
	}
	h.Target = rest[:sp]
	var r reason
	if h.Major, h.Minor, r = parseVersion(rest[sp+1:]); r != rNone {
		if bytes.IndexByte(rest[sp+1:], ' ') >= 0 {
			return rRequestLine
		}
		return r
	}
	return checkTarget(h.Method, h.Target)
}

// parseVersion parses "HTTP/1.0" or "HTTP/1.1". Any other well-formed "HTTP/d.d" is
// rVersionUnsupported (505); anything else is rVersion (400).
func parseVersion(v []byte) (major, minor int, r reason) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return 0, 0, rVersion
	}
	major, minor = int(v[5]-'0'), int(v[7]-'0')
	if major != 1 || minor > 1 {
		return major, minor, rVersionUnsupported
	}
	return major, minor, rNone
}

// frame applies the message-level rules of RFC 9112 §3.2 and §6 to what the fields said.
func (h *RequestHead) frame(fi *fieldInfo) reason {
	switch {
	case fi.hosts > 1:
		return rHostRepeated
	case fi.hosts == 1:
		if !validHost(fi.host) {
			return rHost
		}
		h.Host = fi.host
	case h.Minor == 1:
		return rHostMissing
	}
	if fi.te {
		switch {
		case h.Minor == 0:
			// An HTTP/1.0 recipient may not know chunked; RFC 9112 §6.1 says to treat
			// the framing as faulty.
			return rTransferEncodingHTTP10
		case fi.cl >= 0:
			return rBothLengthAndChunked
		case fi.chunked > 1:
			return rChunkedRepeated
		case !fi.lastChunked:
			return rChunkedNotFinal // RFC 9112 §6.3: 400
		case fi.otherCoding:
			return rCodingUnsupported // "gzip, chunked": we cannot vouch for it; 501
		}
		h.Chunked = true
	} else {
		h.ContentLength = fi.cl
	}
	if h.Minor == 1 {
		h.Close = fi.close
		h.Expect100 = fi.expect100
		h.Upgrade = fi.connUpgrade && fi.upgrade
	} else {
		h.Close = fi.close || !fi.keepAlive
	}
	return rNone
}
