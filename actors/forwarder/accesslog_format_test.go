package forwarder

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name, in  string
		want      string // as appended
		wantValue string // what a JSON decoder makes of it
	}{
		{"plain", "/a?b=c&d", "/a?b=c&d", "/a?b=c&d"},
		{"empty", "", "", ""},
		{"quote", `a"b`, `a\"b`, `a"b`},
		{"backslash", `a\b`, `a\\b`, `a\b`},
		{"control chars", "\x00\x01\t\n\r\x1f", `\u0000\u0001\u0009\u000a\u000d\u001f`, "\x00\x01\t\n\r\x1f"},
		{"DEL", "a\x7fb", `a\u007fb`, "a\x7fb"},
		{"space and tilde kept", " ~", " ~", " ~"},
		{"invalid byte", "a\xffb", `a\ufffdb`, "a\uFFFDb"},
		{"truncated sequence", "\xe2\x82", `\ufffd\ufffd`, "\uFFFD\uFFFD"},
		{"overlong", "\xc0\xaf", `\ufffd\ufffd`, "\uFFFD\uFFFD"},
		{"surrogate", "\xed\xa0\x80", `\ufffd\ufffd\ufffd`, "\uFFFD\uFFFD\uFFFD"},
		{"multibyte kept", "é€😀", "é€😀", "é€😀"},
		{"real U+FFFD kept", "\uFFFD", "\uFFFD", "\uFFFD"},
		{"line separators", "\u2028\u2029", "\u2028\u2029", "\u2028\u2029"},
		{"mixed", "\"\xff\\\n😀", `\"\ufffd\\\u000a😀`, "\"\uFFFD\\\n😀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendJSONString([]byte("pre"), []byte(tt.in))
			actortest.Equal(t, "appended", string(got), "pre"+tt.want)
			quoted := `"` + string(got[3:]) + `"`
			if !json.Valid([]byte(quoted)) {
				t.Fatalf("%s is not valid JSON", quoted)
			}
			var v string
			if err := json.Unmarshal([]byte(quoted), &v); err != nil {
				t.Fatal(err)
			}
			actortest.Equal(t, "decoded", v, tt.wantValue)
		})
	}
}

// Every byte string, escaped, is a valid JSON string that decodes to its valid UTF-8 with the
// rest replaced.
func TestAppendJSONStringAllBytes(t *testing.T) {
	in := make([]byte, 256)
	for i := range in {
		in[i] = byte(i)
	}
	quoted := `"` + string(appendJSONString(nil, in)) + `"`
	var v string
	if err := json.Unmarshal([]byte(quoted), &v); err != nil {
		t.Fatalf("%q: %v", quoted, err)
	}
	want := string(in[:0x80]) + strings.Repeat("\uFFFD", 0x80)
	actortest.Equal(t, "decoded", v, want)
}

func TestAppendQuoted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"curl/8.5.0", "curl/8.5.0"},
		{`say "hi"`, `say \x22hi\x22`},
		{`a\b`, `a\x5cb`},
		{"tab\there", `tab\x09here`},
		{"nl\r\n", `nl\x0d\x0a`},
		{"\x00\x7f", `\x00\x7f`},
		{"é", `\xc3\xa9`},
		{"\xff", `\xff`},
		{" !~", " !~"},
	}
	for _, tt := range tests {
		actortest.Equal(t, "appendQuoted("+tt.in+")", string(appendQuoted([]byte("x"), []byte(tt.in))), "x"+tt.want)
	}
	actortest.Equal(t, "appendQuotedOr(empty)", string(appendQuotedOr(nil, nil)), "-")
	actortest.Equal(t, "appendQuotedOr(value)", string(appendQuotedOr(nil, []byte(`"`))), `\x22`)
}

func TestAppendMillisAndSeconds(t *testing.T) {
	tests := []struct {
		d             time.Duration
		millis, secnd string
	}{
		{0, "0.000", "0.000000"},
		{999 * time.Nanosecond, "0.000", "0.000000"},
		{time.Microsecond, "0.001", "0.000001"},
		{1234567 * time.Nanosecond, "1.234", "0.001234"},
		{time.Millisecond, "1.000", "0.001000"},
		{1500 * time.Millisecond, "1500.000", "1.500000"},
		{61*time.Second + time.Microsecond, "61000.001", "61.000001"},
		{12345678901 * time.Nanosecond, "12345.678", "12.345678"},
	}
	for _, tt := range tests {
		actortest.Equal(t, "appendMillis("+tt.d.String()+")", string(appendMillis(nil, tt.d)), tt.millis)
		actortest.Equal(t, "appendSeconds("+tt.d.String()+")", string(appendSeconds(nil, tt.d)), tt.secnd)
	}
}

func TestMethodClass(t *testing.T) {
	tests := []struct {
		method string
		want   int
	}{
		{"GET", messages.MethodGET}, {"HEAD", messages.MethodHEAD}, {"POST", messages.MethodPOST},
		{"PUT", messages.MethodPUT}, {"DELETE", messages.MethodDELETE}, {"PATCH", messages.MethodPATCH},
		{"OPTIONS", messages.MethodOPTIONS}, {"TRACE", messages.MethodOther}, {"CONNECT", messages.MethodOther},
		{"get", messages.MethodOther}, {"GETS", messages.MethodOther}, {"", messages.MethodOther},
	}
	for _, tt := range tests {
		actortest.Equal(t, "methodClass("+tt.method+")", methodClass([]byte(tt.method)), tt.want)
	}
	actortest.Equal(t, "methodClass(nil)", methodClass(nil), messages.MethodOther)
}

