package wire

import (
	"bufio"
	"bytes"
)

// ResponseHead is one response head, parsed in place; like RequestHead it is reused across
// Reads and reading allocates nothing in steady state. Every []byte field is a subslice of Raw,
// valid until the next Read. After Read returns an error the fields are unspecified.
type ResponseHead struct {
	// Raw is the whole head exactly as received, status line through the empty line; it is
	// what goes to the client, unchanged. Raw is owned by the ResponseHead.
	Raw []byte
	// Major and Minor are the HTTP version: 1.0 or 1.1.
	Major, Minor int
	// Status is the status code, 100 to 599.
	Status int
	// Reason is the reason phrase, possibly empty.
	Reason []byte
	// Fields is every header field in order, as received. The slice is reused across Reads.
	Fields []Field
	// ContentLength is the Content-Length value, -1 when absent (always when Chunked).
	ContentLength int64
	// Chunked reports that chunked is the final transfer coding. Codings before it (as in
	// "gzip, chunked") are the client's to undo; the bytes pass through unchanged.
	Chunked bool
	// Close reports that the backend connection must close after this response: "Connection:
	// close", or HTTP/1.0 without "Connection: keep-alive". A close-delimited body (see Body)
	// ends the connection too.
	Close bool

	// closeDelimited: Transfer-Encoding without a final chunked (RFC 9112 §6.3 point 4).
	closeDelimited bool
}

// Read reads one response head from br into h, reusing h's buffers. It returns nil, io.EOF
// (br ended before the first byte: the backend closed an idle connection),
// io.ErrUnexpectedEOF, br's own error unwrapped, or an *Error with Status 502 for anything we
// will not pass on to a client.
//
// The rules are those of RequestHead.Read where they concern framing (one valid
// Content-Length at most, no bare CR or LF, no obs-fold, no whitespace before a colon, no
// control characters), because Raw reaches the client unchanged and must mean the same to it
// as to us. In addition:
//
//   - both Content-Length and Transfer-Encoding: rejected (RFC 9112 §6.3 point 3 lets a
//     recipient trust Transfer-Encoding, but then the Content-Length would have to be removed
//     before forwarding, and we forward the head unchanged);
//   - Transfer-Encoding in an HTTP/1.0 response: rejected (RFC 9112 §6.1: faulty framing);
//   - chunked more than once or before another coding: rejected;
//   - a status line may lack the space after the code; the reason phrase may be empty.
func (h *ResponseHead) Read(br *bufio.Reader, lim Limits) error {
	h.reset()
	raw, r, err := readHead(br, h.Raw, lim.maxRequestLine(), lim.maxHeaderBytes())
	h.Raw = raw
	if err != nil {
		return err
	}
	if r == rNone {
		r = h.parse(lim.maxHeaders())
	}
	if r != rNone {
		return responseError(r)
	}
	return nil
}

// Body tells how the response body is framed (RFC 9112 §6.3), given the method of the request
// it answers: NoBody for a response to HEAD, for 1xx, 204 and 304, and for a 2xx answer to
// CONNECT (tunnels are not handled here); then ChunkedBody, CloseDelimitedBody for another final
// transfer coding, LengthBody for a positive Content-Length, NoBody for Content-Length: 0, and
// CloseDelimitedBody when there is no framing field at all.
func (h *ResponseHead) Body(method []byte) BodyKind {
	switch {
	case h.Status < 200 || h.Status == 204 || h.Status == 304:
		return NoBody
	case string(method) == "HEAD":
		return NoBody
	case string(method) == "CONNECT" && h.Status < 300:
		return NoBody
	case h.Chunked:
		return ChunkedBody
	case h.closeDelimited:
		return CloseDelimitedBody
	case h.ContentLength > 0:
		return LengthBody
	case h.ContentLength == 0:
		return NoBody
	}
	return CloseDelimitedBody
}

func (h *ResponseHead) reset() {
	if cap(h.Raw) > maxKeptHead {
		h.Raw = nil
	}
	*h = ResponseHead{Raw: h.Raw[:0], Fields: h.Fields[:0], ContentLength: -1}
}

func (h *ResponseHead) parse(maxFields int) reason {
	raw := h.Raw
	nl := bytes.IndexByte(raw, '\n') // readHead guarantees one
	if nl == 0 || raw[nl-1] != '\r' {
		return rBareLF
	}
	if r := h.parseStatusLine(raw[:nl-1]); r != rNone {
		return r
	}
	fi := fieldInfo{cl: -1}
	var r reason
	if h.Fields, r = parseFields(raw, nl+1, h.Fields, maxFields, &fi); r != rNone {
		return r
	}
	return h.frame(&fi)
}

// parseStatusLine parses HTTP-version SP 3DIGIT [ SP reason-phrase ] (RFC 9112 §4), where the
// space after the code is optional when the reason is empty.
func (h *ResponseHead) parseStatusLine(line []byte) reason {
	if len(line) < 12 || line[8] != ' ' {
		return rStatusLine
	}
	var r reason
	if h.Major, h.Minor, r = parseVersion(line[:8]); r != rNone {
		return r
	}
	c := line[9:12]
	if !isDigit(c[0]) || !isDigit(c[1]) || !isDigit(c[2]) {
		return rStatusCode
	}
	h.Status = int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	if h.Status < 100 || h.Status > 599 {
		return rStatusCode
	}
	if len(line) == 12 {
		h.Reason = line[12:]
		return rNone
	}
	if line[12] != ' ' {
		return rStatusCode // a fourth digit, or junk
	}
	h.Reason = line[13:]
	for _, c := range h.Reason {
		if class[c]&cValue == 0 {
			if c == '\r' {
				return rBareCR
			}
			return rReason
		}
	}
	return rNone
}

func (h *ResponseHead) frame(fi *fieldInfo) reason {
	if fi.te {
		switch {
		case h.Minor == 0:
			return rTransferEncodingHTTP10
		case fi.cl >= 0:
			return rBothLengthAndChunked
		case fi.chunked > 1:
			return rChunkedRepeated
		case fi.lastChunked:
			h.Chunked = true
		case fi.chunked > 0:
			return rChunkedNotFinal // "chunked, gzip": chunked that is not final is never right
		default:
			h.closeDelimited = true
		}
	} else {
		h.ContentLength = fi.cl
	}
	h.Close = fi.close || h.Minor == 0 && !fi.keepAlive
	return rNone
}
