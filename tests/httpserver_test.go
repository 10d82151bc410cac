package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests of cmd/httpserver against the classic contract's httpserver rules (see
// the README) and the robustness rules of the project: bad input gets a 4xx, the server serves on.

// Exact responses without a body.
const (
	hs201 = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
	hs400 = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
	hs403 = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
	hs404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	hs500 = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
)

// hs200 is the exact 200 response with body.
func hs200(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// name27 and name28 use every kind of allowed character; name28 is one too long.
var (
	name27 = "Az09_-" + "Az09_-" + "Az09_-" + "Az09_-" + "xyz"
	name28 = name27 + "q"
)

func TestHTTPServerResponses(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "hello"), []byte("hello"))
	mustWriteFile(t, filepath.Join(dir, "empty"), nil)
	mustWriteFile(t, filepath.Join(dir, "existing"), []byte("old content"))
	mustWriteFile(t, filepath.Join(dir, name27), []byte("27"))
	mustWriteFile(t, filepath.Join(dir, name28), []byte("28")) // on disk, but not a valid name
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	srv := startHTTPServer(t, dir) // logging off
	const cc = "Connection: close\r\n"
	bigHeader := "X-Big: " + strings.Repeat("b", 9000) + "\r\n"

	tests := []struct {
		name string
		req  string
		want string
	}{
		// The successes: body, HEAD's length without body, an empty file.
		{"GET", "GET /hello HTTP/1.1\r\n" + cc + "\r\n", hs200("hello")},
		{"HEAD", "HEAD /hello HTTP/1.1\r\n" + cc + "\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
		{"GET empty file", "GET /empty HTTP/1.1\r\n" + cc + "\r\n", hs200("")},
		{"PUT new file", "PUT /created HTTP/1.1\r\nContent-Length: 3\r\n" + cc + "\r\nabc", hs201},
		// 201 also when the file existed.
		{"PUT existing file", "PUT /existing HTTP/1.1\r\nContent-Length: 11\r\n" + cc + "\r\nnew content", hs201},
		{"PUT empty body", "PUT /zero HTTP/1.1\r\nContent-Length: 0\r\n" + cc + "\r\n", hs201},
		// Other headers are allowed and ignored; header names are case-insensitive.
		{"headers ignored", "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nconnection: Close\r\n\r\n", hs200("hello")},
		// Bare LF line endings are accepted (RFC 9112 allows it).
		{"bare LF", "GET /hello HTTP/1.1\nConnection: close\n\n", hs200("hello")},
		// 27 characters is the longest name; 28 is 400 even though the file is on disk.
		{"27-char name", "GET /" + name27 + " HTTP/1.1\r\n" + cc + "\r\n", hs200("27")},
		{"28-char name", "GET /" + name28 + " HTTP/1.1\r\n" + cc + "\r\n", hs400},

		{"missing file", "GET /missing HTTP/1.1\r\n" + cc + "\r\n", hs404},
		{"HEAD missing file", "HEAD /missing HTTP/1.1\r\n" + cc + "\r\n", hs404},
		// A directory is not a file the server may read or write.
		{"GET directory", "GET /adir HTTP/1.1\r\n" + cc + "\r\n", hs403},
		{"HEAD directory", "HEAD /adir HTTP/1.1\r\n" + cc + "\r\n", hs403},
		{"PUT directory", "PUT /adir HTTP/1.1\r\nContent-Length: 2\r\n" + cc + "\r\nxx", hs403},
		// Anything else is 500: a symlink loop (ELOOP).
		{"GET symlink loop", "GET /loop HTTP/1.1\r\n" + cc + "\r\n", hs500},
		{"HEAD symlink loop", "HEAD /loop HTTP/1.1\r\n" + cc + "\r\n", hs500},

		// Logging off: /healthcheck is 404 for GET, 403 for HEAD and PUT.
		{"healthcheck, logging off", "GET /healthcheck HTTP/1.1\r\n" + cc + "\r\n", hs404},
		{"HEAD healthcheck", "HEAD /healthcheck HTTP/1.1\r\n" + cc + "\r\n", hs403},
		{"PUT healthcheck", "PUT /healthcheck HTTP/1.1\r\nContent-Length: 1\r\n" + cc + "\r\nx", hs403},

		// 400: methods, versions, targets, request-line shape.
		{"POST", "POST /hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"DELETE", "DELETE /hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"lowercase method", "get /hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"HTTP/1.0", "GET /hello HTTP/1.0\r\n" + cc + "\r\n", hs400},
		{"HTTP/2.0", "GET /hello HTTP/2.0\r\n" + cc + "\r\n", hs400},
		{"lowercase version", "GET /hello http/1.1\r\n" + cc + "\r\n", hs400},
		{"no version", "GET /hello\r\n" + cc + "\r\n", hs400},
		{"double space", "GET  /hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"trailing space", "GET /hello HTTP/1.1 \r\n" + cc + "\r\n", hs400},
		{"garbage", "\x16\x03\x01 garbage\r\n\r\n", hs400},
		{"dot in name", "GET /hello.txt HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"empty name", "GET / HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"no slash", "GET hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"nested path", "GET /a/hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"query", "GET /hello?x=1 HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"percent-encoded", "GET /h%65llo HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"absolute URI", "GET http://x/hello HTTP/1.1\r\n" + cc + "\r\n", hs400},
		// 400: headers.
		{"header without colon", "GET /hello HTTP/1.1\r\nNoColon\r\n" + cc + "\r\n", hs400},
		{"space before colon", "GET /hello HTTP/1.1\r\nHost : x\r\n" + cc + "\r\n", hs400},
		{"folded header", "GET /hello HTTP/1.1\r\nHost: x\r\n y\r\n" + cc + "\r\n", hs400},
		{"head over 8 KiB", "GET /hello HTTP/1.1\r\n" + bigHeader + cc + "\r\n", hs400},
		// 400: PUT framing.
		{"PUT without Content-Length", "PUT /nolength HTTP/1.1\r\n" + cc + "\r\n", hs400},
		{"PUT bad Content-Length", "PUT /badlength HTTP/1.1\r\nContent-Length: abc\r\n" + cc + "\r\nabc", hs400},
		{"PUT negative Content-Length", "PUT /badlength HTTP/1.1\r\nContent-Length: -1\r\n" + cc + "\r\n", hs400},
		{"PUT two Content-Lengths", "PUT /badlength HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n" + cc + "\r\nab", hs400},
		{"PUT chunked", "PUT /badlength HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + cc + "\r\n1\r\na\r\n0\r\n\r\n", hs400},
		{"PUT 28-char name", "PUT /" + name28 + "x HTTP/1.1\r\nContent-Length: 1\r\n" + cc + "\r\nx", hs400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(rawExchange(t, srv.Addr, []byte(tt.req))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	// What the PUTs stored, and what the rejected ones did not.
	for name, want := range map[string]string{"created": "abc", "existing": "new content", "zero": "", "hello": "hello"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("file %s: got %q (%v), want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"nolength", "badlength", "healthcheck", name28 + "x"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file %s: got %v, want it not to exist", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "adir")); err != nil || !fi.IsDir() {
		t.Errorf("the directory was replaced by PUT: %v", err)
	}
	assertNoTempFiles(t, dir)
}

func TestHTTPServerForbiddenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	mustWriteFile(t, path, []byte("secret"))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	var srv *Proc
	if os.Geteuid() != 0 {
		srv = startHTTPServer(t, dir)
	} else {
		// Root may read and write a mode-000 file, so run the server as nobody, with setpriv
		// (util-linux). The binary and the served directory must be reachable for nobody; the
		// directory stays unwritable for it.
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root without setpriv to drop privileges; 403 is also covered by a directory in TestHTTPServerResponses")
		}
		bin := buildBinary(t, "httpserver")
		for _, d := range []string{filepath.Dir(bin), dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		port := freePort(t)
		srv = startProc(t, setpriv, port, dir, "--reuid=65534", "--regid=65534", "--clear-groups", bin, strconv.Itoa(port))
	}
	for _, req := range []string{
		"GET /secret HTTP/1.1\r\nConnection: close\r\n\r\n",
		"HEAD /secret HTTP/1.1\r\nConnection: close\r\n\r\n",
		"PUT /secret HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
	} {
		if got := string(rawExchange(t, srv.Addr, []byte(req))); got != hs403 {
			t.Errorf("%q: got %q, want %q", req, got, hs403)
		}
	}
	if os.Geteuid() == 0 {
		// As nobody, the directory itself is not writable: a new file cannot be created.
		req := "PUT /newfile HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
		if got := string(rawExchange(t, srv.Addr, []byte(req))); got != hs403 {
			t.Errorf("%q: got %q, want %q", req, got, hs403)
		}
	}
}

func TestHTTPServerHeadLimit(t *testing.T) {
	srv := startHTTPServer(t, "")
	// headOf builds a GET head of exactly n bytes (CRLFs and the blank line included).
	headOf := func(n int) string {
		start, end := "GET /missing HTTP/1.1\r\nConnection: close\r\nX-Pad: ", "\r\n\r\n"
		return start + strings.Repeat("p", n-len(start)-len(end)) + end
	}
	// 8 KiB exactly is accepted (the file is missing: 404); one byte more is 400.
	if got := string(rawExchange(t, srv.Addr, []byte(headOf(8192)))); got != hs404 {
		t.Errorf("8192-byte head: got %q, want %q", got, hs404)
	}
	if got := string(rawExchange(t, srv.Addr, []byte(headOf(8193)))); got != hs400 {
		t.Errorf("8193-byte head: got %q, want %q", got, hs400)
	}
	// Many small headers count too.
	many := "GET /missing HTTP/1.1\r\n" + strings.Repeat("X-A: 0123456789\r\n", 600) + "\r\n"
	if got := string(rawExchange(t, srv.Addr, []byte(many))); got != hs400 {
		t.Errorf("600 headers: got %q, want %q", got, hs400)
	}
}

func TestHTTPServerLogFile(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "requests.log")
	mustWriteFile(t, logPath, []byte("left over from an earlier run\n")) // -l truncates
	srv := startHTTPServer(t, dir, "-l", logPath)

	c := dial(t, srv.Addr)
	br := bufio.NewReader(c)
	const fox = "The quick brown fox jumps over the lazy dog.\n" // 45 bytes: three hex lines
	steps := []struct {
		req  string
		want string
	}{
		{"PUT /fox HTTP/1.1\r\nContent-Length: 45\r\n\r\n" + fox, hs201},
		{"GET /fox HTTP/1.1\r\n\r\n", hs200(fox)},
		{"GET /missing HTTP/1.1\r\n\r\n", hs404},
		{"PUT /empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n", hs201},
		{"GET /empty HTTP/1.1\r\n\r\n", hs200("")},
		{"DELETE /fox HTTP/1.1\r\n\r\n", hs400},
		{"HEAD /healthcheck HTTP/1.1\r\n\r\n", hs403},
	}
	for _, s := range steps {
		if _, got := exchange(t, c, br, s.req); got != s.want {
			t.Fatalf("%q: got %q, want %q", s.req, got, s.want)
		}
	}
	// HEAD has no body: read its head only.
	io.WriteString(c, "HEAD /fox HTTP/1.1\r\n\r\n")
	if st, head, _, err := readResponseHead(br); err != nil || head != "HTTP/1.1 200 OK\r\nContent-Length: 45\r\n\r\n" {
		t.Fatalf("HEAD: got %d %q, %v", st, head, err)
	}
	// Eight entries so far, three of them errors.
	if _, got := exchange(t, c, br, "GET /healthcheck HTTP/1.1\r\n\r\n"); got != hs200("3\n8") {
		t.Fatalf("health check: got %q, want %q", got, hs200("3\n8"))
	}
	// A request line that is not one is logged as it came.
	if got := string(rawExchange(t, srv.Addr, []byte("BLAH\r\n\r\n"))); got != hs400 {
		t.Fatalf("garbage: got %q", got)
	}

	want := "" +
		"PUT /fox length 45\n" +
		"00000000 54 68 65 20 71 75 69 63 6b 20 62 72 6f 77 6e 20 66 6f 78 20\n" +
		"00000020 6a 75 6d 70 73 20 6f 76 65 72 20 74 68 65 20 6c 61 7a 79 20\n" +
		"00000040 64 6f 67 2e 0a\n" +
		"========\n" +
		"GET /fox length 45\n" +
		"00000000 54 68 65 20 71 75 69 63 6b 20 62 72 6f 77 6e 20 66 6f 78 20\n" +
		"00000020 6a 75 6d 70 73 20 6f 76 65 72 20 74 68 65 20 6c 61 7a 79 20\n" +
		"00000040 64 6f 67 2e 0a\n" +
		"========\n" +
		"FAIL: GET /missing HTTP/1.1 --- response 404\n" +
		"========\n" +
		"PUT /empty length 0\n" +
		"========\n" +
		"GET /empty length 0\n" +
		"========\n" +
		"FAIL: DELETE /fox HTTP/1.1 --- response 400\n" +
		"========\n" +
		"FAIL: HEAD /healthcheck HTTP/1.1 --- response 403\n" +
		"========\n" +
		"HEAD /fox length 45\n" +
		"========\n" +
		"GET /healthcheck length 3\n" +
		"00000000 33 0a 38\n" +
		"========\n" +
		"FAIL: BLAH --- response 400\n" +
		"========\n"
	// Every entry is in the file before its response is sent, so no waiting is needed.
	if got := readLog(t, logPath); got != want {
		t.Errorf("log: %s\ngot:\n%s", equalOrDiff([]byte(got), []byte(want)), got)
	}

	// On SIGTERM the server exits cleanly and the log stays whole.
	srv.Signal(syscall.SIGTERM)
	if code, err := srv.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v; want 0\n%s", code, err, srv.Stderr())
	}
	if got := readLog(t, logPath); got != want {
		t.Errorf("log after exit: %s", equalOrDiff([]byte(got), []byte(want)))
	}
}

func TestHTTPServerLogLongBody(t *testing.T) {
	// A body over 10^8 bytes would widen the offsets; this checks the line layout on a body
	// of many lines whose last line is full, against an independent formatter.
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "log")
	srv := startHTTPServer(t, dir, "-l", logPath)
	body := make([]byte, 2000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	c := dial(t, srv.Addr)
	br := bufio.NewReader(c)
	if st, _ := exchange(t, c, br, "PUT /long HTTP/1.1\r\nContent-Length: 2000\r\n\r\n"+string(body)); st != 201 {
		t.Fatalf("PUT: got %d", st)
	}
	var want strings.Builder
	want.WriteString("PUT /long length 2000\n")
	for off := 0; off < len(body); off += 20 {
		fmt.Fprintf(&want, "%08d", off)
		for _, b := range body[off:min(off+20, len(body))] {
			fmt.Fprintf(&want, " %02x", b)
		}
		want.WriteString("\n")
	}
	want.WriteString("========\n")
	if got := readLog(t, logPath); got != want.String() {
		t.Errorf("log: %s", equalOrDiff([]byte(got), []byte(want.String())))
	}
}

func TestHTTPServerHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		// -L counts as logging on without a file.
		{"count only", []string{"-L"}},
		// A log file counts the same.
		{"log file", []string{"-l", "log"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-e", "3", "-t", "10"}, tc.args...)
			srv := startHTTPServer(t, t.TempDir(), args...)
			c := dial(t, srv.Addr)
			br := bufio.NewReader(c)
			check := func(want string) {
				t.Helper()
				if _, got := exchange(t, c, br, "GET /healthcheck HTTP/1.1\r\n\r\n"); got != hs200(want) {
					t.Fatalf("health check: got %q, want %q", got, hs200(want))
				}
			}
			// The presets, before anything else.
			check("3\n10")
			// That check counted, and so does every request, errors being what is not 200/201.
			for _, s := range []struct {
				req  string
				want int
			}{
				{"GET /missing HTTP/1.1\r\n\r\n", 404},
				{"PUT /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 201},
				{"GET /x HTTP/1.1\r\n\r\n", 200},
				{"GET /bad.name HTTP/1.1\r\n\r\n", 400},
			} {
				if st, got := exchange(t, c, br, s.req); st != s.want {
					t.Fatalf("%q: got %q, want status %d", s.req, got, s.want)
				}
			}
			check("5\n15")
			// 403 for HEAD and PUT on /healthcheck, both counted as errors; the PUT's body is
			// skipped and the connection goes on.
			io.WriteString(c, "HEAD /healthcheck HTTP/1.1\r\n\r\n")
			if _, head, _, err := readResponseHead(br); err != nil || head != hs403 {
				t.Fatalf("HEAD /healthcheck: got %q, %v", head, err)
			}
			if _, got := exchange(t, c, br, "PUT /healthcheck HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"); got != hs403 {
				t.Fatalf("PUT /healthcheck: got %q, want %q", got, hs403)
			}
			check("7\n18")
			// Requests on other connections count too.
			rawExchange(t, srv.Addr, []byte("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n"))
			check("7\n20")
		})
	}
}

func TestHTTPServerNameLength(t *testing.T) {
	dir := t.TempDir()
	srv := startHTTPServer(t, dir)
	c := dial(t, srv.Addr)
	br := bufio.NewReader(c)
	if _, got := exchange(t, c, br, "PUT /"+name27+" HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"); got != hs201 {
		t.Fatalf("PUT 27-char name: got %q", got)
	}
	if _, got := exchange(t, c, br, "GET /"+name27+" HTTP/1.1\r\n\r\n"); got != hs200("ok") {
		t.Fatalf("GET 27-char name: got %q", got)
	}
	if _, got := exchange(t, c, br, "PUT /"+name28+" HTTP/1.1\r\nContent-Length: 2\r\n\r\nno"); got != hs400 {
		t.Fatalf("PUT 28-char name: got %q", got)
	}
	if _, got := exchange(t, c, br, "GET /"+name28+" HTTP/1.1\r\n\r\n"); got != hs400 {
		t.Fatalf("GET 28-char name: got %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, name28)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a 28-char PUT created a file: %v", err)
	}
}

func TestHTTPServerPipelining(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "a"), []byte("first"))
	srv := startHTTPServer(t, dir, "-N", "2")
	c := dial(t, srv.Addr)
	// Everything in one write; the answers must come in order, each PUT seen by the GET after
	// it, a rejected request's body skipped, the last request closing the connection.
	reqs := "GET /a HTTP/1.1\r\n\r\n" +
		"PUT /a HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecond" +
		"GET /a HTTP/1.1\r\n\r\n" +
		"HEAD /a HTTP/1.1\r\n\r\n" +
		"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nxxxxx" +
		"GET /missing HTTP/1.1\r\n\r\n" +
		"PUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nbbb" +
		"GET /b HTTP/1.1\r\nConnection: close\r\n\r\n" +
		"GET /a HTTP/1.1\r\n\r\n" // after the close: never answered
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := hs200("first") + hs201 + hs200("second") +
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + hs400 + hs404 + hs201 + hs200("bbb")
	if string(got) != want {
		t.Fatalf("pipelined: %s\ngot  %q\nwant %q", equalOrDiff(got, []byte(want)), got, want)
	}
}

