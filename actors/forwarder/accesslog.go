package forwarder

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/loadbalancer/loadbalancer/messages"
)

// LogFormat is the access log's line format.
type LogFormat uint8

const (
	// LogJSON writes one JSON object per line (see logRecord.appendJSON).
	LogJSON LogFormat = iota + 1
	// LogCombined writes the Apache/nginx "combined" format followed by the fields it lacks.
	LogCombined
)

// ParseLogFormat parses "json" or "combined".
func ParseLogFormat(s string) (LogFormat, error) {
	switch s {
	case "json":
		return LogJSON, nil
	case "combined":
		return LogCombined, nil
	}
	return 0, fmt.Errorf("unknown access log format %q (want json or combined)", s)
}

// logRecord is one finished request, as the access log writes it. Its byte slices point into
// the connection's buffers and are valid only while the line is appended.
type logRecord struct {
	at         time.Time
	client     []byte // IP
	port       uint16
	method     []byte // nil when no head was read whole
	target     []byte
	minor      int
	status     int // 0: nothing was sent
	bytesIn    uint64
	bytesOut   uint64
	dur        time.Duration
	head       time.Duration // to the backend's response head; 0: none
	backend    string
	retries    int
	outcome    string
	reason     messages.LocalReason
	requestID  []byte
	userAgent  []byte
	referer    []byte
	requestIDv [36]byte // a generated request ID's text, when requestID points here
}

// timeCache keeps the formatted second of the last line, which most lines share.
type timeCache struct {
	sec      int64
	iso, clf []byte
}

func (tc *timeCache) refresh(t time.Time) {
	if s := t.Unix(); s != tc.sec || tc.iso == nil {
		tc.sec = s
		tc.iso = t.UTC().AppendFormat(tc.iso[:0], "2006-01-02T15:04:05")
		tc.clf = t.UTC().AppendFormat(tc.clf[:0], "02/Jan/2006:15:04:05 +0000")
	}
}

