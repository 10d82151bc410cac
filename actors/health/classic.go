package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// Counters are a backend's own figures, read from a healthy answer.
type Counters struct {
	// Errors is how many responses the backend sent other than 200 and 201.
	Errors int64
	// Entries is how many requests the backend has logged.
	Entries int64
}

// Parser judges a backend's answer to GET /healthcheck.
type Parser interface {
	// Parse reads one answer from r and returns the counters it carries, or an error saying
	// why the answer shows the backend down. It reads no further than the answer, and never
	// waits for bytes the answer does not need. Errors from r itself (a deadline, a reset)
	// come back wrapped, so errors.As finds the net.Error.
	Parse(r *bufio.Reader) (Counters, error)
}

// The ways an answer shows a backend down, besides the errors of the connection itself.
// Parse wraps them with details; compare with errors.Is.
var (
	ErrNotHTTP  = errors.New("health: answer is not an HTTP response")
	ErrStatus   = errors.New("health: status is not 200")
	ErrNoLength = errors.New("health: answer has no Content-Length")
	ErrLength   = errors.New("health: body does not match Content-Length")
	ErrBody     = errors.New("health: body is not two counters")
)

// maxCounterDigits is the number of decimal digits of the largest int64.
const maxCounterDigits = 19

// maxBody is the longest body a healthy answer can have: two counters, the newline between them
// and an optional trailing newline. A longer Content-Length is refused without reading the body.
const maxBody = 2*maxCounterDigits + 2

// Classic parses the classic httpserver's answer, for example
//
//	HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n2\n100
//
// The answer is healthy when the status is 200, a Content-Length header is present and the body
// is exactly that long, and the body is two non-negative decimal integers (errors, then entries)
// separated by one '\n'. The contract requires no trailing newline; one is tolerated, since a
// backend that adds it is still answering correctly. Signs, spaces, '\r' and anything else are
// malformed, and so is a counter longer than 19 digits or past the range of an int64.
//
// "Exactly that long" is checked as far as it can be without waiting: a body shorter than its
// Content-Length fails when the connection closes (or at the deadline), and bytes past it fail
// when they have already arrived with the body. Framing is read by net/http's ReadResponse,
// which accepts any HTTP/1.x status line; this is not the hot path.
type Classic struct{}

// Parse implements Parser.
func (Classic) Parse(r *bufio.Reader) (Counters, error) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return Counters{}, readError("read answer head", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Counters{}, fmt.Errorf("%w: got %d", ErrStatus, resp.StatusCode)
	}
	if resp.ContentLength < 0 {
		// net/http drops Content-Length when the body is chunked; either way the length is not
		// declared the way the contract requires.
		if len(resp.TransferEncoding) > 0 {
			return Counters{}, fmt.Errorf("%w: Transfer-Encoding %v", ErrNoLength, resp.TransferEncoding)
		}
		return Counters{}, ErrNoLength
	}
	if resp.ContentLength > maxBody {
		return Counters{}, fmt.Errorf("%w: Content-Length %d is longer than any two counters", ErrBody, resp.ContentLength)
	}
	var buf [maxBody]byte
	body := buf[:resp.ContentLength]
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Counters{}, fmt.Errorf("%w: connection closed before %d body bytes", ErrLength, resp.ContentLength)
		}
		return Counters{}, readError("read answer body", err)
	}
	if n := r.Buffered(); n > 0 {
		return Counters{}, fmt.Errorf("%w: %d bytes past Content-Length %d", ErrLength, n, resp.ContentLength)
	}
	return parseCounters(body)
}

// readError classifies an error from reading the answer: the connection's own failures (a
// deadline, a reset, a close before the answer was complete) are wrapped as they are; anything
// else net/http reports is a malformed answer.
func readError(op string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%w: %v", ErrNotHTTP, err)
}

// parseCounters parses a health body: "<errors>\n<entries>", with an optional trailing '\n'.
func parseCounters(body []byte) (Counters, error) {
	b := body
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return Counters{}, fmt.Errorf("%w: %q", ErrBody, body)
	}
	errs, ok1 := parseCounter(b[:i])
	entries, ok2 := parseCounter(b[i+1:])
	if !ok1 || !ok2 {
		return Counters{}, fmt.Errorf("%w: %q", ErrBody, body)
	}
	return Counters{Errors: errs, Entries: entries}, nil
}

// parseCounter parses a non-empty run of decimal digits that fits in an int64.
func parseCounter(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > maxCounterDigits {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// healthRequest returns the classic check's request for the backend at addr: exactly the
// contract's request line and a Host header, nothing more (no Connection: close; the answer is
// read by its Content-Length).
func healthRequest(addr string) []byte {
	return []byte("GET /healthcheck HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
}

// classicCheck is the classic check of one backend: it sends healthRequest and judges the
// answer with Classic. A passed check is counted.
type classicCheck struct {
	req []byte // read-only
}

func newClassicCheck(addr string) classicCheck {
	return classicCheck{req: healthRequest(addr)}
}

// Check implements Checker.
func (c classicCheck) Check(conn net.Conn) (Result, error) {
	if _, err := conn.Write(c.req); err != nil {
		return Result{}, fmt.Errorf("write request: %w", err)
	}
	lr := &io.LimitedReader{R: conn, N: maxAnswer}
	counters, err := Classic{}.Parse(bufio.NewReaderSize(lr, 1024))
	if err != nil {
		if lr.N == 0 {
			return Result{}, fmt.Errorf("%w: no complete answer in %d bytes", ErrNotHTTP, maxAnswer)
		}
		return Result{}, err
	}
	return Result{Counted: true, Counters: counters}, nil
}

// Compile-time interface checks.
var (
	_ Parser  = Classic{}
	_ Checker = classicCheck{}
)