func TestHTTPServerKeepAliveAndClose(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("data"))

	t.Run("keep-alive by default", func(t *testing.T) {
		srv := startHTTPServer(t, dir)
		c := dial(t, srv.Addr)
		br := bufio.NewReader(c)
		for i := range 5 {
			if _, got := exchange(t, c, br, "GET /f HTTP/1.1\r\n\r\n"); got != hs200("data") {
				t.Fatalf("request %d on one connection: got %q", i, got)
			}
		}
	})

	t.Run("--close", func(t *testing.T) {
		srv := startHTTPServer(t, dir, "--close")
		// The classic behaviour: the response, no Connection header, then the close.
		for _, tc := range []struct{ req, want string }{
			{"GET /f HTTP/1.1\r\n\r\n", hs200("data")},
			{"HEAD /f HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"},
			{"PUT /g HTTP/1.1\r\nContent-Length: 1\r\n\r\ng", hs201},
			{"GET /missing HTTP/1.1\r\n\r\n", hs404},
			// A second pipelined request is not answered.
			{"GET /f HTTP/1.1\r\n\r\nGET /f HTTP/1.1\r\n\r\n", hs200("data")},
		} {
			if got := string(rawExchange(t, srv.Addr, []byte(tc.req))); got != tc.want {
				t.Errorf("%q: got %q, want %q", tc.req, got, tc.want)
			}
		}
	})
}

