package wire

import (
	"bufio"
	"bytes"
	"io"
)

// Field is one header (or trailer) field line. Name and Value are subslices of the head's Raw
// and are valid as long as Raw is: until the next Read into the same head. Name is a token as
// received (compare it case-insensitively); Value has its leading and trailing whitespace
// (OWS) removed and may be empty.
type Field struct {
	Name, Value []byte
}

// BodyKind tells how the body after a head is framed (RFC 9112 §6.3).
type BodyKind uint8

const (
	// NoBody: no body bytes follow the head (no framing fields, Content-Length: 0, or a
	// response that never has a body).
	NoBody BodyKind = iota
	// LengthBody: exactly ContentLength (> 0) bytes follow.
	LengthBody
	// ChunkedBody: a chunked body follows; copy it with CopyChunked.
	ChunkedBody
	// CloseDelimitedBody: the body runs until the server closes the connection (responses
	// only).
	CloseDelimitedBody
)

func (k BodyKind) String() string {
	switch k {
	case NoBody:
		return "NoBody"
	case LengthBody:
		return "LengthBody"
	case ChunkedBody:
		return "ChunkedBody"
	case CloseDelimitedBody:
		return "CloseDelimitedBody"
	}
	return "BodyKind(?)"
}

// window returns the bytes buffered in br, reading once if there are none. The slice is br's
// buffer: valid until the next read from br.
func window(br *bufio.Reader) ([]byte, error) {
	n := br.Buffered()
	if n == 0 {
		if _, err := br.Peek(1); err != nil {
			return nil, err
		}
		n = br.Buffered()
	}
	return br.Peek(n)
}

