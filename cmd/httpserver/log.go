package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// The request log (-l FILE) and the counters behind GET /healthcheck (-l or -L).
//
// Every request that gets an answer makes one entry:
//
//	METHOD /name length N        GET, PUT and HEAD that succeeded (200 or 201)
//	00000000 68 65 6c 6c 6f      the body as hex, GET and PUT only: the offset as 8
//	...                          zero-padded decimal digits, then up to 20 bytes as " %02x"
//	========
//
//	FAIL: <request line> --- response <code>
//	========
//
// Entries never interleave: an entry is written only by the holder of the log token (a
// channel of capacity 1), from its first line to its separator, and flushed before the token
// goes back. The counters are updated under the same token, so a health check counts exactly
// the entries before its own.
//
// Where the hex comes from: never from the network. For GET it is read from the descriptor
// that is then sent, before the response goes out (files are only ever replaced by rename,
// so an open descriptor's content is what the client receives); for PUT it is read back from
// the completed temporary file after it has been renamed into place, before the 201 goes out.
// So the token is never held while waiting on a client, a slow client cannot stall other
// requests' entries, and an entry is in the log (and counted) before its client sees the
// response. Memory stays flat for any body size: the hex is streamed through a fixed buffer.
// The cost is that a GET whose client goes away mid-body is still logged as a GET; a PUT
// whose body does not arrive whole is logged as FAIL.

// hexPerLine is how many body bytes one hex line shows.
const hexPerLine = 20

// hexLineMax is the longest hex line for offsets below 10^8: 8 digits, 20 × " xx", newline.
// (Offsets of 10^8 and more take a digit or two more.)
const hexLineMax = 8 + 3*hexPerLine + 1

// logSeparator ends every entry.
const logSeparator = "========\n"

// requestLog owns the log file and the request counters. A nil *requestLog means logging is
// off: its methods do nothing and /healthcheck is 404.
type requestLog struct {
	// token has capacity 1; whoever has put a value in it owns every field below until it
	// takes the value back out.
	token chan struct{}

	// errors counts the answers other than 200 and 201; entries counts every answer.
	errors, entries int64
	// w buffers the log file; nil with -L (counters only) or after a write failed.
	w *bufio.Writer
	// f is the log file, nil with -L.
	f *os.File
	// stderr receives the one message about a failed log write.
	stderr io.Writer
	// readBuf is the scratch buffer for reading a body back for its hex; its length is a
	// multiple of hexPerLine so that lines never straddle two reads.
	readBuf []byte
	// line is the scratch buffer for a first line or a FAIL line.
	line []byte
	// out is the scratch buffer for the hex of one readBuf.
	out []byte
}

// openLog prepares logging: path "" means -L (counters only). With a path, the file is
// created or truncated, and for a regular file one byte is written and truncated away again,
// so that an unwritable path or a full disk is an error now rather than later.
func openLog(path string, errors, entries int64, stderr io.Writer) (*requestLog, error) {
	l := &requestLog{
		token:   make(chan struct{}, 1),
		errors:  errors,
		entries: entries,
		stderr:  stderr,
		readBuf: make([]byte, 3276*hexPerLine),
		line:    make([]byte, 0, 128),
	}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if _, err := f.Write([]byte{'\n'}); err != nil {
			f.Close()
			return nil, fmt.Errorf("log file %s: cannot write: %w", path, err)
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("log file %s: %w", path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("log file %s: %w", path, err)
		}
	}
	l.f = f
	l.w = newLogWriter(f)
	l.out = make([]byte, 0, len(l.readBuf)/hexPerLine*(hexLineMax+2))
	return l, nil
}

// newLogWriter buffers writes to the log file; every entry is flushed as it ends.
func newLogWriter(f *os.File) *bufio.Writer { return bufio.NewWriterSize(f, 64<<10) }

// lock takes the log token, waiting for the entry being written to end.
func (l *requestLog) lock() { l.token <- struct{}{} }

// unlock gives the log token back.
func (l *requestLog) unlock() { <-l.token }

// success logs a request that was answered 200 or 201: "METHOD /name length n", then for GET
// and PUT the hex of the first n bytes of body, then the separator.
func (l *requestLog) success(m method, name []byte, n int64, body io.ReaderAt) {
	if l == nil {
		return
	}
	l.lock()
	defer l.unlock()
	l.entries++
	if l.w == nil {
		return
	}
	l.writeFirstLine(m, name, n)
	if m != methodHead {
		l.hexdumpAt(body, n)
	}
	l.finish()
}