func TestCodeClass(t *testing.T) {
	tests := []struct{ status, want int }{
		{-1, messages.CodeNone}, {0, messages.CodeNone},
		{100, messages.Code1xx}, {101, messages.Code1xx}, {199, messages.Code1xx},
		{200, messages.Code2xx}, {299, messages.Code2xx},
		{300, messages.Code3xx}, {399, messages.Code3xx},
		{400, messages.Code4xx}, {499, messages.Code4xx},
		{500, messages.Code5xx}, {599, messages.Code5xx},
	}
	for _, tt := range tests {
		actortest.Equal(t, "codeClass", []int{tt.status, codeClass(tt.status)}, []int{tt.status, tt.want})
	}
}

func TestParseLogFormat(t *testing.T) {
	for s, want := range map[string]LogFormat{"json": LogJSON, "combined": LogCombined} {
		got, err := ParseLogFormat(s)
		if err != nil || got != want {
			t.Fatalf("ParseLogFormat(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "JSON", "common", "clf"} {
		if _, err := ParseLogFormat(s); err == nil {
			t.Fatalf("ParseLogFormat(%q): no error", s)
		}
	}
}

// testRecord is a record with awkward bytes in every client-supplied field.
func testRecord(at time.Time) *logRecord {
	return &logRecord{at: at, client: []byte("127.0.0.1"), port: 50312, method: []byte("GET"),
		target: []byte("/a?q=\"x\"\\\x01\xff"), minor: 0, status: 502, bytesIn: 78, bytesOut: 1234,
		dur: 1234567 * time.Nanosecond, head: 910 * time.Microsecond, backend: "127.0.0.1:9001", retries: 2,
		outcome: "local", reason: messages.LocalBadGateway, requestID: []byte("id-1"),
		userAgent: []byte("ua \"q\"\n"), referer: []byte("http://r/")}
}

func TestAppendJSONRecord(t *testing.T) {
	at := time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.FixedZone("X", 3600))
	var tc timeCache
	line := string(testRecord(at).appendJSON(nil, &tc))
	want := `{"time":"2026-12-07T07:00:00.123Z","client":"127.0.0.1:50312","method":"GET",` +
		`"target":"/a?q=\"x\"\\\u0001\ufffd","proto":"HTTP/1.0","status":502,"bytes_in":78,"bytes_out":1234,` +
		`"duration_ms":1.234,"upstream_head_ms":0.910,"backend":"127.0.0.1:9001","retries":2,"outcome":"local",` +
		`"reason":"bad_gateway","request_id":"id-1","user_agent":"ua \"q\"\u000a"}` + "\n"
	actortest.Equal(t, "line", line, want)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}

	// No head read whole, nothing sent, no backend: empty fields, status 0, null head time.
	r := &logRecord{at: at.Add(1500 * time.Millisecond), client: []byte("10.0.0.1"), port: 1,
		dur: 10 * time.Second, outcome: "local", reason: messages.LocalRequestTimeout}
	line = string(r.appendJSON(nil, &tc))
	want = `{"time":"2026-12-07T07:00:01.623Z","client":"10.0.0.1:1","method":"","target":"","proto":"",` +
		`"status":0,"bytes_in":0,"bytes_out":0,"duration_ms":10000.000,"upstream_head_ms":null,"backend":"",` +
		`"retries":0,"outcome":"local","reason":"request_timeout","request_id":"","user_agent":""}` + "\n"
	actortest.Equal(t, "line without a head", line, want)
	if !json.Valid([]byte(line)) {
		t.Fatal("not JSON")
	}

	// An IPv6 client's address is bracketed, so that its port stays apart; durations never
	// print negative.
	r = &logRecord{at: at, client: []byte("::1"), port: 50312, dur: -time.Millisecond}
	line = string(r.appendJSON(nil, &tc))
	if !strings.Contains(line, `"client":"[::1]:50312"`) || !strings.Contains(line, `"duration_ms":0.000`) {
		t.Errorf("IPv6 client, negative duration: %s", line)
	}
}

func TestAppendCombinedRecord(t *testing.T) {
	at := time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC)
	var tc timeCache
	line := string(testRecord(at).appendCombined(nil, &tc))
	want := `127.0.0.1 - - [07/Dec/2026:08:00:00 +0000] "GET /a?q=\x22x\x22\x5c\x01\xff HTTP/1.0" 502 1234 ` +
		`"http://r/" "ua \x22q\x22\x0a" 78 0.001234 0.000910 127.0.0.1:9001 2 local bad_gateway "id-1"` + "\n"
	actortest.Equal(t, "line", line, want)

	r := &logRecord{at: at, client: []byte("10.0.0.1"), port: 1, dur: time.Second, outcome: "client_closed"}
	line = string(r.appendCombined(nil, &tc))
	want = `10.0.0.1 - - [07/Dec/2026:08:00:00 +0000] "-" - 0 "-" "-" 0 1.000000 - - 0 client_closed - "-"` + "\n"
	actortest.Equal(t, "line without a head", line, want)
	if regexp.MustCompile(`[\x00-\x1f\x7f-\xff]`).MatchString(strings.TrimSuffix(line, "\n")) {
		t.Fatal("a combined line holds a raw control or non-ASCII byte")
	}
}

// The time cache follows the record's second, in UTC, whatever order the records come in.
func TestTimeCacheFollowsTheSecond(t *testing.T) {
	var tc timeCache
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, at := range []time.Time{base, base.Add(999 * time.Millisecond), base.Add(time.Second), base,
		base.Add(-time.Hour), time.Unix(0, 0)} {
		tc.refresh(at)
		actortest.Equal(t, "iso", string(tc.iso), at.UTC().Format("2006-01-02T15:04:05"))
		actortest.Equal(t, "clf", string(tc.clf), at.UTC().Format("02/Jan/2006:15:04:05 +0000"))
	}
}
