package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name         string
		args         string
		wantPort     int
		wantN, wantR int
		wantBackends []string
		wantErr      string // substring; empty means valid
	}{
		// The contract's own example: flags before, between and after the ports.
		{name: "flags anywhere", args: "8080 -N 8 1234 -R 7 5678 1248", wantPort: 8080, wantN: 8, wantR: 7,
			wantBackends: []string{"127.0.0.1:1234", "127.0.0.1:5678", "127.0.0.1:1248"}},
		// Defaults are N=4, R=5.
		{name: "defaults", args: "80 1234", wantPort: 80, wantN: 4, wantR: 5, wantBackends: []string{"127.0.0.1:1234"}},
		// HOST:PORT backends; a backend listed twice counts once.
		{name: "host and duplicate", args: "-R 1 9000 localhost:81 1234 127.0.0.1:1234 localhost:81", wantPort: 9000, wantN: 4, wantR: 1,
			wantBackends: []string{"localhost:81", "127.0.0.1:1234"}},
		// Long forms of -N and -R.
		{name: "long flags", args: "--connections=3 --requests 2 1 2", wantPort: 1, wantN: 3, wantR: 2, wantBackends: []string{"127.0.0.1:2"}},
		{name: "no backend", args: "8080", wantErr: "at least one backend"},
		{name: "nothing", args: "", wantErr: "at least one backend"},
		{name: "N zero", args: "8080 -N 0 1", wantErr: "-N must be a positive"},
		{name: "N negative", args: "8080 -N -3 1", wantErr: "-N must be a positive"},
		{name: "R not a number", args: "8080 -R x 1", wantErr: "invalid argument"},
		{name: "port not a number", args: "80a 1", wantErr: "not a port"},
		{name: "port zero", args: "0 1", wantErr: "not a port"},
		{name: "port too big", args: "65536 1", wantErr: "not a port"},
		{name: "backend port bad", args: "80 host:x", wantErr: "not a port"},
		{name: "backend without host", args: "80 :81", wantErr: "missing host"},
		{name: "unknown flag", args: "80 --bogus 1", wantErr: "unknown flag"},
		{name: "bad error mode", args: "80 1 --error-codes=teapot", wantErr: "--error-codes"},
		{name: "negative timeout", args: "80 1 --queue-timeout=-1s", wantErr: "--queue-timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(strings.Fields(tt.args), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			var got []string
			for _, b := range o.backends {
				got = append(got, b.Addr)
			}
			if o.port != tt.wantPort || o.n != tt.wantN || o.r != tt.wantR || !reflect.DeepEqual(got, tt.wantBackends) {
				t.Fatalf("got port %d N %d R %d backends %v, want %d %d %d %v",
					o.port, o.n, o.r, got, tt.wantPort, tt.wantN, tt.wantR, tt.wantBackends)
			}
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var sb strings.Builder
	if _, err := parseArgs([]string{"-h"}, &sb); err != errHelp {
		t.Fatalf("got %v, want errHelp", err)
	}
	for _, flag := range []string{"-N, --connections", "-R, --requests", "--health-interval", "--error-codes", "--drain-timeout"} {
		if !strings.Contains(sb.String(), flag) {
			t.Errorf("help lacks %s", flag)
		}
	}
}

// The help and the version go to stdout with status 0, so `loadbalancer -h | less` works; a bad
// command line goes to stderr with status 2, with the usage line and a pointer to --help.
func TestRunHelpVersionAndBadArgs(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       string
		wantCode   int
		wantStdout []string // substrings; stdout must be empty when there are none
		wantStderr []string // substrings; stderr must be empty when there are none
	}{
		{"-h", "-h", 0, []string{"usage: loadbalancer", "-N, --connections", "--pprof-addr"}, nil},
		{"--help", "--help", 0, []string{"usage: loadbalancer", "--log-format"}, nil},
		{"--help among other arguments", "8080 9001 --help", 0, []string{"usage: loadbalancer"}, nil},
		{"--version", "--version", 0, []string{"loadbalancer "}, nil},
		{"no backend", "8080", 2, nil, []string{"need a port and at least one backend", "usage: loadbalancer", "loadbalancer --help"}},
		{"unknown flag", "8080 9001 --bogus", 2, nil, []string{"unknown flag: --bogus", "usage: loadbalancer", "loadbalancer --help"}},
		{"bind with a port", "--bind 127.0.0.1:5 8080 9001", 2, nil, []string{"--bind takes an address without a port", "loadbalancer --help"}},
		{"backend as a URL", "8080 http://127.0.0.1:9001", 2, nil, []string{`backend "http://127.0.0.1:9001": give HOST:PORT`, "loadbalancer --help"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(strings.Fields(tt.args), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, out := range []struct {
				name string
				got  string
				want []string
			}{{"stdout", stdout.String(), tt.wantStdout}, {"stderr", stderr.String(), tt.wantStderr}} {
				if len(out.want) == 0 && out.got != "" {
					t.Errorf("%s: got %q..., want nothing", out.name, out.got[:min(len(out.got), 100)])
				}
				for _, w := range out.want {
					if !strings.Contains(out.got, w) {
						t.Errorf("%s: %q lacks %q", out.name, out.got, w)
					}
				}
			}
		})
	}
}

// --bind takes an address without a port, and a backend is PORT or HOST:PORT, not a URL: the
// errors say what is expected.
func TestBindAndBackendAddresses(t *testing.T) {
	for _, tt := range []struct {
		name, args string
		wantBind   string
		wantErr    string // the whole error; empty means valid
	}{
		{name: "bind an IPv4 address", args: "--bind 127.0.0.1 80 1", wantBind: "127.0.0.1"},
		{name: "bind a host name", args: "--bind localhost 80 1", wantBind: "localhost"},
		{name: "bind an IPv6 address", args: "--bind ::1 80 1", wantBind: "::1"},
		{name: "bind an IPv6 address in brackets", args: "--bind [::1] 80 1", wantBind: "::1"},
		{name: "bind with a port", args: "--bind 127.0.0.1:5 80 1",
			wantErr: "--bind takes an address without a port (the port is the first argument, PORT): got 127.0.0.1:5"},
		{name: "bind a host name with a port", args: "--bind=localhost:8080 80 1",
			wantErr: "--bind takes an address without a port (the port is the first argument, PORT): got localhost:8080"},
		{name: "bind a port alone", args: "--bind :8080 80 1",
			wantErr: "--bind takes an address without a port (the port is the first argument, PORT): got :8080"},
		{name: "bind an IPv6 address with a port", args: "--bind [::1]:8080 80 1",
			wantErr: "--bind takes an address without a port (the port is the first argument, PORT): got [::1]:8080"},
		{name: "bind a URL", args: "--bind http://127.0.0.1 80 1",
			wantErr: "--bind takes an IP address or host name, without a scheme (http://) or path: got http://127.0.0.1"},
		{name: "backend URL", args: "80 http://127.0.0.1:9001",
			wantErr: `backend "http://127.0.0.1:9001": give HOST:PORT, without a scheme (http://) or path (did you mean 127.0.0.1:9001?)`},
		{name: "backend with a path", args: "80 127.0.0.1:9001/path",
			wantErr: `backend "127.0.0.1:9001/path": give HOST:PORT, without a scheme (http://) or path (did you mean 127.0.0.1:9001?)`},
		{name: "backend URL with a slash and a weight", args: "80 https://backend.example:443/@3",
			wantErr: `backend "https://backend.example:443/@3": give HOST:PORT, without a scheme (http://) or path (did you mean backend.example:443?)`},
		{name: "backend URL without a port", args: "80 http://localhost",
			wantErr: `backend "http://localhost": give HOST:PORT, without a scheme (http://) or path`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(strings.Fields(tt.args), io.Discard)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v,\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if o.bind != tt.wantBind {
				t.Fatalf("bind %q, want %q", o.bind, tt.wantBind)
			}
		})
	}
}
