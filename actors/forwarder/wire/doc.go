// Package wire is the HTTP/1.1 framing code on the proxy's hot path (RFC 9112): it reads request
// and response heads in place and copies chunked bodies verbatim, validating as it goes. The
// Forwarder owns one RequestHead and one ResponseHead per client connection and reuses them for
// every exchange, so in steady state reading a head, and copying a chunked body of any size,
// allocates nothing. The package holds no state of its own and starts no goroutines; a
// RequestHead or ResponseHead belongs to one goroutine at a time.
//
// # Strictness
//
// A proxy that reads a message one way while the next hop reads it another way is how request
// smuggling and response splitting happen, so the parser accepts only messages with exactly one
// reading, and where RFC 9112 lets a recipient choose, it chooses to refuse:
//
//   - Lines end in CRLF. A bare LF (which RFC 9112 §2.2 would let us accept) and a bare CR
//     anywhere are errors. Up to four empty lines before a request line are skipped (§2.2).
//   - Request line: method SP request-target SP HTTP-version, with single spaces; the method is
//     a token; the target is checked against its form and method (see RequestHead.Target):
//     printable ASCII only, no '#', valid %XX escapes in the path. HTTP/1.0 and HTTP/1.1 only:
//     another HTTP/d.d is answered 505, anything else 400.
//   - Field lines: a non-empty token name, a colon with no whitespace before it, a value of
//     visible bytes, obs-text, SP and HTAB. A line starting with whitespace (obs-fold, or
//     whitespace before the first field) is an error. Names compare case-insensitively.
//   - Content-Length: one field with one run of decimal digits that fits an int64 (no sign,
//     no spaces). Several fields or a list are refused even when the values agree.
//   - Transfer-Encoding in a request: exactly "chunked" is accepted. Chunked not last, or
//     applied twice, or Transfer-Encoding in HTTP/1.0, or with Content-Length: 400. Another
//     coding before chunked ("gzip, chunked"): 501, since we do not vouch for codings we do
//     not implement. Empty list elements are refused.
//   - Host: HTTP/1.1 requires exactly one; HTTP/1.0 allows at most one; the value must be
//     a host with an optional port.
//   - Limits (see Limits): an over-long request line is 414, an over-large head or too many
//     fields 431.
//
// Responses follow the same rules where they concern framing, with every error a 502, since
// their head reaches the client unchanged; the differences are listed on ResponseHead.Read.
// Chunked bodies are checked as they stream; the rules are listed on CopyChunked.
//
// The fuzz targets hold the parsers to three properties: what they accept, net/http accepts
// and reads the same way (method, target, version, length, Close; the same chunk data); the
// outcome never depends on how the bytes were split into reads; and what passes is passed on
// byte for byte.
//
// # Lifetimes
//
// Every []byte a head exposes points into its Raw buffer, which the head owns and overwrites at
// the next Read: copy what must outlive the exchange. Errors are shared *Error values, never
// modified.
package wire