// appendJSON appends the record as one JSON line:
//
//	{"time":"2026-12-07T08:00:00.123Z","client":"127.0.0.1:50312","method":"GET","target":"/a",
//	 "proto":"HTTP/1.1","status":200,"bytes_in":78,"bytes_out":1234,"duration_ms":1.234,
//	 "upstream_head_ms":0.91,"backend":"127.0.0.1:9001","retries":0,"outcome":"ok","reason":"",
//	 "request_id":"…","user_agent":"curl/8.5.0"}
//
// status is 0 when nothing was sent; method, target and proto are empty when no head was read
// whole (a 408, say); upstream_head_ms is null when no response head came.
func (r *logRecord) appendJSON(b []byte, tc *timeCache) []byte {
	tc.refresh(r.at)
	b = append(b, `{"time":"`...)
	b = append(b, tc.iso...)
	b = append(b, '.')
	b = appendPadded(b, r.at.Nanosecond()/1e6, 3)
	b = append(b, `Z","client":"`...)
	if bytes.IndexByte(r.client, ':') >= 0 {
		b = append(b, '[') // IPv6: [::1]:50312
		b = appendJSONString(b, r.client)
		b = append(b, ']')
	} else {
		b = appendJSONString(b, r.client)
	}
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(r.port), 10)
	b = append(b, `","method":"`...)
	b = appendJSONString(b, r.method)
	b = append(b, `","target":"`...)
	b = appendJSONString(b, r.target)
	b = append(b, `","proto":"`...)
	if r.method != nil {
		b = appendProto(b, r.minor)
	}
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendUint(b, r.bytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendUint(b, r.bytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, r.dur)
	b = append(b, `,"upstream_head_ms":`...)
	if r.head > 0 {
		b = appendMillis(b, r.head)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"backend":"`...)
	b = append(b, r.backend...) // host:port, nothing to escape
	b = append(b, `","retries":`...)
	b = strconv.AppendInt(b, int64(r.retries), 10)
	b = append(b, `,"outcome":"`...)
	b = append(b, r.outcome...)
	b = append(b, `","reason":"`...)
	b = append(b, r.reason.String()...)
	b = append(b, `","request_id":"`...)
	b = appendJSONString(b, r.requestID)
	b = append(b, `","user_agent":"`...)
	b = appendJSONString(b, r.userAgent)
	return append(b, "\"}\n"...)
}

// appendCombined appends the record in the combined format, then the fields it lacks:
//
//	127.0.0.1 - - [07/Dec/2026:08:00:00 +0000] "GET /a HTTP/1.1" 200 1234 "-" "curl/8.5.0" 78 0.001234 0.000910 127.0.0.1:9001 0 ok - "…"
//
// The extra fields are bytes in, duration and time to the upstream response head in seconds
// ("-" when none came), backend ("-" when none), retries, outcome, the load balancer's reason
// for answering itself ("-" when it did not) and the request ID in quotes.
func (r *logRecord) appendCombined(b []byte, tc *timeCache) []byte {
	tc.refresh(r.at)
	b = append(b, r.client...)
	b = append(b, " - - ["...)
	b = append(b, tc.clf...)
	b = append(b, `] "`...)
	if r.method != nil {
		b = appendQuoted(b, r.method)
		b = append(b, ' ')
		b = appendQuoted(b, r.target)
		b = append(b, ' ')
		b = appendProto(b, r.minor)
	} else {
		b = append(b, '-')
	}
	b = append(b, `" `...)
	if r.status > 0 {
		b = strconv.AppendInt(b, int64(r.status), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, r.bytesOut, 10)
	b = append(b, ` "`...)
	b = appendQuotedOr(b, r.referer)
	b = append(b, `" "`...)
	b = appendQuotedOr(b, r.userAgent)
	b = append(b, `" `...)
	b = strconv.AppendUint(b, r.bytesIn, 10)
	b = append(b, ' ')
	b = appendSeconds(b, r.dur)
	b = append(b, ' ')
	if r.head > 0 {
		b = appendSeconds(b, r.head)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	if r.backend != "" {
		b = append(b, r.backend...)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.retries), 10)
	b = append(b, ' ')
	b = append(b, r.outcome...)
	b = append(b, ' ')
	if r.reason != messages.LocalNone {
		b = append(b, r.reason.String()...)
	} else {
		b = append(b, '-')
	}
	b = append(b, ` "`...)
	b = appendQuotedOr(b, r.requestID)
	return append(b, "\"\n"...)
}

func appendProto(b []byte, minor int) []byte {
	if minor == 0 {
		return append(b, "HTTP/1.0"...)
	}
	return append(b, "HTTP/1.1"...)
}

// appendPadded appends n with leading zeros to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendMillis appends d in milliseconds with three decimals (microseconds).
func appendMillis(b []byte, d time.Duration) []byte {
	us := max(d, 0).Microseconds()
	b = strconv.AppendInt(b, us/1000, 10)
	b = append(b, '.')
	return appendPadded(b, int(us%1000), 3)
}

// appendSeconds appends d in seconds with six decimals (microseconds).
func appendSeconds(b []byte, d time.Duration) []byte {
	us := max(d, 0).Microseconds()
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	return appendPadded(b, int(us%1e6), 6)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s escaped for the inside of a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// appendQuoted appends s for the inside of a quoted field of the combined format, as nginx
// escapes it: quotes, backslashes and bytes outside printable ASCII as \xHH.
func appendQuoted(b, s []byte) []byte {
	for _, c := range s {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendQuotedOr is appendQuoted with "-" for an empty value.
func appendQuotedOr(b, s []byte) []byte {
	if len(s) == 0 {
		return append(b, '-')
	}
	return appendQuoted(b, s)
}

// methodClass maps a method to its class in TrafficStats.
func methodClass(m []byte) int {
	switch string(m) {
	case "GET":
		return messages.MethodGET
	case "HEAD":
		return messages.MethodHEAD
	case "POST":
		return messages.MethodPOST
	case "PUT":
		return messages.MethodPUT
	case "DELETE":
		return messages.MethodDELETE
	case "PATCH":
		return messages.MethodPATCH
	case "OPTIONS":
		return messages.MethodOPTIONS
	}
	return messages.MethodOther
}

// codeClass maps a status to its class in TrafficStats (0: none sent).
func codeClass(status int) int {
	switch {
	case status <= 0:
		return messages.CodeNone
	case status < 200:
		return messages.Code1xx
	case status < 300:
		return messages.Code2xx
	case status < 400:
		return messages.Code3xx
	case status < 500:
		return messages.Code4xx
	}
	return messages.Code5xx
}
