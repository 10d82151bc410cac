package wire

import (
	"bytes"
	"testing"
)

// TestScanValue checks the eight-bytes-at-a-time scan against the byte table, for every byte
// value at every position of two words and a tail, with a valid or an invalid byte after it.
func TestScanValue(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 19; pos++ {
			for _, last := range []byte{'z', '\t', 0x00, 0x7f, '\r'} {
				v := bytes.Repeat([]byte("a"), 19)
				v[pos] = byte(c)
				v[18] = last
				want := len(v)
				for i, b := range v {
					if class[b]&cValue == 0 {
						want = i
						break
					}
				}
				for start := 0; start <= min(pos, 3); start++ {
					w := want
					if w < start {
						w = start
					}
					if got := scanValue(v, start); got != w {
						t.Fatalf("%q from %d: got %d, want %d", v, start, got, w)
					}
				}
			}
		}
	}
}
