package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

type chunkedCase struct {
	name   string
	in     string // the body, possibly followed by what comes after it
	lim    Limits
	body   string // the length of the accepted body is len(body); in must start with it
	status int    // the *Error status; 0 when accepted
	err    error  // another error CopyChunked must return, when status is 0
}

const next = "GET / HTTP/1.1\r\n" // a pipelined request after the body

var chunkedCases = []chunkedCase{
	// --- accepted ---

	// One chunk, the last chunk, no trailers.
	{name: "simple", in: "5\r\nhello\r\n0\r\n\r\n", body: "5\r\nhello\r\n0\r\n\r\n"},
	// The copy stops at the end of the body: the next request stays in the reader.
	{name: "stops at end", in: "5\r\nhello\r\n0\r\n\r\n" + next, body: "5\r\nhello\r\n0\r\n\r\n"},
	// An empty body.
	{name: "empty", in: "0\r\n\r\n" + next, body: "0\r\n\r\n"},
	// Hex digits in either case, and leading zeros.
	{name: "hex", in: "a\r\n0123456789\r\nA\r\n0123456789\r\n0010\r\n0123456789abcdef\r\n000\r\n\r\n", body: "a\r\n0123456789\r\nA\r\n0123456789\r\n0010\r\n0123456789abcdef\r\n000\r\n\r\n"},
	// Chunk data may contain CR, LF and anything else: it is counted, not parsed.
	{name: "binary data", in: "6\r\n\r\n\x00\n\r\xff\r\n0\r\n\r\n", body: "6\r\n\r\n\x00\n\r\xff\r\n0\r\n\r\n"},
	// Extensions: a name, a token value, a quoted value with an escape, several.
	{name: "extensions", in: "5;a\r\nhello\r\n5;a=b;c=\"d \\\" e\"\r\nhello\r\n0;last\r\n\r\n", body: "5;a\r\nhello\r\n5;a=b;c=\"d \\\" e\"\r\nhello\r\n0;last\r\n\r\n"},
	// BWS after ';', around '=' and before the next ';' (RFC 9112 §7.1.1).
	{name: "extension whitespace", in: "5; a = b \t; c ;d=\"e\" ;f\r\nhello\r\n0\r\n\r\n", body: "5; a = b \t; c ;d=\"e\" ;f\r\nhello\r\n0\r\n\r\n"},
	// BWS between the size and ';' is in the grammar, but net/http refuses it: so do we.
	{name: "size space before extension", in: "5 ;a\r\nhello\r\n0\r\n\r\n", status: 400},
	// Trailer fields after the last chunk.
	{name: "trailers", in: "5\r\nhello\r\n0\r\nX-Sum: 123\r\nX-Empty:\r\n\r\n" + next, body: "5\r\nhello\r\n0\r\nX-Sum: 123\r\nX-Empty:\r\n\r\n"},
	// Trailers exactly at MaxHeaders.
	{name: "trailers at limit", in: "0\r\nA: 1\r\nB: 2\r\n\r\n", lim: Limits{MaxHeaders: 2}, body: "0\r\nA: 1\r\nB: 2\r\n\r\n"},
	// The largest chunk size accepted, 2^62-1: the size line is fine, the data never comes.
	{name: "max size", in: "3fffffffffffffff\r\nabc", body: "3fffffffffffffff\r\nabc", err: io.ErrUnexpectedEOF},
	// A chunk-size line with extensions just under the 4096-byte limit.
	{name: "line at limit", in: "1;x=" + strings.Repeat("y", maxChunkLine-6) + "\r\nz\r\n0\r\n\r\n", body: "1;x=" + strings.Repeat("y", maxChunkLine-6) + "\r\nz\r\n0\r\n\r\n"},

	// --- chunk size ---

	// An empty size: "\r\n" where the size should be.
	{name: "size empty", in: "\r\nhello\r\n0\r\n\r\n", status: 400},
	// A non-hex digit.
	{name: "size not hex", in: "g\r\n", status: 400},
	// A 0x prefix: strtol reads it, we do not.
	{name: "size 0x", in: "0x5\r\nhello\r\n0\r\n\r\n", status: 400},
	// A sign.
	{name: "size plus", in: "+5\r\nhello\r\n0\r\n\r\n", status: 400},
	{name: "size minus", in: "-5\r\nhello\r\n0\r\n\r\n", status: 400},
	// Whitespace before the size.
	{name: "size leading space", in: " 5\r\nhello\r\n0\r\n\r\n", status: 400},
	// Whitespace after the size with no extension: not in the grammar, and parsers differ.
	{name: "size trailing space", in: "5 \r\nhello\r\n0\r\n\r\n", status: 400},
	// A tab after the size, same.
	{name: "size trailing tab", in: "5\t\r\nhello\r\n0\r\n\r\n", status: 400},
	// 2^62: past the limit, a step from overflowing the int64 arithmetic of a receiver.
	{name: "size 2^62", in: "4000000000000000\r\n", status: 400},
	// 2^64 wraps to 0 in a 64-bit parser that does not check: the classic smuggle.
	{name: "size overflow", in: "10000000000000000\r\nhello\r\n0\r\n\r\n", status: 400},
	// 17 digits, even if the value is small (net/http refuses more than 16).
	{name: "size 17 digits", in: "00000000000000005\r\nhello\r\n0\r\n\r\n", status: 400},
	// A size ended by a bare LF.
	{name: "size bare lf", in: "5\nhello\r\n0\r\n\r\n", status: 400},
	// A size ended by a bare CR.
	{name: "size bare cr", in: "5\rhello\r\n0\r\n\r\n", status: 400},
	// A chunk-size line over 4096 bytes.
	{name: "line too long", in: "1;x=" + strings.Repeat("y", maxChunkLine-5) + "\r\nz\r\n0\r\n\r\n", status: 400},

	// --- chunk extensions ---

	// ';' with nothing after it.
	{name: "ext empty", in: "5;\r\nhello\r\n0\r\n\r\n", status: 400},
	// A value with no name.
	{name: "ext no name", in: "5;=b\r\nhello\r\n0\r\n\r\n", status: 400},
	// '=' with no value.
	{name: "ext no value", in: "5;a=\r\nhello\r\n0\r\n\r\n", status: 400},
	// A name that is not a token.
	{name: "ext bad name", in: "5;a@b\r\nhello\r\n0\r\n\r\n", status: 400},
	// Two words with only a space between.
	{name: "ext two words", in: "5;a b\r\nhello\r\n0\r\n\r\n", status: 400},
	// A value followed by a second word.
	{name: "ext value two words", in: "5;a=b c\r\nhello\r\n0\r\n\r\n", status: 400},
	// Trailing whitespace after a name, before the CRLF.
	{name: "ext trailing space", in: "5;a \r\nhello\r\n0\r\n\r\n", status: 400},
	// Trailing whitespace after a value, before the CRLF.
	{name: "ext value trailing space", in: "5;a=b\t\r\nhello\r\n0\r\n\r\n", status: 400},
	// Trailing whitespace after a quoted value, before the CRLF.
	{name: "ext quoted trailing space", in: "5;a=\"b\" \r\nhello\r\n0\r\n\r\n", status: 400},
	// An unterminated quoted string: the CRLF is inside it.
	{name: "ext unterminated quote", in: "5;a=\"b\r\nhello\r\n0\r\n\r\n", status: 400},
	// A control byte inside a quoted string.
	{name: "ext quoted ctl", in: "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n", status: 400},
	// A bare LF inside an extension.
	{name: "ext bare lf", in: "5;a\nhello\r\n0\r\n\r\n", status: 400},
	// Junk right after a quoted value.
	{name: "ext after quote", in: "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", status: 400},

	// --- data ---

	// Data longer than the size: the CRLF is not where it must be.
	{name: "data too long", in: "5\r\nhello!\r\n0\r\n\r\n", status: 400},
	// Data followed by a bare LF.
	{name: "data bare lf", in: "5\r\nhello\n0\r\n\r\n", status: 400},
	// Data followed by CR and junk.
	{name: "data cr junk", in: "5\r\nhello\rX0\r\n\r\n", status: 400},

	// --- trailers and the end ---

	// The final CRLF is a bare LF.
	{name: "final bare lf", in: "0\r\n\n", status: 400},
	// The final CR followed by junk.
	{name: "final cr junk", in: "0\r\n\rX", status: 400},
	// obs-fold in the trailers.
	{name: "trailer obs-fold", in: "0\r\nX: a\r\n b\r\n\r\n", status: 400},
	// Whitespace before a trailer's colon.
	{name: "trailer space before colon", in: "0\r\nX : a\r\n\r\n", status: 400},
	// An empty trailer name.
	{name: "trailer empty name", in: "0\r\n: a\r\n\r\n", status: 400},
	// A trailer line with no colon.
	{name: "trailer no colon", in: "0\r\nXa\r\n\r\n", status: 400},
	// A control byte in a trailer value.
	{name: "trailer ctl", in: "0\r\nX: a\x00\r\n\r\n", status: 400},
	// A trailer line ended by a bare LF.
	{name: "trailer bare lf", in: "0\r\nX: a\n\r\n", status: 400},
	// A trailer line with a bare CR.
	{name: "trailer bare cr", in: "0\r\nX: a\rb\r\n\r\n", status: 400},
	// More trailers than MaxHeaders: 431.
	{name: "too many trailers", in: "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim: Limits{MaxHeaders: 2}, status: 431},
	// More trailer bytes than MaxHeaderBytes: 431.
	{name: "trailers too large", in: "0\r\nA: " + strings.Repeat("a", 100) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 64}, status: 431},

	// --- truncated ---

	// The connection ends inside the data.
	{name: "eof in data", in: "5\r\nhel", body: "5\r\nhel", err: io.ErrUnexpectedEOF},
	// The connection ends after the last chunk, before the final CRLF.
	{name: "eof before final crlf", in: "5\r\nhello\r\n0\r\n", body: "5\r\nhello\r\n0\r\n", err: io.ErrUnexpectedEOF},
	// The connection ends before anything.
	{name: "eof at start", in: "", err: io.ErrUnexpectedEOF},
}

