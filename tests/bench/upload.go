package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// uploadResult is one run of the upload scenario.
type uploadResult struct {
	uploads   int64
	bytes     int64         // body bytes of the completed uploads
	elapsed   time.Duration // from the start to the last completed upload
	p50, p99  time.Duration // per upload, from its first byte to its whole response
	errors    int64
	errorText string // the first error
}

// stallTimeout is how long one write of an upload may take.
const stallTimeout = 10 * time.Second

// uploadChunk is the memory the bodies are written from: zeros, 1 MiB per write call.
var uploadChunk = make([]byte, 1<<20)

// uploadOutcome is what one uploader connection reports when it stops.
type uploadOutcome struct {
	durations []time.Duration
	bytes     int64
	errors    int64
	firstErr  error
	last      time.Time // when its last upload completed
}

// runUploads keeps `workers` connections each sending PUT /upload with a size-byte body, one
// after another on the same connection (a new connection after an error or a close), until d
// has passed; uploads under way at that moment are finished and counted.
func runUploads(ctx context.Context, port, workers int, size int64, d time.Duration) uploadResult {
	start := time.Now()
	deadline := start.Add(d)
	results := make(chan uploadOutcome, workers)
	for range workers {
		go func() {
			var o uploadOutcome
			defer func() {
				if r := recover(); r != nil {
					o.errors++
					o.firstErr = fmt.Errorf("uploader panic: %v", r)
				}
				results <- o
			}()
			uploadLoop(ctx, port, size, deadline, &o)
		}()
	}
	var res uploadResult
	var all []time.Duration
	last := start
	var firstErr error
	for range workers {
		o := <-results
		all = append(all, o.durations...)
		res.bytes += o.bytes
		res.errors += o.errors
		if o.last.After(last) {
			last = o.last
		}
		if firstErr == nil {
			firstErr = o.firstErr
		}
	}
	res.uploads = int64(len(all))
	res.elapsed = last.Sub(start)
	if firstErr != nil {
		res.errorText = firstErr.Error()
	}
	if len(all) > 0 {
		slices.Sort(all)
		res.p50 = percentile(all, 0.50)
		res.p99 = percentile(all, 0.99)
	}
	return res
}

func uploadLoop(ctx context.Context, port int, size int64, deadline time.Time, o *uploadOutcome) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	head := []byte("PUT /upload HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
		strconv.FormatInt(size, 10) + "\r\n\r\n")
	var conn net.Conn
	var br *bufio.Reader
	var unwatch func() bool
	closeConn := func() {
		if conn != nil {
			unwatch()
			conn.Close()
			conn = nil
		}
	}
	defer closeConn()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if conn == nil {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				o.fail(err)
				sleepCtx(ctx, 100*time.Millisecond) // do not spin on a dead proxy
				continue
			}
			conn, br = c, bufio.NewReader(c)
			// Cancelling the run closes the connection, which unblocks any read or write.
			unwatch = context.AfterFunc(ctx, func() { c.Close() })
		}
		began := time.Now()
		keep, err := uploadOne(conn, br, head, size)
		if err != nil {
			o.fail(err)
			closeConn()
			continue
		}
		o.durations = append(o.durations, time.Since(began))
		o.bytes += size
		o.last = time.Now()
		if !keep {
			closeConn()
		}
	}
}

// uploadOne sends one upload and reads its response. keep says whether the connection may carry
// the next one.
func uploadOne(conn net.Conn, br *bufio.Reader, head []byte, size int64) (keep bool, err error) {
	// Deadlines per step rather than per upload: a proxy that stalls fails the upload within
	// seconds, however slowly the bytes were moving before.
	_ = conn.SetWriteDeadline(time.Now().Add(stallTimeout))
	if _, err := conn.Write(head); err != nil {
		return false, err
	}
	for left := size; left > 0; {
		n := min(left, int64(len(uploadChunk)))
		_ = conn.SetWriteDeadline(time.Now().Add(stallTimeout))
		if _, err := conn.Write(uploadChunk[:n]); err != nil {
			return false, fmt.Errorf("writing the body: %w", err)
		}
		left -= n
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * stallTimeout))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, fmt.Errorf("reading the response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("reading the response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", resp.Status)
	}
	return !resp.Close, nil
}

func (o *uploadOutcome) fail(err error) {
	o.errors++
	if o.firstErr == nil {
		o.firstErr = err
	}
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// sleepCtx sleeps for d or until ctx is done, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