func TestHTTPServerBadInputKeepsServing(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "log")
	mustWriteFile(t, filepath.Join(dir, "keep"), []byte("original"))
	srv := startHTTPServer(t, dir, "-l", logPath)

	// A body shorter than announced, then the client half-closes: the answer is 400, the old
	// file stays.
	c := dial(t, srv.Addr)
	io.WriteString(c, "PUT /keep HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly ten b")
	c.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != hs400 {
		t.Fatalf("short body: got %q, %v; want %q", got, err, hs400)
	}
	c.Close()

	// A client that goes away mid-body.
	c = dial(t, srv.Addr)
	io.WriteString(c, "PUT /keep HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n")
	c.Write(bytes.Repeat([]byte("z"), 64<<10))
	c.Close()
	failLine := "FAIL: PUT /keep HTTP/1.1 --- response 400\n========\n"
	eventually(t, "the abandoned PUT to be logged", func() bool { return strings.Count(readLog(t, logPath), failLine) == 2 })

	// A garbage request line, and a PUT whose length is not a number: 400 and the connection
	// closes.
	for _, req := range []string{"\x00\x01\x02\r\n\r\n", "PUT /keep HTTP/1.1\r\nContent-Length: 1x\r\n\r\nabc"} {
		if got := string(rawExchange(t, srv.Addr, []byte(req))); got != hs400 {
			t.Errorf("%q: got %q, want %q", req, got, hs400)
		}
	}

	// The server still serves, the file is the original, no temporary file is left.
	if got := string(rawExchange(t, srv.Addr, []byte("GET /keep HTTP/1.1\r\nConnection: close\r\n\r\n"))); got != hs200("original") {
		t.Fatalf("after bad input: got %q", got)
	}
	assertNoTempFiles(t, dir)
	if got := string(rawExchange(t, srv.Addr, []byte("GET /healthcheck HTTP/1.1\r\nConnection: close\r\n\r\n"))); got != hs200("4\n5") {
		t.Fatalf("health check: got %q, want 4 errors of 5 entries", got)
	}
}

