package health

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// byPath answers 200 to a GET of path and 404 to anything else, then closes.
func byPath(path string) handler {
	return func(c net.Conn, _ <-chan struct{}) {
		_ = c.SetDeadline(time.Now().Add(actortest.Wait))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		status := "404 Not Found"
		if strings.HasPrefix(line, "GET "+path+" ") {
			status = "200 OK"
		}
		_, _ = io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
}

// A backend's own http check settings replace the global ones for it only.
func TestBackendHealthOverride(t *testing.T) {
	root, alive := serve(t, byPath("/")), serve(t, byPath("/alive"))
	bs := backends(root.addr, alive.addr, alive.addr)
	bs[1].Health = messages.HealthOverride{Path: "/alive"}
	_, dispatcher, _ := spawnMonitor(t, &Config{Backends: bs, Interval: never,
		Check: Check{Kind: KindHTTP}, Rise: 1, Fall: 1})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	// The third is the same server without the override: / is 404 there.
	checkReport(t, r, messages.BackendHealth{Up: true}, messages.BackendHealth{Up: true}, down)
}

func TestCheckFor(t *testing.T) {
	httpCheck := Check{Kind: KindHTTP, Path: "/health", Method: "GET"}
	got, err := httpCheck.For(messages.HealthOverride{Path: "/ready", Status: "200-204", Host: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != "/ready" || got.Method != "GET" || got.Host != "api" || len(got.Status) == 0 {
		t.Fatalf("For: %+v", got)
	}
	if same, err := httpCheck.For(messages.HealthOverride{}); err != nil || same.Path != "/health" {
		t.Fatalf("no override: %+v %v", same, err)
	}
	for _, tc := range []struct {
		check Check
		o     messages.HealthOverride
	}{
		{Check{}, messages.HealthOverride{Path: "/x"}},                   // classic: overrides are http only
		{Check{Kind: KindTCP}, messages.HealthOverride{Host: "h"}},       // tcp: the same
		{httpCheck, messages.HealthOverride{Path: "x"}},                  // not a path
		{httpCheck, messages.HealthOverride{Method: "POST"}},             // GET or HEAD
		{httpCheck, messages.HealthOverride{Status: "abc"}},              // not a status set
		{httpCheck, messages.HealthOverride{Method: "HEAD", Body: "ok"}}, // HEAD has no body
	} {
		if _, err := tc.check.For(tc.o); err == nil {
			t.Errorf("%v check with %+v: no error", tc.check.Kind, tc.o)
		}
	}
}
