package health

import (
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

func TestParseKind(t *testing.T) {
	tests := []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{"classic", KindClassic, false},
		{"http", KindHTTP, false},
		{"tcp", KindTCP, false},
		{"none", KindNone, false},
		{"", 0, true},      // a flag given no value is a mistake, not the default
		{"HTTP", 0, true},  // names are lowercase, as --help prints them
		{"https", 0, true}, // no TLS check
		{"off", 0, true},   // "none" is the one spelling
	}
	for _, tc := range tests {
		got, err := ParseKind(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseKind(%q): got error %v, want error %v", tc.in, err, tc.wantErr)
		}
		if err == nil {
			actortest.Equal(t, "kind of "+tc.in, got, tc.want)
			actortest.Equal(t, "printed", got.String(), tc.in)
		}
	}
	actortest.Equal(t, "zero kind", Kind(0), KindClassic)
	actortest.Equal(t, "unknown kind printed", Kind(9).String(), "Kind(9)")
}
