package wire

import (
	"bufio"
	"io"
)

// CopyChunked copies one chunked body (RFC 9112 §7.1) from br to w verbatim: chunk-size lines
// with their extensions, chunk data, the last chunk, the trailer section and the final CRLF,
// byte for byte as received, validating the framing as the bytes pass. It stops exactly at the
// end of the body, so a pipelined message stays in br. It returns the bytes written.
//
// The bytes go from br's buffer to w a buffer at a time (Peek and Discard), whatever the
// chunk sizes, so memory stays flat for a body of any size and nothing is allocated. A write
// is made only of bytes already validated; when the input turns out malformed, the bytes before
// the fault may already have been written, so the destination must then be discarded too.
//
// What it enforces:
//
//   - chunk-size: 1 to 16 hex digits with a value below 2^62, no sign;
//   - chunk-ext: *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) as in RFC
//     9112 §7.1.1, except that no whitespace may follow the chunk size (net/http and others
//     refuse "5 ;x") or end the line;
//   - the whole chunk-size line, extensions and CRLF included, at most 4096 bytes;
//   - every line ends in CRLF (no bare LF, no bare CR), chunk data is followed by CRLF;
//   - trailer fields are field lines as in a head (token name, colon with no space before it,
//     no obs-fold, no control characters), no more than lim.MaxHeaders of them and no more
//     than lim.MaxHeaderBytes in all (431 beyond that).
//
// Errors: an *Error (Status 400, or 431 for the trailer limits; a caller copying a response
// maps it to 502), io.ErrUnexpectedEOF when br ends inside the body, w's error as w returned it
// (io.ErrShortWrite for a short write), or br's error unwrapped.
func CopyChunked(w io.Writer, br *bufio.Reader, lim Limits) (int64, error) {
	p := chunkParser{maxTrailerBytes: lim.maxHeaderBytes(), maxTrailers: lim.maxHeaders()}
	var written int64
	for {
		buf, err := window(br)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return written, err
		}
		n, r := p.feed(buf, nil)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr == nil && m != n {
				werr = io.ErrShortWrite
			}
			br.Discard(n)
			if werr != nil {
				return written, werr
			}
		}
		if r != rNone {
			return written, requestError(r)
		}
		if p.state == csDone {
			return written, nil
		}
	}
}

// chunkParser is the chunked-body grammar as a state machine over bytes, so that a body can
// be validated a buffer at a time, whatever the buffer boundaries.
type chunkParser struct {
	state        uint8
	digits       uint8  // hex digits of the chunk size so far
	size         uint64 // the chunk size being read, then the data bytes left in the chunk
	line         int    // bytes of the current chunk-size line so far
	trailerBytes int
	trailers     int

	maxTrailerBytes, maxTrailers int
}

// States. The names say what the parser expects next.
const (
	csSize         uint8 = iota // a hex digit of the chunk size (the first one, or more)
	csExtName                   // after ';' (and BWS): the extension name, a token
	csExtNameMore               // inside the name: more of it, BWS, '=', ';' or CR
	csExtNameBWS                // whitespace after the name: more, '=' or ';'
	csExtValue                  // after '=' (and BWS): a token or a quoted-string
	csExtToken                  // inside a token value: more of it, BWS, ';' or CR
	csExtQuoted                 // inside a quoted-string
	csExtQuotedBS               // after a backslash inside a quoted-string
	csExtQuotedEnd              // after a quoted-string: BWS, ';' or CR
	csExtValueBWS               // whitespace after a value: more, or ';'
	csSizeLF                    // the LF of the chunk-size line
	csData                      // chunk data (size bytes left)
	csDataCR                    // the CR after chunk data
	csDataLF                    // the LF after chunk data
	csTrailerStart              // a trailer field name, or the CR of the final CRLF
	csTrailerName               // more of the name, or ':'
	csTrailerValue              // the field value up to its CR
	csTrailerLF                 // the LF of a trailer line
	csFinalLF                   // the LF of the final CRLF
	csDone                      // the body is complete
)

// feed consumes bytes of b and returns how many it consumed: all of b, or up to and including
// the final LF, or up to (not including) the byte that broke the grammar, with the reason. If
// data is not nil it gets every run of chunk data as it is consumed (a subslice of b).
func (p *chunkParser) feed(b []byte, data func([]byte)) (int, reason) {
	i := 0
	for i < len(b) {
		if p.state == csData {
			k := uint64(len(b) - i)
			if k >= p.size {
				k = p.size
				p.state = csDataCR
			}
			p.size -= k
			if data != nil && k > 0 {
				data(b[i : i+int(k)])
			}
			i += int(k)
			continue
		}
		c := b[i]
		if p.state <= csSizeLF {
			p.line++
			if p.line > maxChunkLine {
				return i, rChunkLineTooLong
			}
		} else if p.state >= csTrailerStart {
			p.trailerBytes++
			if p.trailerBytes > p.maxTrailerBytes {
				return i, rTrailerTooLarge
			}
		}
		if r := p.step(c); r != rNone {
			return i, r
		}
		i++
		if p.state == csDone {
			break
		}
	}
	return i, rNone
}