// readHead reads one head from br into dst[:0] and returns it: every byte up to and including
// the first empty line ("\n\r\n", or "\n\n" which the parser then refuses), copied out of
// br's buffer a window at a time (so lines longer than the buffer are fine) and nothing after
// it (a pipelined message stays in br). It enforces the first-line and size limits as it goes,
// so a peer can never make it hold more than maxHead+1 bytes, and returns the limit's reason,
// or the read error: io.EOF when br ends before the first byte, io.ErrUnexpectedEOF when it
// ends inside the head, any other error as br returned it (a deadline's net.Error passes
// through unwrapped). The result depends only on the bytes, never on how reads split them.
//
// It only finds the end; the caller validates every line.
func readHead(br *bufio.Reader, dst []byte, maxLine, maxHead int) ([]byte, reason, error) {
	dst = dst[:0]
	firstLF := -1 // the LF ending the first line, once seen
	scan := 0     // the next LF to judge is at or after dst[scan]
	for {
		win, err := window(br)
		if err != nil {
			if err == io.EOF {
				if len(dst) == 0 {
					return dst, rNone, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			return dst, rNone, err
		}
		prev := len(dst)
		if room := maxHead + 1 - prev; len(win) > room {
			win = win[:room]
		}
		var end int
		var r reason
		if prev == 0 {
			// The whole head is usually in the first window, often followed by a body or
			// the next request: scan it in place and copy only the head.
			end, scan, r = scanHead(win, 0, &firstLF, maxLine)
			if end >= 0 {
				dst = append(dst, win[:end]...)
			} else {
				dst = append(dst, win...)
			}
		} else {
			dst = append(dst, win...)
			end, scan, r = scanHead(dst, scan, &firstLF, maxLine)
		}
		if r != rNone {
			return dst, r, nil
		}
		if end >= 0 {
			br.Discard(end - prev)
			dst = dst[:end]
			if end > maxHead {
				return dst, rHeadTooLarge, nil
			}
			return dst, rNone, nil
		}
		br.Discard(len(win))
		if firstLF < 0 && len(dst) > maxLine+1 {
			// Even if the next byte is the LF of a CRLF, the line is too long.
			return dst, rRequestLineTooLong, nil
		}
		if len(dst) > maxHead {
			return dst, rHeadTooLarge, nil
		}
	}
}

// scanHead looks in b, from b[scan], for the first empty line: an LF followed by CRLF, or by
// a bare LF (which the parser then refuses; ending there means an LF-only peer is answered at
// once, not at the limit or the deadline). It returns the offset just past it, or -1 and where
// to resume once more bytes are appended to b. Each LF is judged by the one or two bytes after
// it, waiting for them if they have not come yet, so where the head ends never depends on how
// its bytes were split into reads. It sets *firstLF at the first LF, and checks the first line
// against maxLine.
func scanHead(b []byte, scan int, firstLF *int, maxLine int) (end, next int, r reason) {
	for {
		i := bytes.IndexByte(b[scan:], '\n')
		if i < 0 {
			return -1, len(b), rNone
		}
		k := scan + i
		if *firstLF < 0 {
			*firstLF = k
			if n := k - b2i(k > 0 && b[k-1] == '\r'); n > maxLine {
				return -1, k, rRequestLineTooLong
			}
		}
		switch {
		case k+1 == len(b):
			return -1, k, rNone // wait for the byte after the LF
		case b[k+1] == '\n':
			return k + 2, k, rNone
		case b[k+1] != '\r':
		case k+2 == len(b):
			return -1, k, rNone // wait for the byte after the CR
		case b[k+2] == '\n':
			return k + 3, k, rNone
		}
		scan = k + 1
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fieldInfo collects, in one pass over the field lines, what framing and connection
// management need. A zero fieldInfo (with cl set to -1) is the state before the first field.
type fieldInfo struct {
	cl          int64 // Content-Length, -1 when absent
	te          bool  // a Transfer-Encoding field is present
	chunked     int   // how many times the chunked coding appears
	lastChunked bool  // the last coding seen is chunked
	otherCoding bool  // a coding other than chunked appears
	close       bool  // Connection has "close"
	keepAlive   bool  // Connection has "keep-alive"
	connUpgrade bool  // Connection has "upgrade"
	upgrade     bool  // an Upgrade field with a non-empty value is present
	expect100   bool  // Expect has "100-continue"
	hosts       int   // how many Host fields
	host        []byte
}

// parseFields validates the field lines of raw from offset p (just after the start line) to
// the final empty line, appends each to fields and notes the framing fields in fi. raw must
// end with an empty line, "\n\r\n" or "\n\n", as readHead guarantees. It allocates only to
// grow fields.
func parseFields(raw []byte, p int, fields []Field, maxFields int, fi *fieldInfo) ([]Field, reason) {
	for {
		// raw ends with an empty line and p follows an LF before it, so raw[p] exists, and
		// every scan below stops at the final LF at the latest.
		switch raw[p] {
		case '\r':
			if p+2 == len(raw) && raw[p+1] == '\n' {
				return fields, rNone
			}
			return fields, rBareCR
		case ' ', '\t':
			// A field line starting with whitespace continues the previous one (obs-fold)
			// or, first after the start line, hides a field from parsers that ignore it.
			return fields, rObsFold
		}
		i := p
		for class[raw[i]]&cToken != 0 {
			i++
		}
		switch raw[i] {
		case ':':
		case ' ', '\t':
			return fields, rSpaceBeforeColon
		case '\r':
			return fields, rBareCR
		case '\n':
			return fields, rBareLF
		default:
			return fields, rFieldName
		}
		if i == p {
			return fields, rFieldName // empty name
		}
		name := raw[p:i]

		// The value runs to the first byte that cannot be in a value, which must be the CR
		// of the line's CRLF: one pass both validates the value and finds the line's end.
		start := skipOWS(raw, i+1)
		end := scanValue(raw, start)
		switch {
		case raw[end] == '\n':
			return fields, rBareLF
		case raw[end] != '\r':
			return fields, rFieldValue
		case raw[end+1] != '\n':
			return fields, rBareCR
		}
		v := trimOWS(raw[start:end])
		p = end + 2

		if len(fields) >= maxFields {
			return fields, rTooManyFields
		}
		// Set the new element in place: building a Field and copying it in stalls on
		// store forwarding, and this is the hottest store of the parser.
		n := len(fields)
		if n < cap(fields) {
			fields = fields[:n+1]
		} else {
			fields = append(fields, Field{})
		}
		f := &fields[n]
		f.Name, f.Value = name, v
		if r := fi.note(name, v); r != rNone {
			return fields, r
		}
	}
}

// note records a field that matters to framing or connection management.
func (fi *fieldInfo) note(name, v []byte) reason {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			fi.hosts++
			fi.host = v
		}
	case 6:
		if equalFold(name, "expect") {
			for rest := v; len(rest) > 0; {
				var e []byte
				e, rest = nextElement(rest)
				if equalFold(e, "100-continue") {
					fi.expect100 = true
				}
			}
		}
	case 7:
		if equalFold(name, "upgrade") && len(v) > 0 {
			fi.upgrade = true
		}
	case 10:
		if equalFold(name, "connection") {
			for rest := v; len(rest) > 0; {
				var e []byte
				e, rest = nextElement(rest)
				switch {
				case equalFold(e, "close"):
					fi.close = true
				case equalFold(e, "keep-alive"):
					fi.keepAlive = true
				case equalFold(e, "upgrade"):
					fi.connUpgrade = true
				}
			}
		}
	case 14:
		if equalFold(name, "content-length") {
			// Several Content-Length fields are rejected even when they agree: RFC 9110
			// §8.6 allows collapsing identical values, but nothing legitimate sends them
			// and a recipient that picks "the other one" is how smuggling starts. A list
			// ("5, 5") fails the digit check for the same reason.
			if fi.cl >= 0 {
				return rContentLengthRepeated
			}
			n, ok := parseDecimal(v)
			if !ok {
				return rContentLength
			}
			fi.cl = n
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			fi.te = true
			return fi.noteCodings(v)
		}
	}
	return rNone
}

// noteCodings parses one Transfer-Encoding value: a non-empty list of transfer-coding (RFC 9112
// §7, RFC 9110 §10.1.4), each a token with optional "; name=value" parameters, where a value
// is a token or a quoted-string. Parameters are parsed rather than skipped so that a comma
// inside a quoted-string can never be taken for a list separator. Empty list elements are
// rejected: they are legal but unused, and net/http refuses them.
func (fi *fieldInfo) noteCodings(v []byte) reason {
	i := 0
	for {
		i = skipOWS(v, i)
		start := i
		for i < len(v) && class[v[i]]&cToken != 0 {
			i++
		}
		if i == start {
			return rTransferEncoding
		}
		name := v[start:i]
		params := false
		for {
			j := skipOWS(v, i)
			if j == len(v) || v[j] != ';' {
				break
			}
			params = true
			if i = skipParam(v, j+1); i < 0 {
				return rTransferEncoding
			}
		}
		if equalFold(name, "chunked") {
			if params {
				return rTransferEncoding // chunked takes no parameters
			}
			fi.chunked++
			fi.lastChunked = true
		} else {
			fi.otherCoding = true
			fi.lastChunked = false
		}
		i = skipOWS(v, i)
		if i == len(v) {
			return rNone
		}
		if v[i] != ',' {
			return rTransferEncoding
		}
		i++
	}
}

func skipOWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// skipParam skips one parameter after its ';': BWS token BWS "=" BWS ( token / quoted-string ).
// It returns the offset after it, or -1 when it is malformed.
func skipParam(b []byte, i int) int {
	i = skipOWS(b, i)
	start := i
	for i < len(b) && class[b[i]]&cToken != 0 {
		i++
	}
	if i == start {
		return -1
	}
	i = skipOWS(b, i)
	if i == len(b) || b[i] != '=' {
		return -1
	}
	return skipTokenOrQuoted(b, skipOWS(b, i+1))
}

// skipTokenOrQuoted skips a token or a quoted-string starting at b[i] and returns the offset
// after it, or -1 when there is neither.
func skipTokenOrQuoted(b []byte, i int) int {
	if i < len(b) && b[i] == '"' {
		for i++; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				return i + 1
			case c == '\\':
				// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
				if i+1 == len(b) || class[b[i+1]]&cValue == 0 {
					return -1
				}
				i++
			case class[c]&cQDText == 0:
				return -1
			}
		}
		return -1 // unterminated
	}
	start := i
	for i < len(b) && class[b[i]]&cToken != 0 {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