func TestCopyChunked(t *testing.T) {
	for _, tc := range chunkedCases {
		for _, rk := range readerKinds {
			t.Run(tc.name+"/"+rk.name, func(t *testing.T) {
				br := rk.new(tc.in)
				var out bytes.Buffer
				n, err := CopyChunked(&out, br, tc.lim)
				if n != int64(out.Len()) {
					t.Fatalf("got n %d, want %d (bytes written)", n, out.Len())
				}
				if !strings.HasPrefix(tc.in, out.String()) {
					t.Fatalf("got output %q, want a prefix of the input", out.String())
				}
				switch {
				case tc.status != 0:
					var we *Error
					if !errors.As(err, &we) || we.Status != tc.status {
						t.Fatalf("got error %v, want *Error with status %d", err, tc.status)
					}
				case tc.err != nil:
					if err != tc.err {
						t.Fatalf("got error %v, want %v", err, tc.err)
					}
				default:
					if err != nil {
						t.Fatalf("got error %v, want none", err)
					}
					if out.String() != tc.body {
						t.Fatalf("got %q, want %q", out.String(), tc.body)
					}
					rest, _ := io.ReadAll(br)
					if string(rest) != tc.in[len(tc.body):] {
						t.Fatalf("got %q left in the reader, want %q", rest, tc.in[len(tc.body):])
					}
				}
			})
		}
	}
}

