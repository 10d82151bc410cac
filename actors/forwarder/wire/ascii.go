package wire

import "encoding/binary"

// Character classes of RFC 9110 and RFC 3986, one bit each in a 256-entry table so that a
// parser tests a byte with one load and one AND, with no bounds check.
const (
	cToken  uint8 = 1 << iota // tchar: the bytes of a method, a field name, a coding
	cValue                    // field-vchar / SP / HTAB: a byte allowed inside a field value
	cTarget                   // a printable ASCII byte allowed in a request target (not '#')
	cHost                     // unreserved / sub-delims: a byte of a reg-name (no '%')
	cHex                      // HEXDIG
	cQDText                   // qdtext: a byte allowed unescaped inside a quoted-string
)

var class = buildClasses()

func buildClasses() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		if alnum || indexOf("!#$%&'*+-.^_`|~", b) {
			t[c] |= cToken
		}
		// field-vchar = VCHAR / obs-text; SP and HTAB may appear inside a value.
		if b == ' ' || b == '\t' || 0x21 <= b && b <= 0x7e || b >= 0x80 {
			t[c] |= cValue
		}
		if 0x21 <= b && b <= 0x7e && b != '#' {
			t[c] |= cTarget
		}
		if alnum || indexOf("-._~!$&'()*+,;=", b) {
			t[c] |= cHost
		}
		if '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
		if b == '\t' || b == ' ' || b == 0x21 || 0x23 <= b && b <= 0x5b || 0x5d <= b && b <= 0x7e || b >= 0x80 {
			t[c] |= cQDText
		}
	}
	return t
}

func indexOf(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// isToken reports whether b is a non-empty token.
func isToken(b []byte) bool {
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return len(b) > 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring the case of b. It
// allocates nothing.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// scanValue returns the offset of the first byte at or after b[i] that cannot appear in a
// field value (field-vchar, SP, HTAB), or len(b). It tests eight bytes at a time: a word with
// no byte below 0x20 and none equal to 0x7F holds value bytes only (bytes from 0x80 up are
// obs-text, allowed); a word with one is looked at byte by byte, since it may hold an HTAB.
func scanValue(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	s := b[i:]
	for len(s) >= 8 {
		x := binary.LittleEndian.Uint64(s)
		y := x ^ 0x7f*ones
		if ((x-0x20*ones)&^x|(y-ones)&^y)&highs != 0 {
			for k, c := range s[:8] {
				if class[c]&cValue == 0 {
					return len(b) - len(s) + k
				}
			}
		}
		s = s[8:]
	}
	for k, c := range s {
		if class[c]&cValue == 0 {
			return len(b) - len(s) + k
		}
	}
	return len(b)
}

// trimOWS removes optional whitespace (SP and HTAB) from both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextElement splits the first element off a comma-separated list (RFC 9110 §5.6.1): it
// returns the element with OWS trimmed and the rest of the list after the comma. An element
// may be empty ("a, ,b"); callers decide whether that is allowed.
func nextElement(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// parseDecimal parses a non-empty run of ASCII digits into a non-negative int64. It reports
// false for anything else: a sign, spaces, other bytes, or a value above 2^63-1.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	const max = 1<<63 - 1
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		d := int64(c - '0')
		if n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
