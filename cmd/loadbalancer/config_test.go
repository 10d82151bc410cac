package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/messages"
)

// writeConfig writes a config file named lb.yaml in a fresh directory and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lb.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// parseConfigArgs runs parseArgs with --config on a file holding text, then args; errors name
// the file lb.yaml.
func parseConfigArgs(t *testing.T, text string, args ...string) (*options, string) {
	t.Helper()
	path := writeConfig(t, text)
	o, err := parseArgs(append([]string{"--config", path}, args...), io.Discard)
	if err != nil {
		return o, strings.ReplaceAll(err.Error(), path, "lb.yaml")
	}
	return o, ""
}

// The minimal example.
func TestConfigMinimal(t *testing.T) {
	o, err := parseConfigArgs(t, `listen: 127.0.0.1:8080
backends:
  - address: 127.0.0.1:9001
    weight: 2
  - address: 127.0.0.1:9002
`)
	if err != "" {
		t.Fatalf("got error %s, want none", err)
	}
	want := []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 2}, {Addr: "127.0.0.1:9002", Weight: 1}}
	if o.bind != "127.0.0.1" || o.port != 8080 || !reflect.DeepEqual(o.backends, want) {
		t.Fatalf("got bind %q port %d backends %+v, want 127.0.0.1 8080 %+v", o.bind, o.port, o.backends, want)
	}
	if o.n != 4 || o.r != 5 || o.healthInterval != 3*time.Second { // the flags' defaults
		t.Fatalf("got N %d R %d health interval %v, want the defaults 4, 5, 3s", o.n, o.r, o.healthInterval)
	}
}

// Flag keys go through the flags' own values and validation; a backend's keys fill its
// messages.Backend.
func TestConfigFillsOptionsAndBackends(t *testing.T) {
	o, err := parseConfigArgs(t, `listen: "[::1]:8081"
connections: 8
requests: 3
health_check: http
health_path: /healthz
health_interval: 1500ms
no_eject: true
policy: round-robin
hash_balance: 1.5
error_codes: gateway
backends:
  - address: 9001
    weight: 3
    max_in_flight: 10
  - address: localhost:9002
    backup: true
    health:
      path: /status
      method: head
      status: 200-299,404
      host: example.org
  - address: 127.0.0.1:9003
    health: {body: ok}
`)
	if err != "" {
		t.Fatalf("got error %s, want none", err)
	}
	want := []messages.Backend{
		{Addr: "127.0.0.1:9001", Weight: 3, MaxInFlight: 10},
		{Addr: "localhost:9002", Weight: 1, Backup: true,
			Health: messages.HealthOverride{Path: "/status", Method: "HEAD", Status: "200-299,404", Host: "example.org"}},
		{Addr: "127.0.0.1:9003", Weight: 1, Health: messages.HealthOverride{Body: "ok"}},
	}
	if !reflect.DeepEqual(o.backends, want) {
		t.Errorf("backends:\n got %+v\nwant %+v", o.backends, want)
	}
	if o.bind != "::1" || o.port != 8081 || o.n != 8 || o.r != 3 || !o.rExplicit || o.check.Path != "/healthz" ||
		o.healthInterval != 1500*time.Millisecond || o.eject.Consecutive5xx != 0 || o.policy.Name != "round-robin" ||
		o.policy.HashBalance != 1.5 || o.errorMode == forwarder.ErrorsClassic {
		t.Errorf("got %+v", o)
	}
}