func TestHTTPServerThreadLimit(t *testing.T) {
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("data"))
	srv := startHTTPServer(t, dir, "-N", "1")

	a := dial(t, srv.Addr)
	abr := bufio.NewReader(a)
	if _, got := exchange(t, a, abr, "GET /f HTTP/1.1\r\n\r\n"); got != hs200("data") {
		t.Fatalf("a: got %q", got)
	}
	// a is now an idle keep-alive connection: it must not hold the only slot.
	b := dial(t, srv.Addr)
	bbr := bufio.NewReader(b)
	if _, got := exchange(t, b, bbr, "GET /f HTTP/1.1\r\n\r\n"); got != hs200("data") {
		t.Fatalf("b while a is idle: got %q", got)
	}

	// a starts a PUT and sends half its body: it holds the slot (its temporary file shows the
	// server is processing it), so b's next request waits.
	io.WriteString(a, "PUT /g HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
	eventually(t, "the PUT to be processed", func() bool { return len(tempFiles(t, dir)) == 1 })
	io.WriteString(b, "GET /f HTTP/1.1\r\n\r\n")
	// Best effort: nothing may arrive while the slot is taken. (This can only miss a bug, never
	// fail a correct server.)
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := bbr.Peek(1); err == nil {
		t.Fatalf("b was answered while a held the only slot")
	}
	b.SetReadDeadline(time.Now().Add(ioTimeout))
	io.WriteString(a, "67890")
	if st, head, body := readResponse(t, abr); st != 201 {
		t.Fatalf("a's PUT: got %q %q", head, body)
	}
	if _, head, body := readResponse(t, bbr); head+string(body) != hs200("data") {
		t.Fatalf("b after the slot came free: got %q %q", head, body)
	}
}

