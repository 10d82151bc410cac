package health

import (
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	actortest.Equal(t, "interval", c.interval(), 3*time.Second)
	actortest.Equal(t, "timeout", c.timeout(), 2*time.Second)
	actortest.Equal(t, "rise", c.rise(), 1)
	actortest.Equal(t, "fall", c.fall(), 1)
	actortest.Equal(t, "notice gap", c.noticeGap(), 100*time.Millisecond)
	actortest.Equal(t, "check kind", c.Check.Kind, KindClassic)
	actortest.Equal(t, "http path", c.Check.path(), "/")
	actortest.Equal(t, "http method", c.Check.method(), "GET")
	actortest.Equal(t, "http status", c.Check.status(), DefaultStatus)
	// A negative gap is none at all.
	c.NoticeGap = -time.Millisecond
	actortest.Equal(t, "no notice gap", c.noticeGap(), time.Duration(0))
	if c.logger() == nil || c.dial() == nil {
		t.Fatal("zero Config has no logger or dialer")
	}
}

func TestConfigValidate(t *testing.T) {
	one := backends("127.0.0.1:8081")
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		// The shape cmd/loadbalancer builds.
		{"valid", Config{Backends: backends("127.0.0.1:8081", "localhost:8082")}, nil},
		// Start-up must name the problem, not probe nothing forever.
		{"no backend", Config{}, []string{"no backend"}},
		// Every problem at once, not only the first.
		{"all problems", Config{
			Backends: []messages.Backend{{Addr: "8081"}, {Addr: ""}},
			Interval: -time.Second,
			Timeout:  -time.Second,
			Rise:     -1,
			Fall:     -2,
		}, []string{"backend 0", "backend 1", "interval", "timeout", "rise", "fall"}},
		// Each kind with its defaults.
		{"http", Config{Backends: one, Check: Check{Kind: KindHTTP}}, nil},
		{"tcp", Config{Backends: one, Check: Check{Kind: KindTCP}}, nil},
		{"none", Config{Backends: one, Check: Check{Kind: KindNone}}, nil},
		// Everything the http check takes.
		{"http configured", Config{Backends: one, Rise: 2, Fall: 3, NoticeGap: -1, Check: Check{
			Kind: KindHTTP, Path: "/status?x=1", Method: "GET", Status: StatusSet{{200, 299}, {404, 404}}, Body: "ok", Host: "app.example:80",
		}}, nil},
		{"http HEAD", Config{Backends: one, Check: Check{Kind: KindHTTP, Method: "HEAD"}}, nil},
		// The http check's problems, all at once: each would break the request line, or never
		// pass.
		{"http problems", Config{Backends: one, Check: Check{
			Kind: KindHTTP, Path: "status page", Method: "get", Status: StatusSet{{399, 200}, {600, 600}}, Host: "a b",
		}}, []string{`path "status page" must start with '/'`, "space, control or non-ASCII character", `method "get" must be GET or HEAD`,
			"range 399-200 runs backwards", "range 600 is outside 100-599", `host "a b"`}},
		// A response to HEAD has no body to look into.
		{"HEAD with body", Config{Backends: one, Check: Check{Kind: KindHTTP, Method: "HEAD", Body: "ok"}}, []string{"body needs method GET"}},
		// A header injected through the path.
		{"CRLF in path", Config{Backends: one, Check: Check{Kind: KindHTTP, Path: "/\r\nX: y"}}, []string{"control or non-ASCII character"}},
		// http settings with another kind are a mistake on the command line, not ignored.
		{"http settings for classic", Config{Backends: one, Check: Check{Path: "/", Body: "ok"}}, []string{"check path, body set for the classic check"}},
		{"http settings for tcp", Config{Backends: one, Check: Check{Kind: KindTCP, Status: DefaultStatus}}, []string{"check status set for the tcp check"}},
		// A Kind that ParseKind never returns.
		{"unknown kind", Config{Backends: one, Check: Check{Kind: 9}}, []string{"unknown check kind Kind(9)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("got %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
