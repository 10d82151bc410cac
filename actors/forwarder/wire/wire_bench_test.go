package wire

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The benchmarks read from an endless stream of pipelined copies of one message (the network
// is not the point), through a default 4 KiB bufio.Reader, so heads sometimes straddle reads
// as they do on a real connection.

// smallRequest is what wrk sends.
const smallRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"

// largeRequest has forty fields and a 2 KiB cookie.
var largeRequest = "POST /api/v1/items?limit=100&offset=200 HTTP/1.1\r\nHost: api.example.com\r\n" +
	strings.Repeat("X-Custom-Header-Name: some-moderately-long-value-0123456789\r\n", 38) +
	"Content-Length: 0\r\nCookie: " + strings.Repeat("k=v; ", 400) + "end=1\r\n\r\n"

var requestBenchmarks = []struct{ name, in string }{
	{"small", smallRequest},
	{"typical", typicalRequest},
	{"large", largeRequest},
}

func BenchmarkRequestHead(b *testing.B) {
	for _, bc := range requestBenchmarks {
		b.Run(bc.name, func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{b: []byte(bc.in)})
			var h RequestHead
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if err := h.Read(br, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRequestHeadNetHTTP is the same work done by http.ReadRequest, for scale.
func BenchmarkRequestHeadNetHTTP(b *testing.B) {
	for _, bc := range requestBenchmarks {
		b.Run(bc.name, func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{b: []byte(bc.in)})
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if _, err := http.ReadRequest(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkResponseHead(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"small", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"typical", typicalResponse},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{b: []byte(bc.in)})
			var h ResponseHead
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if err := h.Read(br, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopyChunked copies bodies of growing size in 16 KiB chunks, and a body of small
// chunks (per-chunk cost), into io.Discard.
func BenchmarkCopyChunked(b *testing.B) {
	cases := []struct{ total, chunk int }{
		{64, 64}, {1 << 10, 1 << 10}, {64 << 10, 16 << 10}, {1 << 20, 16 << 10}, {1 << 20, 64},
	}
	for _, c := range cases {
		body := chunkedBody(c.total, c.chunk)
		b.Run(fmt.Sprintf("body=%s/chunk=%s", size(c.total), size(c.chunk)), func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{b: body})
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := CopyChunked(io.Discard, br, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