func TestHTTPServerCommandLine(t *testing.T) {
	bin := buildBinary(t, "httpserver")
	port := strconv.Itoa(freePort(t))
	run := func(t *testing.T, dir string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%q: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}

	for _, args := range [][]string{
		{},                            // no port
		{"abc"},                       // port not a number
		{"0"},                         // port out of range
		{"70000"},                     // port out of range
		{port, port},                  // two ports
		{port, "-N", "0"},             // N not positive
		{port, "-N", "x"},             // N not a number
		{port, "-N"},                  // N without its value
		{port, "-e", "-1"},            // negative counter
		{port, "-t", "many"},          // counter not a number
		{port, "--bogus"},             // unknown flag
		{port, "-l"},                  // -l without a file
		{port, "-l", ""},              // -l with an empty name
		{"-N", "2", "--timeout", "0"}, // no port, and a zero timeout
	} {
		code, stderr := run(t, t.TempDir(), args...)
		if code != 2 || !strings.Contains(stderr, "usage: httpserver") {
			t.Errorf("%q: got exit %d, stderr %q; want 2 with the usage line", args, code, stderr)
		}
	}

	// The help goes to stdout, so `httpserver --help | less` works.
	help := exec.Command(bin, "--help")
	var helpErr bytes.Buffer
	help.Stderr = &helpErr
	if out, err := help.Output(); err != nil || !strings.Contains(string(out), "usage: httpserver") || !strings.Contains(string(out), "--close") || helpErr.Len() != 0 {
		t.Errorf("--help: got %v, stdout %q, stderr %q; want exit 0 and the help on stdout only", err, out, helpErr.String())
	}

	// An unwritable log path is an error at start-up.
	dir := t.TempDir()
	for _, logPath := range []string{dir, filepath.Join(dir, "no", "such", "dir", "log")} {
		code, stderr := run(t, dir, port, "-l", logPath)
		if code != 1 || !strings.Contains(stderr, "log file") {
			t.Errorf("-l %s: got exit %d, stderr %q; want 1 with a log file error", logPath, code, stderr)
		}
	}

	// A port in use is an error at start-up.
	busy := startHTTPServer(t, "")
	if code, stderr := run(t, dir, strconv.Itoa(busy.Port)); code != 1 || !strings.Contains(stderr, "cannot listen") {
		t.Errorf("port in use: got exit %d, stderr %q", code, stderr)
	}

	// Flags before, between and after the port.
	p := freePort(t)
	srv := startProc(t, bin, p, t.TempDir(), "-e", "1", "-N", "2", strconv.Itoa(p), "--close", "-t", "2", "-L")
	if got := string(rawExchange(t, srv.Addr, []byte("GET /healthcheck HTTP/1.1\r\n\r\n"))); got != hs200("1\n2") {
		t.Errorf("flags anywhere: got %q, want %q", got, hs200("1\n2"))
	}
	// SIGINT: a clean exit.
	srv.Signal(os.Interrupt)
	if code, err := srv.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("after SIGINT: exit %d, %v; want 0", code, err)
	}
}