// errWriter fails after accepting limit bytes.
type errWriter struct{ limit int }

var errWrite = errors.New("write failed")

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errWrite
	}
	w.limit -= len(p)
	return len(p), nil
}

// shortWriter writes less than asked without saying why.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

// TestCopyChunkedWriteErrors checks that a failing destination is reported as it is.
func TestCopyChunkedWriteErrors(t *testing.T) {
	in := "5\r\nhello\r\n0\r\n\r\n"
	n, err := CopyChunked(&errWriter{limit: 4}, bufio.NewReader(strings.NewReader(in)), Limits{})
	if err != errWrite || n != 4 {
		t.Fatalf("got %d, %v; want 4, %v", n, err, errWrite)
	}
	n, err = CopyChunked(shortWriter{}, bufio.NewReader(strings.NewReader(in)), Limits{})
	if err != io.ErrShortWrite || n != int64(len(in)/2) {
		t.Fatalf("got %d, %v; want %d, io.ErrShortWrite", n, err, len(in)/2)
	}
}

// chunkedBody builds a chunked body of total data bytes in chunks of at most chunk bytes.
func chunkedBody(total, chunk int) []byte {
	var b bytes.Buffer
	data := bytes.Repeat([]byte("0123456789abcdef"), chunk/16+1)[:chunk]
	for total > 0 {
		n := min(chunk, total)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(data[:n])
		b.WriteString("\r\n")
		total -= n
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// TestCopyChunkedConn streams a large body over net.Pipe and TCP through a small buffer.
func TestCopyChunkedConn(t *testing.T) {
	body := chunkedBody(1<<20, 100000)
	testConnTypes(t, func(t *testing.T, w, r net.Conn) {
		done := writeInPieces(w, string(body)+next, 1000, 7, 65536, 3)
		br := bufio.NewReaderSize(r, 64)
		var out bytes.Buffer
		n, err := CopyChunked(&out, br, Limits{})
		if err != nil || n != int64(len(body)) || !bytes.Equal(out.Bytes(), body) {
			t.Fatalf("got %d bytes, err %v; want %d bytes verbatim", n, err, len(body))
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != next {
			t.Fatalf("got %q after the body, want %q", rest, next)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCopyChunkedAllocs pins allocations of CopyChunked at zero, for small chunks and for a
// body many times the buffer size.
func TestCopyChunkedAllocs(t *testing.T) {
	for _, size := range []struct{ total, chunk int }{{64, 16}, {1 << 20, 8192}} {
		t.Run(fmt.Sprint(size.total), func(t *testing.T) {
			br := bufio.NewReader(&repeatReader{b: chunkedBody(size.total, size.chunk)})
			n := testing.AllocsPerRun(100, func() {
				if _, err := CopyChunked(io.Discard, br, Limits{}); err != nil {
					t.Fatal(err)
				}
			})
			if n != 0 {
				t.Fatalf("got %v allocations per copy, want 0", n)
			}
		})
	}
}
