package forwarder

import (
	"testing"
	"time"
)

// BenchmarkAccessLogLine formats one typical access log line per iteration into a reused
// buffer, as a loop does: it must not allocate.
func BenchmarkAccessLogLine(b *testing.B) {
	r := logRecord{at: time.Now(), client: []byte("127.0.0.1"), port: 50312, method: []byte("GET"),
		target: []byte("/static/app.js?v=3"), minor: 1, status: 200, bytesIn: 78, bytesOut: 1234,
		dur: 1234567 * time.Nanosecond, head: 910 * time.Microsecond, backend: "127.0.0.1:9001",
		outcome: "ok", requestID: []byte("ef43a74f-8932-4cd7-90d9-33f3ed69c46f"),
		userAgent: []byte("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")}
	for _, f := range []struct {
		name   string
		format func(*logRecord, []byte, *timeCache) []byte
	}{{"json", (*logRecord).appendJSON}, {"combined", (*logRecord).appendCombined}} {
		b.Run(f.name, func(b *testing.B) {
			buf := make([]byte, 0, 64<<10)
			var tc timeCache
			b.ReportAllocs()
			for b.Loop() {
				buf = f.format(&r, buf[:0], &tc)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