func TestHTTPServerLargeBody(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB round trip; skipped with -short")
	}
	const size = 1 << 30
	dir := t.TempDir()
	srv := startHTTPServer(t, dir, "-L")
	c := dial(t, srv.Addr)
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	br := bufio.NewReader(c)

	// PUT 1 GiB of generated data, hashed as it goes; nothing holds it in memory.
	fmt.Fprintf(c, "PUT /big HTTP/1.1\r\nContent-Length: %d\r\n\r\n", size)
	sent := sha256.New()
	if _, err := io.Copy(c, io.TeeReader(io.LimitReader(newKeystream(t), size), sent)); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := readResponse(t, br); got != hs201 {
		t.Fatalf("PUT: got %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Size() != size {
		t.Fatalf("stored file: %v, %v", fi, err)
	}

	// GET it back, hashed as it streams.
	io.WriteString(c, "GET /big HTTP/1.1\r\n\r\n")
	st, head, length, err := readResponseHead(br)
	if err != nil || st != 200 || length != size {
		t.Fatalf("GET: got %q, %v", head, err)
	}
	got := sha256.New()
	if _, err := io.CopyN(got, br, size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatalf("GET: the body's checksum differs from what was PUT")
	}

	// The server's peak resident memory stayed small.
	hwm := vmHWM(t, srv.Cmd.Process.Pid)
	const limit = 64 << 20 // a -race build stays well under it too
	t.Logf("httpserver peak RSS (VmHWM) after a 1 GiB PUT and GET: %d KiB", hwm>>10)
	if hwm > limit {
		t.Fatalf("httpserver peak RSS %d MiB, want under %d MiB", hwm>>20, limit>>20)
	}
}

