package health

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// ok builds a 200 answer with a correct Content-Length around body.
func ok(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

var parseCases = []struct {
	name    string
	answer  string
	want    Counters
	wantErr error // nil: healthy, want applies
}{
	// Healthy answers.
	{"classic answer", ok("2\n100"), Counters{Errors: 2, Entries: 100}, nil},                                                                      // the contract's example
	{"zero counters", ok("0\n0"), Counters{}, nil},                                                                                                // a fresh backend
	{"trailing newline", ok("2\n100\n"), Counters{Errors: 2, Entries: 100}, nil},                                                                  // not required, tolerated
	{"largest int64", ok("9223372036854775807\n1"), Counters{Errors: 1<<63 - 1, Entries: 1}, nil},                                                 // the edge of the range
	{"leading zeros", ok("007\n010"), Counters{Errors: 7, Entries: 10}, nil},                                                                      // still decimal integers
	{"extra headers", "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n1\n2", Counters{Errors: 1, Entries: 2}, nil}, // other servers add headers
	{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n1\n2", Counters{Errors: 1, Entries: 2}, nil},                                        // the version is not the contract's concern
	{"bare LF framing", "HTTP/1.1 200 OK\nContent-Length: 3\n\n1\n2", Counters{Errors: 1, Entries: 2}, nil},                                       // net/http tolerates LF line ends

	// Status.
	{"404", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", Counters{}, ErrStatus},                 // a backend with logging off
	{"500", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", Counters{}, ErrStatus},     // a failing backend
	{"403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", Counters{}, ErrStatus},                 // what the classic server says to HEAD/PUT
	{"201 with counters", "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n1\n2", Counters{}, ErrStatus}, // only 200 is healthy, whatever the body

	// Framing.
	{"raw counters", "0\n5", Counters{}, ErrNotHTTP},                                                                                // bytes without HTTP framing (contract)
	{"raw letters", "a\nb", Counters{}, ErrNotHTTP},                                                                                 // the contract's other example
	{"garbage status line", "HTTP/1.1 OK\r\n\r\n", Counters{}, ErrNotHTTP},                                                          // no status code
	{"bad Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n1\n2", Counters{}, ErrNotHTTP},                           // unparsable length
	{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n1\n2", Counters{}, ErrNotHTTP}, // ambiguous length
	{"missing Content-Length", "HTTP/1.1 200 OK\r\n\r\n1\n2", Counters{}, ErrNoLength},                                              // body delimited by close: contract requires the header
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n1\n2\r\n0\r\n\r\n", Counters{}, ErrNoLength},             // chunked carries no Content-Length
	{"Content-Length too long", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n2\n100", Counters{}, ErrLength},                        // body ends (close) before its length
	{"Content-Length too short", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n2\n100", Counters{}, ErrLength},                       // "2\n1" would parse: the extra bytes must fail it
	{"Content-Length beyond any body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n2\n100", Counters{}, ErrBody},                // refused before reading
	{"nothing", "", Counters{}, io.ErrUnexpectedEOF},                                                                                // closed without a byte
	{"head cut short", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", Counters{}, io.ErrUnexpectedEOF},                                 // closed inside the head

	// Body.
	{"empty body", ok(""), Counters{}, ErrBody},                           // no counters at all
	{"one number", ok("5"), Counters{}, ErrBody},                          // entries missing
	{"only newline", ok("\n"), Counters{}, ErrBody},                       // two empty counters
	{"empty errors", ok("\n5"), Counters{}, ErrBody},                      // first counter missing
	{"empty entries", ok("5\n"), Counters{}, ErrBody},                     // "5\n" is one counter and the tolerated trailing newline
	{"two trailing newlines", ok("2\n100\n\n"), Counters{}, ErrBody},      // only one is tolerated
	{"three numbers", ok("1\n2\n3"), Counters{}, ErrBody},                 // exactly two
	{"non-numeric", ok("a\nb"), Counters{}, ErrBody},                      // the contract's malformed body
	{"hex", ok("0x1\n2"), Counters{}, ErrBody},                            // decimal only
	{"negative", ok("-1\n5"), Counters{}, ErrBody},                        // counters are non-negative
	{"plus sign", ok("+1\n5"), Counters{}, ErrBody},                       // digits only
	{"space before", ok(" 2\n100"), Counters{}, ErrBody},                  // no padding
	{"space after", ok("2 \n100"), Counters{}, ErrBody},                   // no padding
	{"space separator", ok("2 100"), Counters{}, ErrBody},                 // the separator is one '\n'
	{"CRLF separator", ok("2\r\n100"), Counters{}, ErrBody},               // the separator is one '\n'
	{"two separators", ok("2\n\n100"), Counters{}, ErrBody},               // exactly one '\n' between
	{"overflow", ok("9223372036854775808\n1"), Counters{}, ErrBody},       // one past int64
	{"huge", ok("99999999999999999999999\n1"), Counters{}, ErrBody},       // far past int64
	{"twenty digits", ok("00000000000000000001\n1"), Counters{}, ErrBody}, // a counter is at most 19 digits
	{"decimal point", ok("1.0\n2"), Counters{}, ErrBody},                  // integers only
}

func TestClassicParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classic{}.Parse(bufio.NewReader(strings.NewReader(tc.answer)))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got error %v, want %+v", err, tc.want)
				}
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tc.wantErr)
			}
		})
	}
}

// TestClassicParseStopsAtAnswer checks that Parse reads no further than the answer's
// Content-Length when nothing more has arrived yet (a keep-alive backend sends nothing after
// it): a reader that would block past the answer must not be read.
func TestClassicParseStopsAtAnswer(t *testing.T) {
	r := bufio.NewReaderSize(io.MultiReader(strings.NewReader(ok("2\n100")), blockingReader{t}), 16)
	got, err := Classic{}.Parse(r)
	if err != nil || got != (Counters{Errors: 2, Entries: 100}) {
		t.Fatalf("got %+v, %v; want {2 100}, nil", got, err)
	}
}

// blockingReader fails the test if read: it stands for a connection with nothing more to say.
type blockingReader struct{ t *testing.T }

func (b blockingReader) Read([]byte) (int, error) {
	b.t.Error("read past the answer")
	return 0, io.EOF
}

func FuzzClassicParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.answer)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		got, err := Classic{}.Parse(bufio.NewReader(strings.NewReader(answer)))
		if err != nil {
			if got != (Counters{}) {
				t.Fatalf("got %+v with error %v, want zero counters", got, err)
			}
			return
		}
		if got.Errors < 0 || got.Entries < 0 {
			t.Fatalf("got negative counters %+v", got)
		}
	})
}
