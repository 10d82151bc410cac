package wire

import (
	"bytes"
	"net/netip"
)

// checkTarget validates a request target against its method (RFC 9112 §3.2):
//
//   - origin-form "/path?query": any method but CONNECT;
//   - "*": OPTIONS only;
//   - authority-form "host:port" (port required): CONNECT only, and CONNECT takes nothing else;
//   - absolute-form "http://authority/path?query" with scheme http or https (case-insensitive),
//     a non-empty host, no userinfo ('@'), and an optional numeric port.
//
// In every form the bytes are printable ASCII (0x21-0x7E): no space, no control character, no
// byte above 0x7E (a URI is ASCII; a raw UTF-8 path is percent-encoded by correct clients) and
// no '#' (a fragment is never sent). In the path a '%' must start a %XX escape; the query is
// not checked for escapes, as browsers do not always encode a lone '%' there.
func checkTarget(method, t []byte) reason {
	switch {
	case string(method) == "CONNECT":
		return checkAuthority(t, true)
	case t[0] == '/':
		return checkPathQuery(t)
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return rTarget
		}
		return rNone
	}
	return checkAbsolute(t)
}

// checkPathQuery validates path-abempty [ "?" query ].
func checkPathQuery(t []byte) reason {
	i := 0
	for ; i < len(t); i++ {
		c := t[i]
		if class[c]&cTarget == 0 {
			return rTarget
		}
		if c == '?' {
			break
		}
		if c == '%' {
			if i+2 >= len(t) || class[t[i+1]]&class[t[i+2]]&cHex == 0 {
				return rTarget
			}
			i += 2
		}
	}
	for ; i < len(t); i++ {
		if class[t[i]]&cTarget == 0 {
			return rTarget
		}
	}
	return rNone
}

// checkAbsolute validates absolute-form.
func checkAbsolute(t []byte) reason {
	var rest []byte
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		rest = t[7:]
	case len(t) > 8 && equalFold(t[:8], "https://"):
		rest = t[8:]
	default:
		return rTarget
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' {
			end = i
			break
		}
	}
	if r := checkAuthority(rest[:end], false); r != rNone {
		return r
	}
	return checkPathQuery(rest[end:])
}

// checkAuthority validates host [ ":" port ] in a request target, where host is a reg-name of
// unreserved and sub-delims bytes (no percent-encoding) or a bracketed IPv6 address; port is
// up to five digits, required (and non-empty) when needPort.
func checkAuthority(a []byte, needPort bool) reason {
	var rest []byte
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !isIPv6(a[1:end]) {
			return rTarget
		}
		rest = a[end+1:]
	} else {
		i := 0
		for i < len(a) && class[a[i]]&cHost != 0 {
			i++
		}
		if i == 0 {
			return rTarget
		}
		rest = a[i:]
	}
	if len(rest) == 0 {
		if needPort {
			return rTarget
		}
		return rNone
	}
	if rest[0] != ':' || !isPort(rest[1:], needPort) {
		return rTarget
	}
	return rNone
}

func isPort(p []byte, needed bool) bool {
	if len(p) > 5 || needed && len(p) == 0 {
		return false
	}
	for _, c := range p {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// isIPv6 reports whether b is an IPv6 address without a zone. It allocates (netip takes a
// string): a rare path, taken only for a bracketed address in the request target.
func isIPv6(b []byte) bool {
	if len(b) < 2 || bytes.IndexByte(b, ':') < 0 {
		return false
	}
	for _, c := range b {
		if class[c]&cHex == 0 && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(string(b))
	return err == nil && a.Is6() && a.Zone() == ""
}

// validHost checks a Host field value (RFC 9110 §7.2): empty, or uri-host [ ":" port ], where
// uri-host is a reg-name (unreserved, sub-delims, %XX) or an IP-literal of hex digits, ':' and
// '.' in brackets. A Host with a space, a slash, an '@' or a second colon would let a backend
// route or cache the request under a different name than we see, so it is refused.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return true // RFC 9112 §3.2: empty when the target has no authority
	}
	var rest []byte
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 3 {
			return false
		}
		for _, c := range h[1:end] {
			if class[c]&cHex == 0 && c != ':' && c != '.' {
				return false
			}
		}
		rest = h[end+1:]
	} else {
		i := 0
		for i < len(h) {
			c := h[i]
			switch {
			case class[c]&cHost != 0:
				i++
				continue
			case c == '%' && i+2 < len(h) && class[h[i+1]]&class[h[i+2]]&cHex != 0:
				i += 3
				continue
			}
			break
		}
		if i == 0 {
			return false
		}
		rest = h[i:]
	}
	if len(rest) == 0 {
		return true
	}
	return rest[0] == ':' && isPort(rest[1:], false)
}