func TestHTTPServerConcurrentClients(t *testing.T) {
	const (
		clients = 64
		ops     = 15 // per client
		shared  = 4  // files every client writes and reads
	)
	dir := t.TempDir()
	for s := range shared {
		mustWriteFile(t, filepath.Join(dir, sharedName(s)), makeVersion(-1, s, 1000+s))
	}
	logPath := filepath.Join(t.TempDir(), "log")
	srv := startHTTPServer(t, dir, "-l", logPath, "-N", "4")

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	counts := make(chan map[string]int, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := mixedClient(srv.Addr, i, ops, shared)
			errs <- err
			counts <- n
		}()
	}
	wg.Wait()
	close(errs)
	close(counts)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	total := map[string]int{}
	for n := range counts {
		for k, v := range n {
			total[k] += v
		}
	}
	if t.Failed() {
		return
	}

	// Every request counted, none an error.
	want := hs200("0\n" + strconv.Itoa(clients*ops))
	if got := string(rawExchange(t, srv.Addr, []byte("GET /healthcheck HTTP/1.1\r\nConnection: close\r\n\r\n"))); got != want {
		t.Fatalf("health check: got %q, want %q", got, want)
	}
	// The log is a sequence of whole entries, every GET and PUT body in it a whole version.
	logged := checkLog(t, readLog(t, logPath))
	total["GET"]++ // the health check
	for _, m := range []string{"GET", "PUT", "HEAD"} {
		if logged[m] != total[m] {
			t.Errorf("log has %d %s entries, clients made %d", logged[m], m, total[m])
		}
	}
	assertNoTempFiles(t, dir)
}

// mixedClient makes ops requests over keep-alive connections (reconnecting after every
// seventh, which asks to close): PUTs and GETs of its own file and of the shared ones, and
// HEADs. Every GET must return one whole version. It returns how many requests of each
// method it made.
func mixedClient(addr string, id, ops, shared int) (map[string]int, error) {
	n := map[string]int{}
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	own := fmt.Sprintf("own%d", id)
	var ownBody []byte
	for j := range ops {
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				return n, err
			}
			c.SetDeadline(time.Now().Add(2 * time.Minute))
			br = bufio.NewReader(c)
		}
		closing := j%7 == 6
		hdr := ""
		if closing {
			hdr = "Connection: close\r\n"
		}
		target := sharedName((id + j) % shared)
		var req string
		var m string
		switch j % 5 {
		case 0: // PUT own file
			ownBody = makeVersion(id, j, 100+(id*131+j*977)%6000)
			m, req = "PUT", fmt.Sprintf("PUT /%s HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n%s", own, len(ownBody), hdr, ownBody)
		case 1: // GET own file: exactly what was PUT
			m, req = "GET", "GET /"+own+" HTTP/1.1\r\n"+hdr+"\r\n"
		case 2: // PUT a shared file
			body := makeVersion(id, j, 100+(id*389+j*61)%6000)
			m, req = "PUT", fmt.Sprintf("PUT /%s HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n%s", target, len(body), hdr, body)
		case 3: // GET a shared file: some whole version
			m, req = "GET", "GET /"+target+" HTTP/1.1\r\n"+hdr+"\r\n"
		case 4: // HEAD a shared file
			m, req = "HEAD", "HEAD /"+target+" HTTP/1.1\r\n"+hdr+"\r\n"
		}
		n[m]++
		if _, err := io.WriteString(c, req); err != nil {
			return n, fmt.Errorf("client %d op %d: %v", id, j, err)
		}
		st, head, length, err := readResponseHead(br)
		if err != nil {
			return n, fmt.Errorf("client %d op %d (%s): %v", id, j, m, err)
		}
		var body []byte
		if m != "HEAD" && length > 0 {
			body = make([]byte, length)
			if _, err := io.ReadFull(br, body); err != nil {
				return n, fmt.Errorf("client %d op %d: body: %v", id, j, err)
			}
		}
		switch j % 5 {
		case 0, 2:
			if head != hs201 {
				return n, fmt.Errorf("client %d op %d PUT: got %q", id, j, head)
			}
		case 1:
			if st != 200 || !bytes.Equal(body, ownBody) {
				return n, fmt.Errorf("client %d op %d GET own: got %d, %d bytes, want %d", id, j, st, len(body), len(ownBody))
			}
		case 3:
			if st != 200 {
				return n, fmt.Errorf("client %d op %d GET %s: got %q", id, j, target, head)
			}
			if err := checkVersion(body); err != nil {
				return n, fmt.Errorf("client %d op %d GET %s: %v", id, j, target, err)
			}
		case 4:
			if st != 200 || length < 100 {
				return n, fmt.Errorf("client %d op %d HEAD %s: got %q", id, j, target, head)
			}
		}
		if closing {
			if extra, err := io.ReadAll(br); err != nil || len(extra) > 0 {
				return n, fmt.Errorf("client %d op %d: after Connection: close got %q, %v; want the close", id, j, extra, err)
			}
			c.Close()
			c = nil
		}
	}
	return n, nil
}

