package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAppendHexLines(t *testing.T) {
	tests := []struct {
		name string
		off  int64
		p    []byte
		want string
	}{
		// A full line: 8 decimal digits, 20 bytes as " %02x", lowercase.
		{"full line", 0, []byte("The quick brown fox "), "00000000 54 68 65 20 71 75 69 63 6b 20 62 72 6f 77 6e 20 66 6f 78 20\n"},
		// The offset is decimal, not hex.
		{"decimal offset", 20, []byte{0xff, 0x00, 0x0a}, "00000020 ff 00 0a\n"},
		// The last padded offset, and past 10^8 the offset just grows a digit.
		{"widest padded offset", 99999980, []byte{1}, "99999980 01\n"},
		{"offset past 8 digits", 100000000, []byte{2}, "100000000 02\n"},
		{"one byte", 40, []byte{0xab}, "00000040 ab\n"},
		// Several lines, the last one partial.
		{"lines", 60, []byte("0123456789abcdefghijABCDEFGHIJKLMNOPQRST!"),
			"00000060 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 67 68 69 6a\n" +
				"00000080 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50 51 52 53 54\n" +
				"00000100 21\n"},
		// Crossing 10^8 mid-body.
		{"crossing 10^8", 99999980, bytes.Repeat([]byte{0x11}, 21),
			"99999980 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11\n100000000 11\n"},
		{"nothing", 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendHexLines(nil, tt.off, tt.p)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// refHexdump is an independent formatter for the hex lines of p.
func refHexdump(p []byte) string {
	var b strings.Builder
	for off := 0; off < len(p); off += 20 {
		fmt.Fprintf(&b, "%08d", off)
		for _, c := range p[off:min(off+20, len(p))] {
			fmt.Fprintf(&b, " %02x", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// newTestLog opens a log file in a temporary directory.
func newTestLog(t *testing.T, errors, entries int64) (*requestLog, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	l, err := openLog(path, errors, entries, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	return l, path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogEntries(t *testing.T) {
	l, path := newTestLog(t, 0, 0)
	// Sizes around the read buffer and line boundaries: empty, partial line, full lines, a
	// body that spans two reads of readBuf.
	var want strings.Builder
	for _, n := range []int{0, 1, 19, 20, 21, 45, len(l.readBuf) - 1, len(l.readBuf), len(l.readBuf) + 7} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i*31 + n)
		}
		l.success(methodPut, []byte("f"), int64(n), bytes.NewReader(body))
		fmt.Fprintf(&want, "PUT /f length %d\n%s========\n", n, refHexdump(body))
	}
	l.success(methodHead, []byte("f"), 45, nil)
	want.WriteString("HEAD /f length 45\n========\n")
	l.fail([]byte("GET /missing HTTP/1.1"), 404)
	want.WriteString("FAIL: GET /missing HTTP/1.1 --- response 404\n========\n")
	body := l.health([]byte("healthcheck"), nil)
	if string(body) != "1\n11" {
		t.Errorf("health body: got %q, want %q", body, "1\n11")
	}
	want.WriteString("GET /healthcheck length 4\n00000000 31 0a 31 31\n========\n")

	if got := readFile(t, path); got != want.String() {
		t.Errorf("log differs:\ngot  %q\nwant %q", got[:min(len(got), 300)], want.String()[:min(want.Len(), 300)])
	}
}

func TestLogShortBody(t *testing.T) {
	// A file that shrank after its size was taken: the hex ends where the data does.
	l, path := newTestLog(t, 0, 0)
	l.success(methodGet, []byte("f"), 30, bytes.NewReader([]byte("abc")))
	want := "GET /f length 30\n00000000 61 62 63\n========\n"
	if got := readFile(t, path); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLogCounters(t *testing.T) {
	// -L: counters and health checks, no file; -e and -t preset the counters.
	l, err := openLog("", 3, 10, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		do   func()
		want string // the next health body
	}{
		{func() {}, "3\n10"},
		// the health check itself counted
		{func() {}, "3\n11"},
		{func() { l.success(methodGet, []byte("a"), 1, bytes.NewReader([]byte("x"))) }, "3\n13"},
		{func() { l.fail([]byte("GET /a HTTP/1.1"), 404) }, "4\n15"},
		{func() { l.success(methodHead, []byte("a"), 1, nil) }, "4\n17"},
	}
	for i, s := range steps {
		s.do()
		if got := string(l.health([]byte("healthcheck"), nil)); got != s.want {
			t.Fatalf("step %d: got %q, want %q", i, got, s.want)
		}
	}
	// A nil log is logging off: nothing happens.
	var off *requestLog
	off.success(methodGet, []byte("a"), 1, bytes.NewReader([]byte("x")))
	off.fail([]byte("x"), 400)
	if err := off.close(); err != nil {
		t.Fatal(err)
	}
}

func TestLogEntriesDoNotInterleave(t *testing.T) {
	l, path := newTestLog(t, 0, 0)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte(w)}, 70_000+w) // many lines, two reads
			for range each {
				l.success(methodGet, []byte{'a' + byte(w)}, int64(len(body)), bytes.NewReader(body))
				l.fail([]byte("GET /x HTTP/1.1"), 404)
			}
		}()
	}
	wg.Wait()
	entries := strings.Split(readFile(t, path), logSeparator)
	if len(entries) != writers*each*2+1 || entries[len(entries)-1] != "" {
		t.Fatalf("got %d entries, want %d", len(entries)-1, writers*each*2)
	}
	want := map[int]string{}
	for w := range writers {
		body := bytes.Repeat([]byte{byte(w)}, 70_000+w)
		want[w] = fmt.Sprintf("GET /%c length %d\n%s", 'a'+w, len(body), refHexdump(body))
	}
	for _, e := range entries[:len(entries)-1] {
		if strings.HasPrefix(e, "FAIL: ") {
			if e != "FAIL: GET /x HTTP/1.1 --- response 404\n" {
				t.Fatalf("mixed FAIL entry %q", e[:min(len(e), 200)])
			}
			continue
		}
		if w := int(e[5] - 'a'); e != want[w] {
			t.Fatalf("entry for writer %d is not whole", w)
		}
	}
}

func TestOpenLog(t *testing.T) {
	dir := t.TempDir()
	// -l truncates.
	path := filepath.Join(dir, "log")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := openLog(path, 0, 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l.close()
	if got := readFile(t, path); got != "" {
		t.Errorf("log not truncated: %q", got)
	}
	// Unwritable paths fail at once.
	for _, bad := range []string{dir, filepath.Join(dir, "missing", "log")} {
		if _, err := openLog(bad, 0, 0, io.Discard); err == nil {
			t.Errorf("openLog(%q): got no error", bad)
		}
	}
}

func TestLogWriteFailure(t *testing.T) {
	// A write that fails later (a full disk) is reported once; counting goes on.
	f, err := os.Open(os.DevNull) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	l, _ := openLog("", 0, 0, &stderr)
	l.f = f
	l.w = newLogWriter(f)
	l.fail([]byte("GET /a HTTP/1.1"), 404)
	l.fail([]byte("GET /a HTTP/1.1"), 404)
	if n := strings.Count(stderr.String(), "writing the log failed"); n != 1 {
		t.Errorf("got %d failure messages, want 1: %q", n, stderr.String())
	}
	if got := string(l.health([]byte("healthcheck"), nil)); got != "2\n2" {
		t.Errorf("counters after a failed write: got %q, want %q", got, "2\n2")
	}
	l.close()
}

func BenchmarkHexdump(b *testing.B) {
	l, err := openLog(filepath.Join(b.TempDir(), "log"), 0, 0, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer l.close()
	l.f.Close()
	l.f, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	l.w = newLogWriter(l.f)
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		body := bytes.NewReader(make([]byte, size))
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				l.success(methodGet, []byte("f"), int64(size), body)
			}
		})
	}
}
