package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// MaxCheckBody is how many bytes of a response body the http check reads, at most, looking for
// Check.Body. A body whose first MaxCheckBody bytes lack it fails the check.
const MaxCheckBody = 64 << 10

// httpCheck is the http check of one backend, configured by a Check of KindHTTP. It sends
//
//	METHOD PATH HTTP/1.1\r\nHost: HOST\r\nUser-Agent: loadbalancer-health\r\nConnection: close\r\n\r\n
//
// and passes when the response's status is in the status set and, when a body substring is
// configured, the body holds it. Framing (Content-Length, chunked, or delimited by the close) is
// read by net/http's ReadResponse; this is not the hot path. Without a body substring the body
// is not read at all: the status decides as soon as the head has arrived. It learns no counters.
type httpCheck struct {
	req    []byte // read-only
	head   bool   // the method is HEAD: the response has no body
	status StatusSet
	body   []byte // the substring to find; nil: the body is not read
}

func newHTTPCheck(c *Check, addr string) *httpCheck {
	host := c.Host
	if host == "" {
		host = addr
	}
	req := []byte(c.method() + " " + c.path() + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: loadbalancer-health\r\nConnection: close\r\n\r\n")
	hc := &httpCheck{req: req, head: c.method() == http.MethodHead, status: c.status()}
	if c.Body != "" {
		hc.body = []byte(c.Body)
	}
	return hc
}

// Check implements Checker.
func (c *httpCheck) Check(conn net.Conn) (Result, error) {
	if _, err := conn.Write(c.req); err != nil {
		return Result{}, fmt.Errorf("write request: %w", err)
	}
	lr := &io.LimitedReader{R: conn, N: maxAnswer}
	br := bufio.NewReaderSize(lr, 4096)
	// ReadResponse reads the method from the request only to know that a response to HEAD
	// has no body; a nil request means GET.
	var req *http.Request
	if c.head {
		req = &http.Request{Method: http.MethodHead}
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.N == 0 {
			return Result{}, fmt.Errorf("%w: no complete response head in %d bytes", ErrNotHTTP, maxAnswer)
		}
		return Result{}, readError("read response head", err)
	}
	if !c.status.Contains(resp.StatusCode) {
		return Result{}, fmt.Errorf("status %d not in %v", resp.StatusCode, c.status)
	}
	if c.body == nil {
		return Result{}, nil
	}
	lr.N += MaxCheckBody // the head's allowance, less what it used, plus the body's
	return Result{}, c.findBody(io.LimitReader(resp.Body, MaxCheckBody))
}

// findBody reads body until it has seen c.body in it, or it ends. It keeps only the bytes that
// may start a match across two reads, however long the body.
func (c *httpCheck) findBody(body io.Reader) error {
	keep := len(c.body) - 1
	buf := make([]byte, 0, keep+4096)
	read := 0
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		read += n
		if bytes.Contains(buf, c.body) {
			return nil
		}
		if len(buf) > keep {
			buf = buf[:copy(buf, buf[len(buf)-keep:])]
		}
		switch {
		case errors.Is(err, io.EOF) && read == MaxCheckBody:
			return fmt.Errorf("body does not contain %q in its first %d bytes", c.body, MaxCheckBody)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("body does not contain %q", c.body)
		case err != nil:
			return readError("read response body", err)
		}
	}
}

// Compile-time interface checks.
var _ Checker = (*httpCheck)(nil)