func sharedName(i int) string { return fmt.Sprintf("shared%d", i) }

// makeVersion returns a self-checking body: a header "v<client>.<seq>.<size>;" and filler
// derived from all three, size bytes in all, so any mix of two versions, or a cut, is caught.
func makeVersion(client, seq, size int) []byte {
	b := fmt.Appendf(nil, "v%d.%d.%d;", client, seq, size)
	for k := len(b); k < size; k++ {
		b = append(b, byte('a'+(client*7+seq*13+k)%26))
	}
	return b
}

// checkVersion reports whether body is exactly one makeVersion result.
func checkVersion(body []byte) error {
	h, _, ok := bytes.Cut(body, []byte(";"))
	var client, seq, size int
	if !ok || len(h) > 40 {
		return fmt.Errorf("no version header in %d bytes starting %q", len(body), body[:min(len(body), 40)])
	}
	if _, err := fmt.Sscanf(string(h), "v%d.%d.%d", &client, &seq, &size); err != nil {
		return fmt.Errorf("bad version header %q", h)
	}
	if d := equalOrDiff(body, makeVersion(client, seq, size)); d != "" {
		return fmt.Errorf("not a whole version %q: %s", h, d)
	}
	return nil
}

// checkLog parses a log written under concurrent load: it must be a sequence of whole
// entries (first line, consecutive hex lines adding up to the length, separator), with no
// FAIL, and every hex body of a shared or own file must decode to one whole version. It
// returns the number of entries per method.
func checkLog(t *testing.T, log string) map[string]int {
	t.Helper()
	n := map[string]int{}
	entries := strings.Split(log, "========\n")
	if entries[len(entries)-1] != "" {
		t.Fatalf("log does not end with a separator: …%q", log[max(0, len(log)-200):])
	}
	for i, e := range entries[:len(entries)-1] {
		lines := strings.Split(strings.TrimSuffix(e, "\n"), "\n")
		var m, name string
		var length int
		if _, err := fmt.Sscanf(lines[0], "%s /%s length %d", &m, &name, &length); err != nil {
			t.Fatalf("entry %d: bad first line %q", i, lines[0])
		}
		n[m]++
		var body []byte
		for k, l := range lines[1:] {
			off, hexes, _ := strings.Cut(l, " ")
			if want := fmt.Sprintf("%08d", k*20); off != want {
				t.Fatalf("entry %d (%s): hex line %d has offset %q, want %q", i, lines[0], k, off, want)
			}
			b, err := hex.DecodeString(strings.ReplaceAll(hexes, " ", ""))
			if err != nil || len(b) > 20 || len(b) < 20 && k != len(lines)-2 {
				t.Fatalf("entry %d (%s): bad hex line %q", i, lines[0], l)
			}
			body = append(body, b...)
		}
		if m == "HEAD" {
			if len(lines) != 1 {
				t.Fatalf("entry %d: HEAD with hex lines", i)
			}
			continue
		}
		if len(body) != length {
			t.Fatalf("entry %d (%s): hex holds %d bytes", i, lines[0], len(body))
		}
		if name != "healthcheck" {
			if err := checkVersion(body); err != nil {
				t.Fatalf("entry %d (%s): %v", i, lines[0], err)
			}
		}
	}
	return n
}

// newKeystream returns an endless reader of pseudo-random bytes (AES-CTR, fast even under
// the race detector), the same for every call.
func newKeystream(t testing.TB) io.Reader {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	return keystream{cipher.NewCTR(block, make([]byte, aes.BlockSize))}
}

type keystream struct{ s cipher.Stream }

func (k keystream) Read(p []byte) (int, error) {
	clear(p)
	k.s.XORKeyStream(p, p)
	return len(p), nil
}

// vmHWM returns a process's peak resident set size from /proc/PID/status, in bytes.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q", l)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// readLog returns a log file's content.
func readLog(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tempFiles lists the PUT temporary files in dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".httpserver-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertNoTempFiles fails the test if a PUT left a temporary file in dir.
func assertNoTempFiles(t testing.TB, dir string) {
	t.Helper()
	if m := tempFiles(t, dir); len(m) > 0 {
		t.Errorf("temporary files left behind: %q", m)
	}
}

// eventually polls cond until it holds, failing the test after a generous deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
