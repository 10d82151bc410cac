package wire

// EqualFold reports whether b equals s, ignoring ASCII case (field names, tokens). It
// allocates nothing.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// ListHas reports whether the comma-separated list (a field value such as Connection's) holds
// token, ignoring ASCII case and optional whitespace around elements. It allocates nothing.
func ListHas(list, token []byte) bool {
	for list != nil {
		var elem []byte
		elem, list = nextElement(list)
		if len(elem) == len(token) && EqualFold(elem, string(token)) {
			return true
		}
	}
	return false
}
