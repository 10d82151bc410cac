package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// Durations in the logs read as a person writes them, in JSON too (where slog would write
// integer nanoseconds), also inside a group; other values keep their type.
func TestLogDurationsReadable(t *testing.T) {
	logLine := func(format string) string {
		var sb strings.Builder
		log := newLogger(&options{logFormat: format, logLevel: slog.LevelInfo}, &sb)
		log.Info("backend ejected", "for", 1500*time.Millisecond, "waited", 250*time.Millisecond,
			"ejections", 2, slog.Group("g", slog.Duration("took", 3*time.Microsecond)))
		return sb.String()
	}

	var got struct {
		For, Waited string
		Ejections   int
		G           struct{ Took string }
	}
	line := logLine("json")
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if got.For != "1.5s" || got.Waited != "250ms" || got.G.Took != "3µs" || got.Ejections != 2 {
		t.Errorf("json: got %+v from %s; want for 1.5s, waited 250ms, g.took 3µs, ejections 2", got, line)
	}

	line = logLine("text")
	for _, want := range []string{"for=1.5s", "waited=250ms", "ejections=2", "g.took=3µs"} {
		if !strings.Contains(line, want) {
			t.Errorf("text: %q lacks %q", line, want)
		}
	}
}

// --pprof-addr serves every page the index links to: each named profile, and the cmdline,
// profile, symbol and trace handlers.
func TestPprofServesEveryLinkedProfile(t *testing.T) {
	srv := httptest.NewServer(pprofMux())
	defer srv.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}

	index, err := url.Parse(srv.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	code, page := get(index.String())
	if code != http.StatusOK {
		t.Fatalf("index: got %d, want 200", code)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`href=['"]([^'"]+)['"]`).FindAllStringSubmatch(page, -1) {
		link, err := index.Parse(m[1])
		if err != nil {
			t.Fatalf("link %q: %v", m[1], err)
		}
		name := strings.TrimPrefix(link.Path, "/debug/pprof/")
		seen[name] = true
		if name == "profile" || name == "trace" { // 30 s and 1 s by default
			q := link.Query()
			q.Set("seconds", "1")
			link.RawQuery = q.Encode()
		}
		if code, body := get(link.String()); code != http.StatusOK {
			t.Errorf("%s: got %d %q, want 200", link.RequestURI(), code, body[:min(len(body), 200)])
		}
	}
	for _, name := range []string{"allocs", "block", "cmdline", "goroutine", "heap", "mutex", "profile", "symbol", "threadcreate", "trace"} {
		if !seen[name] {
			t.Errorf("the index links to no %s; links: %v", name, seen)
		}
	}
}

// --version names the version make set, or else what the toolchain recorded in the binary.
func TestBuildVersion(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tt := range []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{"set by make", "7fed2b9-dirty", &debug.BuildInfo{GoVersion: "go1.26.0"}, "7fed2b9-dirty"},
		{"no build information", "dev", nil, "(devel), " + runtime.Version()},
		// go build -buildvcs=false: nothing but the Go version.
		{"no VCS information", "dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "(devel), go1.26.0"},
		{"empty module version", "dev", &debug.BuildInfo{GoVersion: "go1.26.0"}, "(devel), go1.26.0"},
		// go install module@version.
		{"module version", "dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3, go1.26.0"},
		{"clean checkout", "dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs", "git", "vcs.revision", "7fed2b9a0c1e2d3f4a5b6c7d8e9f00112233aabb", "vcs.modified", "false")},
			"(devel), commit 7fed2b9a0c1e, go1.26.0"},
		{"modified checkout", "dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "7fed2b9a0c1e2d3f4a5b6c7d8e9f00112233aabb", "vcs.modified", "true")},
			"(devel), commit 7fed2b9a0c1e (modified), go1.26.0"},
		// Go 1.24 and later stamp a pseudo-version, which names the commit and the modification.
		{"pseudo-version", "dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260101000000-7fed2b9a0c1e+dirty"},
			Settings: settings("vcs.revision", "7fed2b9a0c1e2d3f4a5b6c7d8e9f00112233aabb", "vcs.modified", "true")},
			"v0.0.0-20260101000000-7fed2b9a0c1e+dirty, go1.26.0"},
		{"short revision", "dev", &debug.BuildInfo{Settings: settings("vcs.revision", "abc")}, "(devel), commit abc, " + runtime.Version()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildVersion(tt.version, tt.bi); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
