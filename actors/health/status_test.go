package health

import (
	"strings"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

var statusCases = []struct {
	name    string
	in      string
	want    StatusSet // when wantErr is empty
	print   string    // what String prints back; empty means in
	wantErr string    // part of the error; empty means valid
}{
	// What --help shows, and the default.
	{name: "one range", in: "200-399", want: StatusSet{{200, 399}}},
	{name: "two codes", in: "200,204", want: StatusSet{{200, 200}, {204, 204}}},
	{name: "range and code", in: "200-299,404", want: StatusSet{{200, 299}, {404, 404}}},
	// The ends of what a status code can be.
	{name: "whole range", in: "100-599", want: StatusSet{{100, 599}}},
	{name: "one-code range", in: "200-200", want: StatusSet{{200, 200}}, print: "200"},
	// Spaces typed after commas or around a dash are harmless.
	{name: "spaces", in: " 200 - 299 , 404 ", want: StatusSet{{200, 299}, {404, 404}}, print: "200-299,404"},
	// Order is kept, overlaps are allowed: the set is what was written.
	{name: "overlap", in: "404,200-499", want: StatusSet{{404, 404}, {200, 499}}},

	// Nothing at all would pass no backend, or be a forgotten value.
	{name: "empty", in: "", wantErr: "is empty"},
	{name: "blank", in: "  ", wantErr: "is empty"},
	// A stray comma is a typo, not an empty member.
	{name: "trailing comma", in: "200,", wantErr: "empty item"},
	{name: "double comma", in: "200,,204", wantErr: "empty item"},
	// Status codes are three digits from 100 to 599.
	{name: "word", in: "ok", wantErr: `"ok" is not a status code`},
	{name: "two digits", in: "99", wantErr: `"99" is not a status code`},
	{name: "four digits", in: "2000", wantErr: `"2000" is not a status code`},
	{name: "sign", in: "+200", wantErr: `"+200" is not a status code`},
	{name: "class wildcard", in: "2xx", wantErr: `"2xx" is not a status code`},
	{name: "below 100", in: "099", wantErr: "status code 99 is outside 100-599"},
	{name: "above 599", in: "600", wantErr: "status code 600 is outside 100-599"},
	{name: "range end above 599", in: "200-600", wantErr: "status code 600 is outside 100-599"},
	// A range has two ends, low first.
	{name: "backwards", in: "399-200", wantErr: "range 399-200 runs backwards"},
	{name: "open high end", in: "200-", wantErr: `range "200-" lacks an end`},
	{name: "open low end", in: "-399", wantErr: `range "-399" lacks an end`},
	{name: "two dashes", in: "200-300-400", wantErr: `range "200-300-400" has more than one '-'`},
	// Other separators are not guessed at.
	{name: "semicolon", in: "200;204", wantErr: `"200;204" is not a status code`},
	{name: "space separated", in: "200 204", wantErr: `"200 204" is not a status code`},
}

func TestParseStatusSet(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatusSet(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want an error mentioning %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "health: status set") {
					t.Fatalf("got error %q, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			actortest.Equal(t, "set", got, tc.want)
			print := tc.print
			if print == "" {
				print = tc.in
			}
			actortest.Equal(t, "printed", got.String(), print)
			again, err := ParseStatusSet(got.String())
			if err != nil {
				t.Fatalf("printed %q does not parse: %v", got.String(), err)
			}
			actortest.Equal(t, "parsed again", again, got)
		})
	}
}

func TestStatusSetContains(t *testing.T) {
	set := StatusSet{{200, 299}, {404, 404}}
	for code, want := range map[int]bool{199: false, 200: true, 250: true, 299: true, 300: false, 403: false, 404: true, 405: false} {
		if got := set.Contains(code); got != want {
			t.Errorf("Contains(%d): got %v, want %v", code, got, want)
		}
	}
	actortest.Equal(t, "default", DefaultStatus.String(), "200-399")
}

func FuzzParseStatusSet(f *testing.F) {
	for _, tc := range statusCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		set, err := ParseStatusSet(in)
		if err != nil {
			return
		}
		if len(set) == 0 {
			t.Fatalf("%q: got an empty set without an error", in)
		}
		if errs := set.validate(); len(errs) > 0 {
			t.Fatalf("%q: parsed to an invalid set %v: %v", in, set, errs)
		}
		again, err := ParseStatusSet(set.String())
		if err != nil {
			t.Fatalf("%q: printed as %q, which does not parse: %v", in, set.String(), err)
		}
		actortest.Equal(t, "parsed again", again, set)
	})
}