// step advances the state machine over one byte outside chunk data.
func (p *chunkParser) step(c byte) reason {
	ows := c == ' ' || c == '\t'
	tok := class[c]&cToken != 0
	switch p.state {
	case csSize:
		if class[c]&cHex != 0 {
			if p.digits == 16 || p.size >= 1<<58 {
				return rChunkSize // more than 16 digits, or 2^62 and above
			}
			p.digits++
			p.size = p.size<<4 | uint64(unhex(c))
			return rNone
		}
		if p.digits == 0 {
			return rChunkSize
		}
		// No whitespace after the size, even before a ';' where RFC 9112 allows BWS:
		// net/http and other parsers refuse "5 ;x", and a size one reader takes and
		// another refuses is how a body gets two lengths.
		switch c {
		case '\r':
			p.state = csSizeLF
		case ';':
			p.state = csExtName
		default:
			return rChunkSize
		}
	case csExtName:
		switch {
		case tok:
			p.state = csExtNameMore
		case !ows:
			return rChunkExtension
		}
	case csExtNameMore:
		switch {
		case tok:
		case c == '\r':
			p.state = csSizeLF
		case c == ';':
			p.state = csExtName
		case c == '=':
			p.state = csExtValue
		case ows:
			p.state = csExtNameBWS
		default:
			return rChunkExtension
		}
	case csExtNameBWS:
		switch {
		case c == ';':
			p.state = csExtName
		case c == '=':
			p.state = csExtValue
		case !ows:
			return rChunkExtension
		}
	case csExtValue:
		switch {
		case tok:
			p.state = csExtToken
		case c == '"':
			p.state = csExtQuoted
		case !ows:
			return rChunkExtension
		}
	case csExtToken:
		switch {
		case tok:
		case c == '\r':
			p.state = csSizeLF
		case c == ';':
			p.state = csExtName
		case ows:
			p.state = csExtValueBWS
		default:
			return rChunkExtension
		}
	case csExtQuoted:
		switch {
		case c == '"':
			p.state = csExtQuotedEnd
		case c == '\\':
			p.state = csExtQuotedBS
		case class[c]&cQDText == 0:
			return rChunkExtension
		}
	case csExtQuotedBS:
		if class[c]&cValue == 0 {
			return rChunkExtension
		}
		p.state = csExtQuoted
	case csExtQuotedEnd:
		switch {
		case c == '\r':
			p.state = csSizeLF
		case c == ';':
			p.state = csExtName
		case ows:
			p.state = csExtValueBWS
		default:
			return rChunkExtension
		}
	case csExtValueBWS:
		switch {
		case c == ';':
			p.state = csExtName
		case !ows:
			return rChunkExtension // including CR: no whitespace at the end of the line
		}
	case csSizeLF:
		if c != '\n' {
			return rBareCR
		}
		p.line, p.digits = 0, 0
		if p.size == 0 {
			p.state = csTrailerStart // the last chunk
		} else {
			p.state = csData
		}
	case csDataCR:
		if c != '\r' {
			return rChunkData
		}
		p.state = csDataLF
	case csDataLF:
		if c != '\n' {
			return rChunkData
		}
		p.state = csSize
	case csTrailerStart:
		switch {
		case c == '\r':
			p.state = csFinalLF
		case tok:
			if p.trailers == p.maxTrailers {
				return rTrailerTooLarge
			}
			p.trailers++
			p.state = csTrailerName
		default:
			return rTrailer // obs-fold, empty name, bare LF, ...
		}
	case csTrailerName:
		switch {
		case tok:
		case c == ':':
			p.state = csTrailerValue
		default:
			return rTrailer
		}
	case csTrailerValue:
		switch {
		case c == '\r':
			p.state = csTrailerLF
		case class[c]&cValue == 0:
			return rTrailer
		}
	case csTrailerLF:
		if c != '\n' {
			return rBareCR
		}
		p.state = csTrailerStart
	case csFinalLF:
		if c != '\n' {
			return rBareCR
		}
		p.state = csDone
	}
	return rNone
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// ChunkScanner validates a chunked body a buffer at a time, for callers that do their own I/O
// (the event loop): the same grammar and limits as CopyChunked. The zero value is not ready;
// use NewChunkScanner.
type ChunkScanner struct {
	p    chunkParser
	resp bool
}

// NewChunkScanner returns a scanner for one chunked body with lim's trailer limits; response
// makes its errors 502s.
func NewChunkScanner(lim Limits, response bool) ChunkScanner {
	return ChunkScanner{p: chunkParser{maxTrailerBytes: lim.maxHeaderBytes(), maxTrailers: lim.maxHeaders()}, resp: response}
}

// Feed takes the next bytes of the body and returns how many of them belong to it (all of b, or
// up to and including the body's last byte), whether the body is complete, and an *Error when
// the bytes break the grammar (n then counts the valid bytes before the fault). data, if not
// nil, gets each run of chunk data (to undo the chunking); a subslice of b.
func (s *ChunkScanner) Feed(b []byte, data func([]byte)) (n int, done bool, err error) {
	n, r := s.p.feed(b, data)
	if r != rNone {
		if s.resp {
			return n, false, responseError(r)
		}
		return n, false, requestError(r)
	}
	return n, s.p.state == csDone, nil
}

// Done reports whether the body is complete.
func (s *ChunkScanner) Done() bool { return s.p.state == csDone }
