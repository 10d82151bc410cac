package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// reqWant is what a successful RequestHead.Read must produce.
type reqWant struct {
	method, target string
	minor          int
	host           string // "<nil>" when there is no Host field
	cl             int64
	body           BodyKind
	close          bool
	expect100      bool
	upgrade        bool
	fields         int
	rest           string // what is left in the reader after the head
}

type requestCase struct {
	name   string
	in     string
	lim    Limits
	status int     // the *Error status Read must return; 0 when the head is accepted
	want   reqWant // checked when status is 0
}

// get is the reqWant of "GET / HTTP/1.1" with "Host: a" and nothing else.
var get = reqWant{method: "GET", target: "/", minor: 1, host: "a", cl: -1, body: NoBody, fields: 1}

func with(w reqWant, f func(*reqWant)) reqWant { f(&w); return w }

const h11 = "GET / HTTP/1.1\r\nHost: a\r\n"

var requestCases = []requestCase{
	// --- accepted ---

	// The simplest HTTP/1.1 request.
	{name: "get", in: h11 + "\r\n", want: get},
	// Body bytes and the next request stay in the reader for the caller.
	{name: "rest stays", in: h11 + "\r\nGET /next", want: with(get, func(w *reqWant) { w.rest = "GET /next" })},
	// HTTP/1.0 needs no Host, and closes unless it asks for keep-alive.
	{name: "http10", in: "GET / HTTP/1.0\r\n\r\n", want: reqWant{method: "GET", target: "/", minor: 0, host: "<nil>", cl: -1, close: true}},
	// HTTP/1.0 keep-alive (any case) keeps the connection.
	{name: "http10 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", want: reqWant{method: "GET", target: "/", host: "<nil>", cl: -1, fields: 1}},
	// "close" wins over "keep-alive" in HTTP/1.0.
	{name: "http10 keep-alive and close", in: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", want: reqWant{method: "GET", target: "/", host: "<nil>", cl: -1, close: true, fields: 1}},
	// Connection: close in HTTP/1.1.
	{name: "close", in: h11 + "Connection: close\r\n\r\n", want: with(get, func(w *reqWant) { w.close = true; w.fields = 2 })},
	// Connection is a case-insensitive list spread over fields; "close" in the second one counts.
	{name: "close in second connection field", in: h11 + "Connection: foo\r\nconnection: bar ,CLOSE\r\n\r\n", want: with(get, func(w *reqWant) { w.close = true; w.fields = 3 })},
	// A token that merely contains "close" is not "close".
	{name: "close substring", in: h11 + "Connection: closed, xclose\r\n\r\n", want: with(get, func(w *reqWant) { w.fields = 2 })},
	// A WebSocket handshake: "upgrade" in a list, plus an Upgrade field.
	{name: "upgrade", in: h11 + "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", want: with(get, func(w *reqWant) { w.upgrade = true; w.fields = 3 })},
	// The token alone is not an upgrade: there must be an Upgrade field.
	{name: "upgrade token without field", in: h11 + "Connection: upgrade\r\n\r\n", want: with(get, func(w *reqWant) { w.fields = 2 })},
	// Upgrade in HTTP/1.0 is ignored (RFC 9110 §7.8).
	{name: "upgrade http10", in: "GET / HTTP/1.0\r\nConnection: upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n", want: reqWant{method: "GET", target: "/", host: "<nil>", cl: -1, fields: 2}},
	// A body framed by Content-Length.
	{name: "content-length", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", want: reqWant{method: "POST", target: "/p", minor: 1, host: "a", cl: 5, body: LengthBody, fields: 2, rest: "hello"}},
	// Content-Length: 0 means no body.
	{name: "content-length zero", in: h11 + "Content-Length: 0\r\n\r\n", want: with(get, func(w *reqWant) { w.cl = 0; w.fields = 2 })},
	// Leading zeros are digits (and net/http agrees).
	{name: "content-length leading zeros", in: h11 + "Content-Length: 007\r\n\r\n", want: with(get, func(w *reqWant) { w.cl = 7; w.body = LengthBody; w.fields = 2 })},
	// The largest Content-Length int64 holds.
	{name: "content-length max", in: h11 + "Content-Length: 9223372036854775807\r\n\r\n", want: with(get, func(w *reqWant) { w.cl = 1<<63 - 1; w.body = LengthBody; w.fields = 2 })},
	// Field names are case-insensitive.
	{name: "names any case", in: "PUT / HTTP/1.1\r\nhOsT: a\r\nCONTENT-length: 3\r\n\r\n", want: reqWant{method: "PUT", target: "/", minor: 1, host: "a", cl: 3, body: LengthBody, fields: 2}},
	// A chunked body.
	{name: "chunked", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: reqWant{method: "POST", target: "/", minor: 1, host: "a", cl: -1, body: ChunkedBody, fields: 2, rest: "0\r\n\r\n"}},
	// Coding names are case-insensitive.
	{name: "chunked any case", in: h11 + "Transfer-Encoding: Chunked\r\n\r\n", want: with(get, func(w *reqWant) { w.body = ChunkedBody; w.fields = 2 })},
	// Expect: 100-continue, any case.
	{name: "expect", in: h11 + "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n", want: with(get, func(w *reqWant) { w.expect100 = true; w.cl = 1; w.body = LengthBody; w.fields = 3 })},
	// Expect in HTTP/1.0 is ignored (RFC 9110 §10.1.1).
	{name: "expect http10", in: "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", want: reqWant{method: "GET", target: "/", host: "<nil>", cl: -1, close: true, fields: 1}},
	// Values lose their surrounding whitespace; an empty value is fine.
	{name: "ows and empty value", in: "GET / HTTP/1.1\r\nHost: \t a \t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n", want: with(get, func(w *reqWant) { w.fields = 3 })},
	// Inner whitespace, HTAB and obs-text are allowed in values.
	{name: "value bytes", in: h11 + "X-A: a b\tc \xff\x80\r\n\r\n", want: with(get, func(w *reqWant) { w.fields = 2 })},
	// RFC 9112 §2.2: empty lines before the request line are skipped, and not part of Raw.
	{name: "leading empty lines", in: "\r\n\r\n" + h11 + "\r\n", want: get},
	// OPTIONS * is the one place for an asterisk.
	{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", want: with(get, func(w *reqWant) { w.method = "OPTIONS"; w.target = "*" })},
	// CONNECT takes authority-form.
	{name: "connect", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", want: with(get, func(w *reqWant) {
		w.method, w.target, w.host = "CONNECT", "example.com:443", "example.com:443"
	})},
	// CONNECT to an IPv6 literal.
	{name: "connect ipv6", in: "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", want: with(get, func(w *reqWant) { w.method, w.target, w.host = "CONNECT", "[::1]:443", "[::1]:443" })},
	// Absolute-form, as proxies and some clients send it (RFC 9112 §3.2.2: must accept).
	{name: "absolute form", in: "GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n", want: with(get, func(w *reqWant) { w.target, w.host = "http://example.com/a?b=c", "example.com" })},
	// Absolute-form with https, a port, an IPv6 literal and no path.
	{name: "absolute form ipv6", in: "GET HTTPS://[2001:db8::1]:8443 HTTP/1.1\r\nHost: a\r\n\r\n", want: with(get, func(w *reqWant) { w.target = "HTTPS://[2001:db8::1]:8443" })},
	// Escapes in the path, and sub-delims, and a lone '%' in the query (browsers send it).
	{name: "target bytes", in: "GET /a%2Fb/c;d=e,f!$&'()*+@:~?q=100%&x=/?\"{}| HTTP/1.1\r\nHost: a\r\n\r\n", want: with(get, func(w *reqWant) { w.target = "/a%2Fb/c;d=e,f!$&'()*+@:~?q=100%&x=/?\"{}|" })},
	// Methods are tokens, not a fixed list.
	{name: "extension method", in: "M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n", want: with(get, func(w *reqWant) { w.method = "M-SEARCH" })},
	// RFC 9112 §3.2: Host may be empty when the target has no authority.
	{name: "empty host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: with(get, func(w *reqWant) { w.host = "" })},
	// Host with a port, an IPv6 literal, an escape.
	{name: "host forms", in: "GET / HTTP/1.1\r\nHost: [fe80::1]:8080\r\n\r\n", want: with(get, func(w *reqWant) { w.host = "[fe80::1]:8080" })},
	{name: "host reg-name", in: "GET / HTTP/1.1\r\nHost: my-host.example_1%41:80\r\n\r\n", want: with(get, func(w *reqWant) { w.host = "my-host.example_1%41:80" })},
	// A request line exactly at the limit is fine.
	{name: "request line at limit", in: "GET /" + strings.Repeat("a", 50) + " HTTP/1.1\r\nHost: a\r\n\r\n", lim: Limits{MaxRequestLine: 64}, want: with(get, func(w *reqWant) { w.target = "/" + strings.Repeat("a", 50) })},
	// A request line far longer than a 16-byte or 4 KiB buffer is gathered across reads.
	{name: "long request line", in: "GET /" + strings.Repeat("b", 6000) + " HTTP/1.1\r\nHost: a\r\n\r\n", want: with(get, func(w *reqWant) { w.target = "/" + strings.Repeat("b", 6000) })},
	// A head exactly MaxHeaderBytes long is fine.
	{name: "head at limit", in: h11 + "X: " + strings.Repeat("v", 64-len(h11)-7) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 64}, want: with(get, func(w *reqWant) { w.fields = 2 })},
	// Exactly MaxHeaders fields are fine.
	{name: "fields at limit", in: h11 + "A: 1\r\nB: 2\r\n\r\n", lim: Limits{MaxHeaders: 3}, want: with(get, func(w *reqWant) { w.fields = 3 })},

	// --- framing: smuggling vectors ---

	// CL.TE / TE.CL smuggling: the two framings disagree about where the body ends.
	{name: "content-length and transfer-encoding", in: h11 + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
	// Same, in the other order.
	{name: "transfer-encoding and content-length", in: h11 + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400},
	// Two Content-Length fields that disagree: which one does the backend use?
	{name: "content-length twice differing", in: h11 + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", status: 400},
	// Even identical duplicates are refused (RFC 9110 §8.6 allows merging; we choose not to).
	{name: "content-length twice same", in: h11 + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 400},
	// A list is a duplicate in one field.
	{name: "content-length list", in: h11 + "Content-Length: 5, 5\r\n\r\n", status: 400},
	// Signs are not digits; some parsers accept "+5" and read 5.
	{name: "content-length plus", in: h11 + "Content-Length: +5\r\n\r\n", status: 400},
	// A negative length.
	{name: "content-length minus", in: h11 + "Content-Length: -1\r\n\r\n", status: 400},
	// Space inside the number: "1 2" is 1, 12 or an error depending on the parser.
	{name: "content-length inner space", in: h11 + "Content-Length: 1 2\r\n\r\n", status: 400},
	// Trailing junk: atoi-style parsers read 5.
	{name: "content-length junk", in: h11 + "Content-Length: 5a\r\n\r\n", status: 400},
	// Hex is not decimal.
	{name: "content-length hex", in: h11 + "Content-Length: 0x5\r\n\r\n", status: 400},
	// An empty value is not 0.
	{name: "content-length empty", in: h11 + "Content-Length:\r\n\r\n", status: 400},
	// 2^63 overflows int64; a wrapping parser would read a negative or small length.
	{name: "content-length overflow", in: h11 + "Content-Length: 9223372036854775808\r\n\r\n", status: 400},
	// Far past 64 bits.
	{name: "content-length huge", in: h11 + "Content-Length: 99999999999999999999999\r\n\r\n", status: 400},
	// RFC 9112 §6.3: a final coding other than chunked leaves the length unknowable: 400.
	{name: "te not chunked", in: h11 + "Transfer-Encoding: gzip\r\n\r\n", status: 400},
	// Chunked not last: same.
	{name: "te chunked then gzip", in: h11 + "Transfer-Encoding: chunked, gzip\r\n\r\n", status: 400},
	// Chunked applied twice (RFC 9112 §6.1 forbids it); parsers differ on how to undo it.
	{name: "te chunked twice", in: h11 + "Transfer-Encoding: chunked, chunked\r\n\r\n", status: 400},
	// Twice across two fields.
	{name: "te chunked twice in two fields", in: h11 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
	// Another coding across two fields still makes chunked not final.
	{name: "te second field not chunked", in: h11 + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", status: 400},
	// "identity" was removed from HTTP; it is not chunked.
	{name: "te identity", in: h11 + "Transfer-Encoding: identity\r\n\r\n", status: 400},
	// A coding we do not implement before chunked: well framed, but not ours to vouch for: 501.
	{name: "te gzip chunked", in: h11 + "Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
	// HTTP/1.0 has no chunked; RFC 9112 §6.1 says the framing is faulty.
	{name: "te in http10", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
	// Empty list elements: legal but unused, refused by net/http; we refuse too.
	{name: "te empty element", in: h11 + "Transfer-Encoding: , chunked\r\n\r\n", status: 400},
	// An empty Transfer-Encoding is no coding at all.
	{name: "te empty", in: h11 + "Transfer-Encoding:\r\n\r\n", status: 400},
	// chunked takes no parameters.
	{name: "te chunked with parameter", in: h11 + "Transfer-Encoding: chunked;x=1\r\n\r\n", status: 400},
	// A comma inside a quoted parameter is not a list separator: the final coding is gzip.
	{name: "te quoted comma", in: h11 + "Transfer-Encoding: gzip;q=\"a, chunked\"\r\n\r\n", status: 400},
	// Junk after a coding name ("chunked" followed by something that is not a separator).
	{name: "te junk", in: h11 + "Transfer-Encoding: chunked x\r\n\r\n", status: 400},
	// A vertical tab is not whitespace; "\vchunked" is not chunked (and is a control byte).
	{name: "te vertical tab", in: h11 + "Transfer-Encoding: \vchunked\r\n\r\n", status: 400},

	// --- field syntax ---

	// Obsolete line folding: a continuation line hides a field from some parsers.
	{name: "obs-fold", in: h11 + "X-A: a\r\n b\r\n\r\n", status: 400},
	// Folding with a tab.
	{name: "obs-fold tab", in: h11 + "X-A: a\r\n\tb\r\n\r\n", status: 400},
	// Whitespace before the first field line (RFC 9112 §2.2): "Host" may be missed.
	{name: "space before first field", in: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", status: 400},
	// Whitespace before the colon: "Transfer-Encoding : chunked" is TE to some, junk to others.
	{name: "space before colon", in: h11 + "Transfer-Encoding : chunked\r\n\r\n", status: 400},
	// A tab before the colon, same reason.
	{name: "tab before colon", in: h11 + "Content-Length\t: 5\r\n\r\n", status: 400},
	// An empty field name.
	{name: "empty name", in: h11 + ": x\r\n\r\n", status: 400},
	// A name that is not a token.
	{name: "name not token", in: h11 + "X@Y: x\r\n\r\n", status: 400},
	// A name with a non-ASCII byte.
	{name: "name obs-text", in: h11 + "X\xffY: x\r\n\r\n", status: 400},
	// A line with no colon at all.
	{name: "no colon", in: h11 + "Host a\r\n\r\n", status: 400},
	// Bare CR in a value: some parsers end the line there.
	{name: "bare cr in value", in: h11 + "X-A: a\rContent-Length: 5\r\n\r\n", status: 400},
	// Bare CR in a name.
	{name: "bare cr in name", in: h11 + "X-A\r: a\r\n\r\n", status: 400},
	// Bare CR in the request line.
	{name: "bare cr in request line", in: "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A CR that starts a line but is not the end of the head.
	{name: "bare cr line", in: h11 + "\rX: y\r\n\r\n", status: 400},
	// NUL in a value: C-string parsers truncate there.
	{name: "nul in value", in: h11 + "X-A: a\x00b\r\n\r\n", status: 400},
	// Other control characters in a value.
	{name: "ctl in value", in: h11 + "X-A: a\x1bb\r\n\r\n", status: 400},
	// DEL is not a visible character.
	{name: "del in value", in: h11 + "X-A: a\x7fb\r\n\r\n", status: 400},
	// Bare LF ending a field line: RFC 9112 §2.2 lets us accept it; we refuse, since the next
	// hop may not agree where the line ends.
	{name: "bare lf field line", in: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", status: 400},
	// Bare LF ending the request line.
	{name: "bare lf request line", in: "GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400},
	// A head of LF-only lines is refused as soon as its end is seen.
	{name: "lf only head", in: "GET / HTTP/1.1\nHost: a\n\n", status: 400},
	// A bare LF as the empty line after CRLF lines.
	{name: "bare lf empty line", in: "GET / HTTP/1.1\r\nHost: a\r\n\nX", status: 400},
	// A bare LF before the request line is not an empty line.
	{name: "leading bare lf", in: "\n" + h11 + "\r\n", status: 400},
	// Empty lines before the request line are skipped, but not forever.
	{name: "too many empty lines", in: strings.Repeat("\r\n", 5) + h11 + "\r\n", status: 400},

	// --- request line ---

	// A method that is not a token.
	{name: "method not token", in: "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A NUL in the method.
	{name: "method nul", in: "GE\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// No method at all.
	{name: "method empty", in: " / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Two spaces: the target would be empty or start with a space.
	{name: "double space", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Two spaces before the version.
	{name: "double space before version", in: "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A trailing space.
	{name: "trailing space", in: "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", status: 400},
	// A space inside the target: "GET /a b HTTP/1.1" is three or four words.
	{name: "space in target", in: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A tab instead of a space.
	{name: "tab separator", in: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// HTTP/0.9 style, no version.
	{name: "no version", in: "GET /\r\nHost: a\r\n\r\n", status: 400},
	// Only a method.
	{name: "method only", in: "GET\r\n\r\n", status: 400},
	// HTTP/1.2 does not exist; a well-formed but unsupported version is 505.
	{name: "http12", in: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: 505},
	// HTTP/2.0 over a 1.x connection.
	{name: "http20", in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505},
	// HTTP/0.9 with a version string.
	{name: "http09", in: "GET / HTTP/0.9\r\n\r\n", status: 505},
	// The version name is case-sensitive.
	{name: "lowercase version", in: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Two-digit minor version.
	{name: "version long", in: "GET / HTTP/1.10\r\nHost: a\r\n\r\n", status: 400},
	// Truncated version.
	{name: "version short", in: "GET / HTTP/1\r\nHost: a\r\n\r\n", status: 400},
	// One byte over MaxRequestLine: 414.
	{name: "request line too long", in: "GET /" + strings.Repeat("a", 51) + " HTTP/1.1\r\nHost: a\r\n\r\n", lim: Limits{MaxRequestLine: 64}, status: 414},
	// 414 is answered before the line ends, without reading it all.
	{name: "request line endless", in: "GET /" + strings.Repeat("a", 10000), lim: Limits{MaxRequestLine: 64}, status: 414},
	// The default request-line limit.
	{name: "request line over default", in: "GET /" + strings.Repeat("a", 8200) + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414},

	// --- request target ---

	// Origin-form must start with '/'.
	{name: "target relative", in: "GET a HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A fragment is never sent; '#' in a target is an error.
	{name: "target fragment", in: "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A malformed escape in the path.
	{name: "target bad escape", in: "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A truncated escape.
	{name: "target short escape", in: "GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// DEL in the target.
	{name: "target del", in: "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A control byte in the target.
	{name: "target ctl", in: "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Raw UTF-8 in the target: a URI is ASCII.
	{name: "target non-ascii", in: "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// '*' is for OPTIONS only.
	{name: "asterisk with get", in: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// CONNECT takes authority-form only.
	{name: "connect origin form", in: "CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Authority-form needs a port.
	{name: "connect no port", in: "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Authority-form outside CONNECT.
	{name: "authority form with get", in: "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Userinfo in an http URI (RFC 9110 §4.2.4): "http://good@evil/".
	{name: "absolute userinfo", in: "GET http://u@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Only http and https make sense to a reverse proxy.
	{name: "absolute other scheme", in: "GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// An http URI must have a host.
	{name: "absolute empty host", in: "GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// A port is digits.
	{name: "absolute bad port", in: "GET http://a:8o/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Two colons: host or port?
	{name: "absolute two colons", in: "GET http://a:80:90/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Brackets hold an IPv6 address, nothing else.
	{name: "absolute bad ipv6", in: "GET http://[zz]/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// Not even an IPv4 address (RFC 3986 §3.2.2).
	{name: "absolute bracketed ipv4", in: "GET http://[1.2.3.4]/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},
	// No scheme separator.
	{name: "absolute opaque", in: "GET http:a HTTP/1.1\r\nHost: a\r\n\r\n", status: 400},

	// --- Host ---

	// RFC 9112 §3.2: HTTP/1.1 without Host is a 400.
	{name: "host missing", in: "GET / HTTP/1.1\r\n\r\n", status: 400},
	// Several Host fields: which one routes the request?
	{name: "host twice", in: h11 + "Host: b\r\n\r\n", status: 400},
	// Several Host fields in HTTP/1.0 too.
	{name: "host twice http10", in: "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", status: 400},
	// A Host that is not a host: a path.
	{name: "host slash", in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400},
	// Userinfo in Host.
	{name: "host userinfo", in: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", status: 400},
	// Host with a space inside.
	{name: "host space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
	// A port is digits.
	{name: "host bad port", in: "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", status: 400},
	// A list of hosts.
	{name: "host list", in: "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", status: 400},

	// --- limits ---

	// One byte over MaxHeaderBytes: 431.
	{name: "head too large", in: h11 + "X: " + strings.Repeat("v", 64-len(h11)-6) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 64}, status: 431},
	// 431 comes before the head ends: an endless head is not read to the end.
	{name: "head endless", in: h11 + "X: " + strings.Repeat("v", 100000), status: 431},
	// One field over MaxHeaders: 431.
	{name: "too many fields", in: h11 + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim: Limits{MaxHeaders: 3}, status: 431},
	// The default field count.
	{name: "too many fields default", in: h11 + strings.Repeat("X: y\r\n", 100) + "\r\n", status: 431},
}

// readerKinds are the ways a test feeds bytes to a parser: one read of everything with the
// default buffer, the smallest bufio buffer, and one byte per read (every line split at every
// possible place).
var readerKinds = []struct {
	name string
	new  func(string) *bufio.Reader
}{
	{"default", func(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }},
	{"16-byte buffer", func(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 16) }},
	{"one byte per read", func(s string) *bufio.Reader {
		return bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(s)), 16)
	}},
}

func TestRequestRead(t *testing.T) {
	for _, tc := range requestCases {
		for _, rk := range readerKinds {
			t.Run(tc.name+"/"+rk.name, func(t *testing.T) {
				br := rk.new(tc.in)
				var h RequestHead
				err := h.Read(br, tc.lim)
				if tc.status != 0 {
					var we *Error
					if !errors.As(err, &we) {
						t.Fatalf("got error %v, want *Error with status %d", err, tc.status)
					}
					if we.Status != tc.status {
						t.Fatalf("got status %d (%s), want %d", we.Status, we.Reason, tc.status)
					}
					return
				}
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				checkRequest(t, &h, br, tc.in, tc.want)
			})
		}
	}
}

func checkRequest(t *testing.T, h *RequestHead, br *bufio.Reader, in string, w reqWant) {
	t.Helper()
	host := "<nil>"
	if h.Host != nil {
		host = string(h.Host)
	}
	got := reqWant{
		method: string(h.Method), target: string(h.Target), minor: h.Minor, host: host,
		cl: h.ContentLength, body: h.Body(), close: h.Close, expect100: h.Expect100,
		upgrade: h.Upgrade, fields: len(h.Fields),
	}
	rest, _ := io.ReadAll(br)
	got.rest = string(rest)
	if got != w {
		t.Errorf("got  %+v\nwant %+v", got, w)
	}
	if h.Major != 1 {
		t.Errorf("got major %d, want 1", h.Major)
	}
	if h.Chunked != (w.body == ChunkedBody) {
		t.Errorf("got Chunked %v, want %v", h.Chunked, w.body == ChunkedBody)
	}
	// Raw is the head exactly as received, empty lines before it aside.
	raw := strings.TrimLeft(in, "\r\n")
	if !strings.HasPrefix(raw, string(h.Raw)) || !bytes.HasSuffix(h.Raw, []byte("\r\n\r\n")) {
		t.Errorf("got Raw %q, want a prefix of %q ending in CRLF CRLF", h.Raw, raw)
	}
	if len(h.Raw)+len(rest) != len(raw) {
		t.Errorf("got Raw of %d bytes and %d left, want %d in all", len(h.Raw), len(rest), len(raw))
	}
	// Every field is a subslice of Raw, name then value, and the value is trimmed.
	for _, f := range h.Fields {
		if !within(h.Raw, f.Name) || !within(h.Raw, f.Value) {
			t.Errorf("field %q: %q is not inside Raw", f.Name, f.Value)
		}
		if v := bytes.Trim(f.Value, " \t"); len(v) != len(f.Value) {
			t.Errorf("field %q: value %q not trimmed", f.Name, f.Value)
		}
	}
}

// within reports whether sub lies inside b's memory.
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	start := cap(b) - cap(sub)
	return start >= 0 && start+len(sub) <= len(b) && &b[start] == &sub[0]
}

// TestRequestReadErrors checks how a Read that cannot finish reports why.
func TestRequestReadErrors(t *testing.T) {
	errBroken := errors.New("broken")
	cases := []struct {
		name string
		r    io.Reader
		want error
	}{
		// A connection closed between requests is the normal end of a keep-alive connection.
		{"clean eof", strings.NewReader(""), io.EOF},
		// Empty lines after the last request still end it cleanly.
		{"eof after empty lines", strings.NewReader("\r\n\r\n"), io.EOF},
		// Closed inside the request line.
		{"eof in request line", strings.NewReader("GET / HT"), io.ErrUnexpectedEOF},
		// Closed inside the fields.
		{"eof in fields", strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n"), io.ErrUnexpectedEOF},
		// Closed after the CR of the final CRLF.
		{"eof before final lf", strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r"), io.ErrUnexpectedEOF},
		// Closed after a lone CR where an empty line might have been.
		{"eof after cr", strings.NewReader("\r"), io.ErrUnexpectedEOF},
		// A read error is returned as it is, so callers can classify it.
		{"read error", io.MultiReader(strings.NewReader("GET / "), iotest.ErrReader(errBroken)), errBroken},
		// A read error before the first byte, too.
		{"read error first", iotest.ErrReader(errBroken), errBroken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h RequestHead
			err := h.Read(bufio.NewReaderSize(tc.r, 16), Limits{})
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRequestReuse reads pipelined requests of different shapes into one RequestHead, and
// checks that nothing of a request survives into the next.
func TestRequestReuse(t *testing.T) {
	stream := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\nExpect: 100-continue\r\n\r\nabc" +
		"GET /b HTTP/1.0\r\n\r\n" +
		"PUT /c HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: d\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(stream), 16)
	var h RequestHead
	want := []reqWant{
		{method: "POST", target: "/a", minor: 1, host: "a", cl: 3, body: LengthBody, close: true, expect100: true, fields: 4},
		{method: "GET", target: "/b", host: "<nil>", cl: -1, close: true},
		{method: "PUT", target: "/c", minor: 1, host: "c", cl: -1, body: ChunkedBody, upgrade: true, fields: 4},
		{method: "GET", target: "/d", minor: 1, host: "d", cl: -1, fields: 1},
	}
	for i, w := range want {
		if err := h.Read(br, Limits{}); err != nil {
			t.Fatalf("request %d: got error %v", i, err)
		}
		host := "<nil>"
		if h.Host != nil {
			host = string(h.Host)
		}
		got := reqWant{method: string(h.Method), target: string(h.Target), minor: h.Minor, host: host,
			cl: h.ContentLength, body: h.Body(), close: h.Close, expect100: h.Expect100, upgrade: h.Upgrade, fields: len(h.Fields)}
		if got != w {
			t.Errorf("request %d:\ngot  %+v\nwant %+v", i, got, w)
		}
		switch h.Body() {
		case LengthBody:
			br.Discard(int(h.ContentLength))
		case ChunkedBody:
			if _, err := CopyChunked(io.Discard, br, Limits{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.Read(br, Limits{}); err != io.EOF {
		t.Fatalf("after the last request: got %v, want io.EOF", err)
	}
}

// TestRequestConn reads pipelined requests, one with a chunked body, written in small pieces
// over net.Pipe and TCP, with the smallest bufio buffer: lines split across reads everywhere.
func TestRequestConn(t *testing.T) {
	long := strings.Repeat("x", 5000) // longer than a default bufio buffer
	stream := "GET /1 HTTP/1.1\r\nHost: a\r\nX-Long: " + long + "\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=\"v\"\r\nhello\r\n" + "1000\r\n" + strings.Repeat("d", 4096) + "\r\n0\r\nT: 1\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	for _, size := range []int{16, 4096} {
		testConnTypes(t, func(t *testing.T, w, r net.Conn) {
			done := writeInPieces(w, stream, 1, 7, 3, 100, 2, 999)
			br := bufio.NewReaderSize(r, size)
			var h RequestHead
			if err := h.Read(br, Limits{}); err != nil {
				t.Fatal(err)
			}
			if string(h.Target) != "/1" || len(h.Fields) != 2 || string(h.Fields[1].Value) != long {
				t.Fatalf("request 1: got target %q with %d fields", h.Target, len(h.Fields))
			}
			if err := h.Read(br, Limits{}); err != nil {
				t.Fatal(err)
			}
			if string(h.Target) != "/2" || !h.Chunked {
				t.Fatalf("request 2: got target %q chunked %v, want /2 chunked", h.Target, h.Chunked)
			}
			var body bytes.Buffer
			n, err := CopyChunked(&body, br, Limits{})
			want := "5;ext=\"v\"\r\nhello\r\n1000\r\n" + strings.Repeat("d", 4096) + "\r\n0\r\nT: 1\r\n\r\n"
			if err != nil || body.String() != want || n != int64(len(want)) {
				t.Fatalf("body: got %d bytes %q..., err %v; want %d bytes", n, body.String()[:min(40, body.Len())], err, len(want))
			}
			if err := h.Read(br, Limits{}); err != nil {
				t.Fatal(err)
			}
			if string(h.Target) != "/3" || !h.Close {
				t.Fatalf("request 3: got target %q close %v", h.Target, h.Close)
			}
			if err := h.Read(br, Limits{}); err != io.EOF {
				t.Fatalf("after the last request: got %v, want io.EOF", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRequestDeadline checks that a read deadline expiring mid-head (a slowloris client)
// comes back unwrapped, as a net.Error with Timeout() true.
func TestRequestDeadline(t *testing.T) {
	testConnTypes(t, func(t *testing.T, w, r net.Conn) {
		go w.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n"))
		r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var h RequestHead
		err := h.Read(bufio.NewReader(r), Limits{})
		ne, ok := err.(net.Error)
		if !ok || !ne.Timeout() {
			t.Fatalf("got %T %v, want a net.Error with Timeout()", err, err)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
		w.Close() // let the writer finish on net.Pipe
	})
}

// typicalRequest is what a browser sends for a page: the head size the allocation test and
// the benchmarks use.
const typicalRequest = "GET /static/app.js?v=1234 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://www.example.com/index.html\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"\r\n"

// TestRequestReadAllocs pins steady-state allocations of RequestHead.Read at zero.
func TestRequestReadAllocs(t *testing.T) {
	br := bufio.NewReader(&repeatReader{b: []byte(typicalRequest)})
	var h RequestHead
	read := func() {
		if err := h.Read(br, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	read() // grow the buffers
	if n := testing.AllocsPerRun(1000, read); n != 0 {
		t.Fatalf("got %v allocations per Read, want 0", n)
	}
}

// TestRequestBufferShrinks checks that an outsized head does not pin its buffer.
func TestRequestBufferShrinks(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 40000) + "\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(big + h11 + "\r\n"))
	var h RequestHead
	if err := h.Read(br, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Read(br, Limits{}); err != nil {
		t.Fatal(err)
	}
	if cap(h.Raw) > maxKeptHead {
		t.Fatalf("got Raw capacity %d after a small head, want at most %d", cap(h.Raw), maxKeptHead)
	}
}

func TestEqualFoldAndListHas(t *testing.T) {
	tests := []struct {
		name        string
		list, token string
		want        bool
	}{
		// Tokens compare without case and without the whitespace around list elements.
		{"case", "Keep-Alive, UPGRADE", "upgrade", true},
		{"spaces", "close ,\tx-secret ", "X-Secret", true},
		// A prefix or a longer element is not the token.
		{"prefix", "upgraded, keep", "upgrade", false},
		{"empty list", "", "close", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ListHas([]byte(tt.list), []byte(tt.token)); got != tt.want {
				t.Fatalf("ListHas(%q, %q): got %v, want %v", tt.list, tt.token, got, tt.want)
			}
		})
	}
	if !EqualFold([]byte("cOnNeCtIoN"), "Connection") || EqualFold([]byte("Connectio"), "Connection") {
		t.Fatalf("EqualFold is wrong")
	}
}