// fail logs a request answered with code: "FAIL: <line> --- response <code>", the separator.
func (l *requestLog) fail(line []byte, code int) {
	if l == nil {
		return
	}
	l.lock()
	defer l.unlock()
	l.errors++
	l.entries++
	if l.w == nil {
		return
	}
	b := append(l.line[:0], "FAIL: "...)
	b = append(b, line...)
	b = append(b, " --- response "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, '\n')
	l.line = b
	_, _ = l.w.Write(b)
	l.finish()
}

// health answers a health check: it appends "<errors>\n<entries>" as they stand before this
// request to dst, then logs the check (a GET of that body) and counts it, all under one token
// so no other entry can come between the figures and the check's own entry.
func (l *requestLog) health(name []byte, dst []byte) []byte {
	l.lock()
	defer l.unlock()
	dst = strconv.AppendInt(dst, l.errors, 10)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, l.entries, 10)
	l.entries++
	if l.w == nil {
		return dst
	}
	l.writeFirstLine(methodGet, name, int64(len(dst)))
	l.writeHex(0, dst)
	l.finish()
	return dst
}

// writeFirstLine writes "METHOD /name length n\n". Call with the token.
func (l *requestLog) writeFirstLine(m method, name []byte, n int64) {
	b := append(l.line[:0], m.String()...)
	b = append(b, " /"...)
	b = append(b, name...)
	b = append(b, " length "...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '\n')
	l.line = b
	_, _ = l.w.Write(b)
}

// hexdumpAt writes the hex lines of the first n bytes of r. A body that turns out shorter
// than n (a file truncated behind the server's back) ends the hex early. Call with the token.
func (l *requestLog) hexdumpAt(r io.ReaderAt, n int64) {
	for off := int64(0); off < n; {
		want := min(int64(len(l.readBuf)), n-off)
		got, err := r.ReadAt(l.readBuf[:want], off)
		l.writeHex(off, l.readBuf[:got])
		off += int64(got)
		if got == 0 || err != nil && int64(got) < want {
			return
		}
	}
}

// writeHex writes the hex lines of p, whose first byte is at offset off (a multiple of
// hexPerLine), formatted into l.out and written at once. Call with the token.
func (l *requestLog) writeHex(off int64, p []byte) {
	l.out = appendHexLines(l.out[:0], off, p)
	_, _ = l.w.Write(l.out)
}

// finish writes the separator and flushes the entry to the file. After a failed write the
// log file is given up (one message on stderr) and only the counters go on. Call with the
// token.
func (l *requestLog) finish() {
	_, _ = l.w.WriteString(logSeparator)
	if err := l.w.Flush(); err != nil {
		fmt.Fprintf(l.stderr, "httpserver: writing the log failed, no more entries will be written: %v\n", err)
		l.w = nil
	}
}

// close flushes and closes the log file. It waits for the entry being written.
func (l *requestLog) close() error {
	if l == nil {
		return nil
	}
	l.lock()
	defer l.unlock()
	if l.f == nil {
		return nil
	}
	var err error
	if l.w != nil {
		err = l.w.Flush()
		l.w = nil
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// hexPairs holds the two lowercase hex digits of every byte value, byte c at 2c.
const hexPairs = "" +
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" +
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" +
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" +
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" +
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" +
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

// appendHexLines appends the hex lines of p, whose first byte is at offset off, to dst:
// for every hexPerLine bytes, the offset as at least 8 zero-padded decimal digits, then
// " %02x" for each byte, then a newline. Given the capacity, it does not allocate.
func appendHexLines(dst []byte, off int64, p []byte) []byte {
	// digits is off in decimal while off < 10^8, carried forward line by line.
	var digits [8]byte
	for i, v := 7, off; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	for len(p) > 0 {
		k := min(hexPerLine, len(p))
		if off < 1e8 {
			dst = append(dst, digits[:]...)
		} else {
			dst = strconv.AppendInt(dst, off, 10)
		}
		n := len(dst)
		dst = slices.Grow(dst, 3*k+1)[:n+3*k+1]
		if k == hexPerLine { // a full line: fixed sizes, no bounds checks
			out, in := (*[3 * hexPerLine]byte)(dst[n:]), (*[hexPerLine]byte)(p)
			for i, c := range in {
				out[3*i] = ' '
				out[3*i+1] = hexPairs[2*int(c)]
				out[3*i+2] = hexPairs[2*int(c)+1]
			}
		} else {
			out := dst[n:]
			for i, c := range p[:k] {
				out[3*i] = ' '
				out[3*i+1] = hexPairs[2*int(c)]
				out[3*i+2] = hexPairs[2*int(c)+1]
			}
		}
		dst[len(dst)-1] = '\n'
		off += int64(k)
		p = p[k:]
		for i, carry := 7, k; i >= 0 && carry > 0; i-- {
			v := int(digits[i]-'0') + carry
			digits[i] = byte('0' + v%10)
			carry = v / 10
		}
	}
	return dst
}