// Every problem in the file is reported, each at its line and column, in the order of the file.
func TestConfigErrors(t *testing.T) {
	const backends = "backends:\n  - address: 9001\n"
	for _, tt := range []struct {
		name, text string
		args       []string
		want       string // the whole error
	}{
		{name: "unknown key", text: "listen: :8080\nhealth_intervall: 3s\n" + backends,
			want: `lb.yaml:2:1: unknown key "health_intervall" (did you mean "health_interval"?)`},
		{name: "a flag's name with dashes", text: "listen: :8080\nmax-per-backend: 3\n" + backends,
			want: `lb.yaml:2:1: unknown key "max-per-backend" (did you mean "max_per_backend"?)`},
		{name: "unknown key, nothing near", text: "listen: :8080\nfrobnicate: 3\n" + backends,
			want: `lb.yaml:2:1: unknown key "frobnicate"`},
		{name: "a key people reach for", text: "port: 8080\n" + backends,
			want: "lb.yaml: need a port to listen on: give listen: HOST:PORT (or PORT on the command line)\n" +
				`lb.yaml:1:1: unknown key "port" (did you mean "listen"?)`},
		{name: "a backend's key at the top", text: "listen: :8080\nweight: 2\n" + backends,
			want: `lb.yaml:2:1: unknown key "weight" at the top: it is a backend's key (under backends)`},
		{name: "unknown key in a backend", text: "listen: :8080\nbackends:\n  - address: 9001\n    wieght: 2\n",
			want: `lb.yaml:4:5: unknown key "wieght" in a backend (did you mean "weight"?)`},
		{name: "unknown key in health", text: "listen: :8080\nhealth_check: http\nbackends:\n  - address: 9001\n    health:\n      paht: /x\n",
			want: `lb.yaml:6:7: unknown key "paht" in a backend's health (did you mean "path"?)`},
		{name: "command-line only", text: "listen: :8080\ncheck: true\n" + backends,
			want: `lb.yaml:2:1: "check" is for the command line only (--check)`},
		{name: "a list for a duration", text: "listen: :8080\nhealth_interval: [3s]\n" + backends,
			want: `lb.yaml:2:18: health_interval takes a single value, not a list`},
		{name: "a mapping for a duration", text: "listen: :8080\nhealth_interval:\n  value: 3s\n" + backends,
			want: `lb.yaml:3:3: health_interval takes a single value, not a mapping`},
		{name: "a bad duration", text: "listen: :8080\nhealth_interval: 3x\n" + backends,
			want: `lb.yaml:2:18: health_interval: "3x" must be a duration like "30s" or "5m"`},
		{name: "a word for a number", text: "listen: :8080\nconnections: abc\n" + backends,
			want: `lb.yaml:2:14: connections: "abc" must be an integer`},
		{name: "a word for a boolean", text: "listen: :8080\nno_eject: yes please\n" + backends,
			want: `lb.yaml:2:11: no_eject: "yes please" must be true or false`},
		{name: "no value", text: "listen: :8080\nhealth_timeout:\n" + backends,
			want: `lb.yaml:2:16: health_timeout has no value (write "" for an empty one)`},
		// Caught by parseArgs's checks after the merge, put back at the value's position.
		{name: "a negative timeout", text: "listen: :8080\nqueue_timeout: -1s\n" + backends,
			want: `lb.yaml:2:16: queue_timeout must be positive, got -1s`},
		{name: "connections zero", text: "listen: :8080\nconnections: 0\n" + backends,
			want: `lb.yaml:2:14: connections must be a positive number, got 0`},
		{name: "an unknown policy", text: "listen: :8080\npolicy: fastest\n" + backends,
			want: `lb.yaml:2:9: policy: want one of classic, round-robin, least-request, random, p2c, peak-ewma, hash, got "fastest"`},
		{name: "a bad status set", text: "listen: :8080\nhealth_status: 200-\n" + backends,
			want: `lb.yaml:2:16: health_status: health: status set "200-": range "200-" lacks an end`},
		{name: "weight zero", text: "listen: :8080\nbackends:\n  - address: 9001\n    weight: 0\n",
			want: `lb.yaml:4:13: weight: want a whole number from 1 to 1000, got "0"`},
		{name: "weight too big", text: "listen: :8080\nbackends:\n  - address: 9001\n    weight: 2000\n",
			want: `lb.yaml:4:13: weight: want a whole number from 1 to 1000, got "2000"`},
		{name: "negative max_in_flight", text: "listen: :8080\nbackends:\n  - address: 9001\n    max_in_flight: -1\n",
			want: `lb.yaml:4:20: max_in_flight: want a whole number, 0 or more (0: max_per_backend's cap), got "-1"`},
		{name: "backup not a boolean", text: "listen: :8080\nbackends:\n  - address: 9001\n    backup: maybe\n",
			want: `lb.yaml:4:13: backup: want true or false, got "maybe"`},
		{name: "address a URL", text: "listen: :8080\nbackends:\n  - address: http://127.0.0.1:9001/\n",
			want: `lb.yaml:3:14: address "http://127.0.0.1:9001/": give HOST:PORT, without a scheme (http://) or path (did you mean 127.0.0.1:9001?)`},
		{name: "address with a bad port", text: "listen: :8080\nbackends:\n  - address: host:99999\n",
			want: `lb.yaml:3:14: address "host:99999": "99999" is not a port number (1-65535)`},
		{name: "address with a weight", text: "listen: :8080\nbackends:\n  - address: 9001@2\n",
			want: `lb.yaml:3:14: address "9001@2": give the weight as weight: N, not @N`},
		{name: "no address", text: "listen: :8080\nbackends:\n  - weight: 2\n",
			want: `lb.yaml:3:5: a backend needs an address (address: HOST:PORT)`},
		{name: "a backend not a mapping", text: "listen: :8080\nbackends:\n  - 9001\n",
			want: `lb.yaml:3:5: a backend is a mapping (- address: HOST:PORT), not the value "9001"`},
		{name: "duplicate address", text: "listen: :8080\nbackends:\n  - address: 9001\n  - address: 9002\n  - address: 127.0.0.1:9001\n",
			want: `lb.yaml:5:14: backend 127.0.0.1:9001 listed twice (first at line 3:14)`},
		{name: "duplicate key", text: "listen: :8080\nbackends:\n  - address: 9001\n    weight: 2\n    weight: 3\n",
			want: `lb.yaml:5:5: key "weight" in a backend given twice (first at line 4:5)`},
		{name: "health overrides with the classic check", text: "listen: :8080\nbackends:\n  - address: 9001\n    health:\n      path: /x\n",
			want: `lb.yaml:4:5: health: a backend's own health check settings apply to the http check only (health_check: http), and the check is classic`},
		// The check kind from the command line, the override from the file: the file's error.
		{name: "health overrides with --health-check tcp", text: "listen: :8080\nhealth_check: http\nbackends:\n  - address: 9001\n    health: {path: /x}\n",
			args: []string{"--health-check", "tcp"},
			want: `lb.yaml:5:5: health: a backend's own health check settings apply to the http check only (health_check: http), and the check is tcp`},
		{name: "health method HEAD with the global body", text: "listen: :8080\nhealth_check: http\nhealth_body: ok\nbackends:\n  - address: 9001\n    health: {method: HEAD}\n",
			want: `lb.yaml:6:22: health: a check body needs method GET (a response to HEAD has no body)`},
		{name: "health bad values", text: "listen: :8080\nhealth_check: http\nbackends:\n  - address: 9001\n    health:\n      path: x\n      method: POST\n      status: 600\n      host: a b\n",
			want: "lb.yaml:6:13: health.path must start with '/', got \"x\"\n" +
				"lb.yaml:7:15: health.method: want GET or HEAD, got \"POST\"\n" +
				"lb.yaml:8:15: health.status: health: status set \"600\": status code 600 is outside 100-599\n" +
				`lb.yaml:9:13: health.host has a space, control or non-ASCII character at 1: "a b"`},
		{name: "listen a bare port", text: "listen: 8080\n" + backends,
			want: `lb.yaml:1:9: listen: want HOST:PORT or :PORT, got "8080" (did you mean ":8080"?)`},
		{name: "listen a URL", text: "listen: http://127.0.0.1:8080/\n" + backends,
			want: `lb.yaml:1:9: listen: want HOST:PORT or :PORT, without a scheme (http://) or path, got "http://127.0.0.1:8080/"`},
		{name: "listen a bad port", text: "listen: :0\n" + backends,
			want: `lb.yaml:1:9: listen: "0" is not a port number (1-65535)`},
		{name: "listen and bind", text: "listen: 127.0.0.1:8080\nbind: 0.0.0.0\n" + backends,
			want: `lb.yaml:2:7: bind: listen gives the address already (127.0.0.1); give it once`},
		{name: "bind with a port", text: "listen: :8080\nbind: 127.0.0.1:80\n" + backends,
			want: `lb.yaml:2:7: bind takes an address without a port (the port is listen's): got 127.0.0.1:80`},
		{name: "an empty backends list", text: "listen: :8080\nbackends: []\n",
			want: `lb.yaml:2:1: backends: need at least one backend (or SERVER arguments on the command line)`},
		{name: "no backends", text: "listen: :8080\n",
			want: `lb.yaml: need at least one backend: give a backends list (or SERVER arguments on the command line)`},
		{name: "backends not a list", text: "listen: :8080\nbackends: 9001\n",
			want: `lb.yaml:2:11: backends is a list (- address: HOST:PORT), not the value "9001"`},
		{name: "empty file", text: "# nothing yet\n",
			want: "lb.yaml: need a port to listen on: give listen: HOST:PORT (or PORT on the command line)\n" +
				"lb.yaml: need at least one backend: give a backends list (or SERVER arguments on the command line)"},
		{name: "not a mapping", text: "- listen: :8080\n",
			want: `lb.yaml:1:1: the config file is a mapping of KEY: VALUE (listen: 127.0.0.1:8080), not a list`},
		{name: "two documents", text: "listen: :8080\n" + backends + "---\nconnections: 3\n",
			want: `lb.yaml:4:1: a second YAML document: the config file holds one`},
		// The YAML parser places its errors by line only.
		{name: "not YAML", text: "listen: :8080\nbackends:\n  - address: 9001\n weight: 2\n",
			want: `lb.yaml:4: did not find expected key`},
		{name: "not YAML, a tab", text: "listen: :8080\n\tconnections: 3\n",
			want: `lb.yaml:2: found a tab character that violates indentation`},
		{name: "not YAML, an unclosed list", text: "listen: :8080\nbackends: [9001\nconnections: 3\n",
			want: `lb.yaml:2: did not find expected ',' or ']'`},
		{name: "not YAML, on line 1", text: "listen: [::1]:8080\n" + backends,
			want: "lb.yaml:1: did not find expected node content (a value that starts with [, ], {, }, @ or ` needs quotes: \"[::1]:8080\")"},
		{name: "not YAML, on line 1, scanner", text: "listen: @8080\n" + backends,
			want: "lb.yaml:1: found character that cannot start any token (a value that starts with [, ], {, }, @ or ` needs quotes: \"[::1]:8080\")"},
		{name: "not YAML, on line 3", text: "listen: :8080\nconnections: 3\nbind: ]\n" + backends,
			want: "lb.yaml:3: did not find expected node content (a value that starts with [, ], {, }, @ or ` needs quotes: \"[::1]:8080\")"},
		{name: "an unknown anchor", text: "listen: :8080\nconnections: *n\n" + backends,
			want: "lb.yaml: unknown anchor 'n' referenced"},
		{name: "anchors and aliases", text: "listen: :8080\nhealth_check: http\nbackends:\n  - address: 9001\n    health: &h {path: /x}\n  - address: 9002\n    health: *h\n" +
			"  - address: 9003\n    health: *h\n    health: {}\n  - address: 9004\n    health: {paht: /y}\n",
			want: "lb.yaml:10:5: key \"health\" in a backend given twice (first at line 9:5)\n" +
				"lb.yaml:12:14: unknown key \"paht\" in a backend's health (did you mean \"path\"?)"},
		{name: "every problem, in the file's order", text: `listen: :8080
health_interval: 3x
connections: abc
backends:
  - address: 9001
    wieght: 2
  - address: 9001
    weight: 0
stall_after: -1s
`,
			want: "lb.yaml:2:18: health_interval: \"3x\" must be a duration like \"30s\" or \"5m\"\n" +
				"lb.yaml:3:14: connections: \"abc\" must be an integer\n" +
				"lb.yaml:6:5: unknown key \"wieght\" in a backend (did you mean \"weight\"?)\n" +
				"lb.yaml:8:13: weight: want a whole number from 1 to 1000, got \"0\"\n" +
				"lb.yaml:9:14: stall_after must not be negative, got -1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfigArgs(t, tt.text, tt.args...)
			if err != tt.want {
				t.Fatalf("got error\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

// problems unwraps as errors.Join's error does: one error a problem, each with its place.
func TestProblemsUnwrap(t *testing.T) {
	path := writeConfig(t, "listen: :8080\nconnections: abc\nbackends:\n  - address: 9001\n    weight: 0\n")
	_, err := parseArgs([]string{"--config", path, "--max-conns", "0"}, io.Discard)
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("%T has no Unwrap() []error", err)
	}
	var got []string
	for _, e := range j.Unwrap() {
		got = append(got, strings.ReplaceAll(e.Error(), path, "lb.yaml"))
	}
	want := []string{`lb.yaml:2:14: connections: "abc" must be an integer`,
		`lb.yaml:5:13: weight: want a whole number from 1 to 1000, got "0"`, "--max-conns must be positive, got 0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Flags on the command line override the file's keys; PORT replaces listen's port, SERVERs the
// backends list.
func TestConfigCommandLineOverrides(t *testing.T) {
	const file = `listen: 127.0.0.1:8080
connections: 16
health_interval: 5s
backends:
  - address: 9001
    weight: 2
  - address: 9002
`
	for _, tt := range []struct {
		name         string
		args         string
		wantBind     string
		wantPort     int
		wantN        int
		wantBackends []messages.Backend
		wantErr      string
	}{
		{name: "the file alone", wantBind: "127.0.0.1", wantPort: 8080, wantN: 16,
			wantBackends: []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 2}, {Addr: "127.0.0.1:9002", Weight: 1}}},
		{name: "a flag", args: "-N 3", wantBind: "127.0.0.1", wantPort: 8080, wantN: 3,
			wantBackends: []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 2}, {Addr: "127.0.0.1:9002", Weight: 1}}},
		{name: "PORT keeps listen's host", args: "9090", wantBind: "127.0.0.1", wantPort: 9090, wantN: 16,
			wantBackends: []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 2}, {Addr: "127.0.0.1:9002", Weight: 1}}},
		{name: "--bind replaces listen's host", args: "--bind ::1", wantBind: "::1", wantPort: 8080, wantN: 16,
			wantBackends: []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 2}, {Addr: "127.0.0.1:9002", Weight: 1}}},
		{name: "SERVERs replace the backends", args: "9090 7001@4 7002 --connections 2", wantBind: "127.0.0.1", wantPort: 9090, wantN: 2,
			wantBackends: []messages.Backend{{Addr: "127.0.0.1:7001", Weight: 4}, {Addr: "127.0.0.1:7002", Weight: 1}}},
		// An error in a value from the command line is the command line's.
		{name: "a bad flag value", args: "--health-interval 0s", wantErr: "--health-interval must be positive, got 0s"},
		{name: "a bad PORT", args: "x", wantErr: `listen port: "x" is not a port number (1-65535)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseConfigArgs(t, file, strings.Fields(tt.args)...)
			if err != tt.wantErr {
				t.Fatalf("got error %q, want %q", err, tt.wantErr)
			}
			if err != "" {
				return
			}
			if o.bind != tt.wantBind || o.port != tt.wantPort || o.n != tt.wantN || o.healthInterval != 5*time.Second ||
				!reflect.DeepEqual(o.backends, tt.wantBackends) {
				t.Fatalf("got bind %q port %d N %d interval %v backends %+v, want %q %d %d 5s %+v",
					o.bind, o.port, o.n, o.healthInterval, o.backends, tt.wantBind, tt.wantPort, tt.wantN, tt.wantBackends)
			}
		})
	}

	// The overridden key's value is ignored, but it must still be one the flag takes.
	o, err := parseConfigArgs(t, "listen: :8080\nconnections: 0\nbackends:\n  - address: 9001\n", "-N", "2")
	if err != "" || o.n != 2 || !reflect.DeepEqual(o.file.overridden, []string{"connections"}) {
		t.Errorf("connections 0 under -N 2: got error %q, N %d, overridden %v; want none, 2, [connections]", err, o.n, o.file.overridden)
	}
	if _, err := parseConfigArgs(t, "listen: :8080\nconnections: many\nbackends:\n  - address: 9001\n", "-N", "2"); err != `lb.yaml:2:14: connections: "many" must be an integer` {
		t.Errorf("connections many under -N 2: got error %q", err)
	}
}

// --check prints a summary on stdout and exits 0, or every error on stderr and exits 1; an
// error in the file at a normal start exits 1, one on the command line 2.
func TestRunCheckAndConfigErrors(t *testing.T) {
	good := writeConfig(t, "listen: 127.0.0.1:8080\nbackends:\n  - address: 9001\n  - address: 9002\n")
	bad := writeConfig(t, "listen: :8080\nconnections: abc\nbackends:\n  - address: 9001\n    weight: 0\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // whole
		wantStderr string // whole
	}{
		{"check a good file", []string{"--config", good, "--check"}, 0, good + ": ok (2 backends, listen 127.0.0.1:8080)\n", ""},
		{"check a good file, overridden", []string{"--check", "--config", good, "9000", "7001"}, 0, good + ": ok (1 backend, listen 127.0.0.1:9000)\n", ""},
		{"check a bad file", []string{"--config", bad, "--check"}, 1, "",
			bad + ":2:14: connections: \"abc\" must be an integer\n" + bad + ":5:13: weight: want a whole number from 1 to 1000, got \"0\"\n"},
		{"check a bad file and a bad flag", []string{"--config", bad, "--check", "--max-conns", "0"}, 1, "",
			bad + ":2:14: connections: \"abc\" must be an integer\n" + bad + ":5:13: weight: want a whole number from 1 to 1000, got \"0\"\n" +
				"loadbalancer: --max-conns must be positive, got 0\n"},
		{"check a missing file", []string{"--config", missing, "--check"}, 1, "", missing + ": cannot read the config file: no such file or directory\n"},
		{"check the command line", []string{"--check", "8080", "9001", "9002@2"}, 0, "loadbalancer: ok (2 backends, listen :8080)\n", ""},
		{"check a bad command line", []string{"--check", "8080"}, 1, "", "loadbalancer: need a port and at least one backend\n"},
		{"start with a bad file", []string{"--config", bad}, 1, "",
			bad + ":2:14: connections: \"abc\" must be an integer\n" + bad + ":5:13: weight: want a whole number from 1 to 1000, got \"0\"\n"},
		{"start with a missing file", []string{"--config", missing}, 1, "", missing + ": cannot read the config file: no such file or directory\n"},
		{"start with a bad flag besides", []string{"--config", good, "--max-conns", "0"}, 2, "",
			"loadbalancer: --max-conns must be positive, got 0\n" + usageLine + "Run 'loadbalancer --help' for every flag.\n"},
		{"a flag that does not parse", []string{"--config", good, "--check", "--bogus"}, 2, "",
			"loadbalancer: unknown flag: --bogus\n" + usageLine + "Run 'loadbalancer --help' for every flag.\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant\n%s", stdout.String(), tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr:\n%s\nwant\n%s", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// The example config in the repository loads, and says what it shows.
func TestExampleConfig(t *testing.T) {
	const path = "lb.example.yaml"
	var stdout, stderr strings.Builder
	if code := run([]string{"--config", path, "--check"}, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
		t.Fatalf("--check: exit %d, stderr:\n%s", code, stderr.String())
	}
	if want := path + ": ok (3 backends, listen 127.0.0.1:8080)\n"; stdout.String() != want {
		t.Errorf("--check: got %q, want %q", stdout.String(), want)
	}
	o, err := parseArgs([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var weighted, capped, backup, overridden bool
	for _, b := range o.backends {
		weighted = weighted || b.Weight > 1
		capped = capped || b.MaxInFlight > 0
		backup = backup || b.Backup
		overridden = overridden || b.Health != messages.HealthOverride{}
	}
	if !weighted || !capped || !backup || !overridden {
		t.Errorf("the example lacks a backend with a weight (%v), max_in_flight (%v), backup (%v) or a health override (%v)",
			weighted, capped, backup, overridden)
	}
	for _, key := range []string{"listen", "connections", "health_check", "health_path", "policy", "connect_timeout", "admin_addr", "access_log"} {
		if !strings.Contains(readFile(t, path), "\n"+key+": ") {
			t.Errorf("the example does not show %s", key)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every long flag has a key in the config file, which sets that flag: a new flag cannot be
// forgotten.
func TestEveryFlagHasAKey(t *testing.T) {
	fs, _ := newFlagSet(&options{})
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if cmdlineOnly[f.Name] {
			return
		}
		n++
		key := strings.ReplaceAll(f.Name, "-", "_")
		t.Run(key, func(t *testing.T) {
			fs, _ := newFlagSet(&options{})
			text := key + ": " + strconv.Quote(f.DefValue) + "\n"
			c, errs := parseConfig(fs, "lb.yaml", []byte(text), map[string]bool{})
			if len(errs) > 0 {
				t.Fatalf("%s: %v", strings.TrimSpace(text), errs)
			}
			if !fs.Changed(f.Name) || c.flagPos[f.Name] != (position{1, len(key) + 3}) {
				t.Fatalf("%s: the flag was not set (changed %v, position %v)", strings.TrimSpace(text), fs.Changed(f.Name), c.flagPos[f.Name])
			}
		})
	})
	if n < 50 {
		t.Fatalf("only %d flags seen", n)
	}
	for name := range cmdlineOnly {
		if fs.Lookup(name) == nil {
			t.Errorf("cmdlineOnly names %s, which is no flag", name)
		}
	}
}

// The help tells about the config file.
func TestHelpMentionsConfig(t *testing.T) {
	var sb strings.Builder
	if _, err := parseArgs([]string{"--help"}, &sb); err != errHelp {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(sb.String()), " ")
	for _, want := range []string{"--config FILE [--check]", "--config FILE", "--check", "every flag can be set in the file as KEY: VALUE, its name with underscores"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// Without --config nothing changes: the classic command line, its errors and their exit status.
func TestClassicCommandLineWithoutConfig(t *testing.T) {
	o, err := parseArgs(strings.Fields("8080 -N 8 1234 -R 7 5678 1248"), io.Discard)
	if err != nil || o.file != nil || o.backendsFromFile || o.port != 8080 || len(o.backends) != 3 {
		t.Fatalf("got %+v, %v", o, err)
	}
	var stdout, stderr strings.Builder
	if code := run(strings.Fields("8080 -N 0 --max-conns 0"), &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	want := "loadbalancer: need a port and at least one backend\n-N must be a positive number, got 0\n--max-conns must be positive, got 0\n" +
		usageLine + "Run 'loadbalancer --help' for every flag.\n"
	if stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("stderr:\n%s\nwant\n%s", stderr.String(), want)
	}
}
