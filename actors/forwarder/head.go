package forwarder

import (
	"bytes"

	"github.com/google/uuid"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
)

// appendUpstreamHead appends the head of req as it goes to the backend: the request line and
// fields as received, less the hop-by-hop fields (Connection and the fields it names,
// Keep-Alive, Proxy-Connection, TE, and Upgrade outside an upgrade), plus X-Forwarded-For
// (appended to what the client sent), X-Forwarded-Proto and X-Request-ID (kept when the client
// sent a valid one) unless switched off. It allocates nothing beyond growing dst.
// hostFallback is the Host given to an HTTP/1.0 request without one (the backend's address).
//
// rid is the request's X-Request-ID when it needs one (the client sent no valid one): made here
// once per request (*made set) and the same on every retry.
func appendUpstreamHead(dst []byte, req *wire.RequestHead, cfg *Config, clientIP []byte, hostFallback string,
	rid *[16]byte, made *bool) []byte {
	dst = append(dst, req.Method...)
	dst = append(dst, ' ')
	dst = append(dst, req.Target...)
	// An intermediary speaks its own version (RFC 9110 §2.5): HTTP/1.1 upstream, also for
	// HTTP/1.0 clients (whose request then needs a Host).
	dst = append(dst, " HTTP/1.1\r\n"...)
	if req.Host == nil {
		dst = append(dst, "Host: "...)
		dst = append(dst, hostFallback...)
		dst = append(dst, "\r\n"...)
	}
	xffIdx, ridValid := -1, false
	for i := range req.Fields {
		f := &req.Fields[i]
		switch {
		case isHopByHop(f.Name, req.Upgrade), namedByConnection(req.Fields, f.Name) && !keepNamed(f.Name, req.Upgrade):
			continue
		case wire.EqualFold(f.Name, "X-Forwarded-For") && !cfg.NoForwardedFor:
			if xffIdx < 0 {
				xffIdx = i
			}
			continue // written once below, with every value and the client's address
		case wire.EqualFold(f.Name, "X-Forwarded-Proto") && !cfg.NoForwardedProto:
			continue // replaced: the scheme the client used with us
		case wire.EqualFold(f.Name, "X-Request-ID") && !cfg.NoRequestID:
			if ridValid || !validRequestID(f.Value) {
				continue
			}
			ridValid = true
		}
		dst = appendField(dst, f.Name, f.Value)
	}
	if req.Upgrade {
		dst = append(dst, "Connection: upgrade\r\n"...)
	}
	if !cfg.NoForwardedFor && len(clientIP) > 0 {
		dst = append(dst, "X-Forwarded-For: "...)
		if xffIdx >= 0 {
			for i := xffIdx; i < len(req.Fields); i++ {
				if f := &req.Fields[i]; wire.EqualFold(f.Name, "X-Forwarded-For") && len(f.Value) > 0 {
					dst = append(dst, f.Value...)
					dst = append(dst, ", "...)
				}
			}
		}
		dst = append(dst, clientIP...)
		dst = append(dst, "\r\n"...)
	}
	if !cfg.NoForwardedProto {
		dst = append(dst, "X-Forwarded-Proto: http\r\n"...)
	}
	if !cfg.NoRequestID && !ridValid {
		dst = append(dst, "X-Request-ID: "...)
		if !*made {
			*rid, *made = uuid.New(), true
		}
		dst = appendUUID(dst, *rid)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// clientRequestID is the X-Request-ID the client sent that goes upstream (the first valid one),
// or nil.
func clientRequestID(fields []wire.Field) []byte {
	for i := range fields {
		if f := &fields[i]; wire.EqualFold(f.Name, "X-Request-ID") && validRequestID(f.Value) {
			return f.Value
		}
	}
	return nil
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// isHopByHop reports whether a field belongs to one connection only (RFC 9110 §7.6.1).
func isHopByHop(name []byte, upgrade bool) bool {
	switch len(name) {
	case 2:
		return wire.EqualFold(name, "TE")
	case 7:
		return !upgrade && wire.EqualFold(name, "Upgrade")
	case 10:
		return wire.EqualFold(name, "Connection") || wire.EqualFold(name, "Keep-Alive")
	case 16:
		return wire.EqualFold(name, "Proxy-Connection")
	}
	return false
}

// keepNamed: fields named by Connection that still go upstream: Upgrade during an upgrade, and
// the fields that frame the message or name its target, which a Connection field must never
// strip (the body would then be read upstream as a second request: smuggling).
func keepNamed(name []byte, upgrade bool) bool {
	return upgrade && wire.EqualFold(name, "Upgrade") || wire.EqualFold(name, "Content-Length") ||
		wire.EqualFold(name, "Transfer-Encoding") || wire.EqualFold(name, "Host")
}

// namedByConnection reports whether a Connection field lists name.
func namedByConnection(fields []wire.Field, name []byte) bool {
	return listsToken(fields, "Connection", name)
}

// validRequestID accepts 1 to 200 visible ASCII characters other than quotes and commas (an ID
// that cannot break a log line or a header list).
func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 200 {
		return false
	}
	for _, b := range v {
		if b <= ' ' || b >= 0x7f || b == '"' || b == ',' || b == '\\' {
			return false
		}
	}
	return true
}

func appendUUID(dst []byte, u uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[b>>4], hex[b&0xf])
	}
	return dst
}

// fieldValue returns the value of the first field called name, or nil.
func fieldValue(fields []wire.Field, name string) []byte {
	for i := range fields {
		if wire.EqualFold(fields[i].Name, name) {
			return fields[i].Value
		}
	}
	return nil
}

// appendClosingHead appends the response head of r with its connection fields (Connection,
// Keep-Alive and the fields Connection names) replaced by "Connection: close", and with dechunk
// also without Transfer-Encoding and Trailer (for an HTTP/1.0 client that gets the body
// de-chunked). Used only when the client connection closes after a response whose backend said
// keep-alive, or when de-chunking, so the head does not promise what will not happen; a backend
// that says nothing about the connection (the classic server) gets its head passed on byte for
// byte.
func appendClosingHead(dst []byte, r *wire.ResponseHead, dechunk bool) []byte {
	dst = append(dst, statusLine(r)...)
	for i := range r.Fields {
		f := &r.Fields[i]
		if wire.EqualFold(f.Name, "Connection") || wire.EqualFold(f.Name, "Keep-Alive") || namedByConnection(r.Fields, f.Name) ||
			dechunk && (wire.EqualFold(f.Name, "Transfer-Encoding") || wire.EqualFold(f.Name, "Trailer")) {
			continue
		}
		dst = appendField(dst, f.Name, f.Value)
	}
	return append(dst, "Connection: close\r\n\r\n"...)
}

// listsToken reports whether a field called name lists token.
func listsToken(fields []wire.Field, name string, token []byte) bool {
	for i := range fields {
		if wire.EqualFold(fields[i].Name, name) && wire.ListHas(fields[i].Value, token) {
			return true
		}
	}
	return false
}

var keepAlive = []byte("keep-alive")

// statusLine is the first line of a response head, CRLF included.
func statusLine(r *wire.ResponseHead) []byte {
	if i := bytes.IndexByte(r.Raw, '\n'); i >= 0 {
		return r.Raw[:i+1]
	}
	return r.Raw
}
