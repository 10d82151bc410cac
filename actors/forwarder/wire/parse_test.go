package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// parseInPieces runs parse over data as it would arrive in pieces of size k (k <= 0: all at
// once), the way the event loop calls it: each call sees everything received so far.
func parseInPieces(data []byte, k int, parse func([]byte) (int, error)) (int, error) {
	if k <= 0 {
		k = len(data)
	}
	for end := min(k, len(data)); ; end = min(end+k, len(data)) {
		n, err := parse(data[:end])
		if err != ErrIncomplete || end == len(data) {
			return n, err
		}
	}
}

// sameOutcome holds Parse to Read's verdict on the same bytes: both accept with the same head
// and length, or both refuse with the same *Error; an input Read finds cut short (EOF) is one
// Parse calls incomplete.
func sameOutcome(t *testing.T, data []byte, readErr error, readRaw []byte, readLen int, n int, err error, raw []byte) {
	t.Helper()
	var we *Error
	switch {
	case readErr == nil:
		if err != nil || n != readLen || !bytes.Equal(raw, readRaw) {
			t.Fatalf("%q: Read took %d bytes, head %q; Parse took %d, head %q, err %v", data, readLen, readRaw, n, raw, err)
		}
	case errors.As(readErr, &we):
		if err != readErr {
			t.Fatalf("%q: Read said %v, Parse %v", data, readErr, err)
		}
	case readErr == io.EOF || readErr == io.ErrUnexpectedEOF:
		if err != ErrIncomplete {
			t.Fatalf("%q: Read met the end (%v), Parse said %v", data, readErr, err)
		}
	}
}

func checkRequestParse(t *testing.T, data []byte) {
	var h RequestHead
	br := bufio.NewReader(bytes.NewReader(data))
	rerr := h.Read(br, Limits{})
	readLen := len(data) - br.Buffered()
	for _, k := range []int{0, 1, 7} {
		var p RequestHead
		var sc HeadScan
		n, err := parseInPieces(data, k, func(b []byte) (int, error) { return p.Parse(b, Limits{}, &sc) })
		sameOutcome(t, data, rerr, h.Raw, readLen, n, err, p.Raw)
		if err == nil && (p.ContentLength != h.ContentLength || p.Chunked != h.Chunked || p.Close != h.Close) {
			t.Fatalf("%q: framing differs: Parse %d/%v/%v, Read %d/%v/%v", data, p.ContentLength, p.Chunked, p.Close, h.ContentLength, h.Chunked, h.Close)
		}
	}
}

func checkResponseParse(t *testing.T, data []byte) {
	var h ResponseHead
	br := bufio.NewReader(bytes.NewReader(data))
	rerr := h.Read(br, Limits{})
	readLen := len(data) - br.Buffered()
	for _, k := range []int{0, 1, 5} {
		var p ResponseHead
		var sc HeadScan
		n, err := parseInPieces(data, k, func(b []byte) (int, error) { return p.Parse(b, Limits{}, &sc) })
		sameOutcome(t, data, rerr, h.Raw, readLen, n, err, p.Raw)
		if err == nil && (p.Status != h.Status || p.ContentLength != h.ContentLength || p.Chunked != h.Chunked) {
			t.Fatalf("%q: Parse status %d length %d, Read %d %d", data, p.Status, p.ContentLength, h.Status, h.ContentLength)
		}
	}
}

// Every request table case reads the same through Parse, whole or in pieces.
func TestParseAgreesWithReadOnRequestCases(t *testing.T) {
	for _, tc := range requestCases {
		checkRequestParse(t, []byte(tc.in))
	}
	checkRequestParse(t, []byte(typicalRequest+typicalRequest))
}

// Every response table case reads the same through Parse, whole or in pieces.
func TestParseAgreesWithReadOnResponseCases(t *testing.T) {
	for _, tc := range responseCases {
		checkResponseParse(t, []byte(tc.in))
	}
}

func FuzzRequestParse(f *testing.F) {
	for _, tc := range requestCases {
		if len(tc.in) <= maxSeed {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkRequestParse(t, data) })
}

func FuzzResponseParse(f *testing.F) {
	for _, tc := range responseCases {
		if len(tc.in) <= maxSeed {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkResponseParse(t, data) })
}

// A chunked body fed in pieces is accepted or refused as CopyChunked does, and its data runs
// put together are the decoded body.
func TestChunkScannerAgreesWithCopyChunked(t *testing.T) {
	for _, tc := range chunkedCases {
		data := []byte(tc.in)
		_, cerr := CopyChunked(io.Discard, bufio.NewReader(bytes.NewReader(data)), Limits{})
		for _, k := range []int{1, 3, len(data) + 1} {
			s := NewChunkScanner(Limits{}, false)
			var err error
			done := false
			for off := 0; off < len(data) && !done && err == nil; {
				end := min(off+k, len(data))
				var n int
				n, done, err = s.Feed(data[off:end], nil)
				off += n
			}
			switch {
			case cerr == nil && (!done || err != nil):
				t.Fatalf("%s (pieces of %d): CopyChunked accepted, scanner done=%v err=%v", tc.name, k, done, err)
			case cerr != nil && err == nil && done:
				t.Fatalf("%s (pieces of %d): CopyChunked said %v, scanner accepted", tc.name, k, cerr)
			}
		}
	}
}
