package wire

// Defaults for the zero fields of Limits.
const (
	DefaultMaxRequestLine = 8192
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxHeaders     = 100
)

// maxChunkLine is the longest chunk-size line (size, extensions and CRLF) CopyChunked takes.
// Chunk extensions are next to unused; a long line is an attack on the parser, not data.
const maxChunkLine = 4096

// maxEmptyLines is how many empty lines (CRLF) RequestHead.Read skips before a request line
// (RFC 9112 §2.2 asks a server to ignore at least one, left by clients after a body).
const maxEmptyLines = 4

// Limits bound what a peer may send in a head. Zero (or negative) fields mean the defaults.
// The zero value is ready to use.
type Limits struct {
	// MaxRequestLine is the longest request line in bytes, CRLF excluded (default 8192). A
	// longer request line is answered 414. ResponseHead.Read applies it to the status line.
	MaxRequestLine int
	// MaxHeaderBytes is the largest head in bytes, from the first byte of the request line to
	// the end of the empty line (default 65536). A larger head is answered 431. CopyChunked
	// applies it to the trailer section.
	MaxHeaderBytes int
	// MaxHeaders is the largest number of header field lines (default 100). More are answered
	// 431. CopyChunked applies it to the trailer fields.
	MaxHeaders int
}

func (l Limits) maxRequestLine() int {
	if l.MaxRequestLine > 0 {
		return l.MaxRequestLine
	}
	return DefaultMaxRequestLine
}

func (l Limits) maxHeaderBytes() int {
	if l.MaxHeaderBytes > 0 {
		return l.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (l Limits) maxHeaders() int {
	if l.MaxHeaders > 0 {
		return l.MaxHeaders
	}
	return DefaultMaxHeaders
}
