package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines gives ending goroutines a moment, then returns the stacks of those left,
// other than this one and the runtime's and os/signal's own.
func leakedGoroutines() string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		all := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		var left []string
		for _, g := range all[1:] { // all[0] is this goroutine
			if !strings.Contains(g, "os/signal.signal_recv") && !strings.Contains(g, "runtime.ensureSigM") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string // a substring of the error; "" for none
	}{
		// The defaults.
		{name: "port only", args: []string{"8080"},
			want: options{port: 8080, threads: 4, timeout: time.Minute}},
		// Flags before, between and after the port, short and long.
		{name: "flags anywhere", args: []string{"-N", "8", "8080", "-l", "log", "-L", "-e", "2", "--entries=7", "--close"},
			want: options{port: 8080, threads: 8, logFile: "log", countOnly: true, errors: 2, entries: 7, closeEach: true, timeout: time.Minute}},
		{name: "long flags", args: []string{"--threads=2", "--log", "x", "--bind", "127.0.0.1", "--timeout", "5s", "1"},
			want: options{port: 1, threads: 2, logFile: "x", bind: "127.0.0.1", timeout: 5 * time.Second}},

		// --delay takes a Go duration; zero (the default) is no delay.
		{name: "delay", args: []string{"1", "--delay", "10ms"},
			want: options{port: 1, threads: 4, timeout: time.Minute, delay: 10 * time.Millisecond}},
		{name: "zero delay", args: []string{"--delay=0", "1"},
			want: options{port: 1, threads: 4, timeout: time.Minute}},

		{name: "no port", args: nil, wantErr: "missing PORT"},
		{name: "two ports", args: []string{"1", "2"}, wantErr: "want one PORT"},
		{name: "port not a number", args: []string{"http"}, wantErr: "not a port number"},
		{name: "port zero", args: []string{"0"}, wantErr: "not a port number"},
		{name: "port too big", args: []string{"65536"}, wantErr: "not a port number"},
		{name: "N zero", args: []string{"1", "-N", "0"}, wantErr: "-N must be a positive number"},
		{name: "N not a number", args: []string{"1", "-N", "four"}, wantErr: "invalid argument"},
		{name: "N without value", args: []string{"1", "-N"}, wantErr: "needs an argument"},
		{name: "negative errors", args: []string{"1", "-e", "-3"}, wantErr: "-e must not be negative"},
		{name: "negative entries", args: []string{"1", "-t", "-3"}, wantErr: "-t must not be negative"},
		{name: "empty log name", args: []string{"1", "-l", ""}, wantErr: "-l needs a file name"},
		{name: "zero timeout", args: []string{"1", "--timeout", "0s"}, wantErr: "--timeout must be positive"},
		{name: "negative delay", args: []string{"1", "--delay=-1ms"}, wantErr: "--delay must not be negative"},
		// A number without a unit is not a duration (pflag's message).
		{name: "delay without unit", args: []string{"1", "--delay", "10"}, wantErr: "invalid argument"},
		{name: "delay without value", args: []string{"1", "--delay"}, wantErr: "needs an argument"},
		{name: "unknown flag", args: []string{"1", "-x"}, wantErr: "unknown shorthand flag"},
		// Every problem is reported, not only the first.
		{name: "several problems", args: []string{"-N", "0", "-e", "-1"}, wantErr: "-e must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if *o != tt.want {
				t.Errorf("got  %+v\nwant %+v", *o, tt.want)
			}
		})
	}
}

// The help goes to stdout with status 0; a bad command line goes to stderr with status 2,
// with the usage line and a pointer to --help.
func TestRunHelpAndUsage(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings; stdout must be empty when there are none
		wantStderr []string // substrings; stderr must be empty when there are none
	}{
		{"-h", []string{"-h"}, 0, []string{"usage: httpserver", "--threads"}, nil},
		// The help names --delay.
		{"--help", []string{"--help"}, 0, []string{"usage: httpserver", "--delay"}, nil},
		{"bad -N", []string{"-N", "0"}, 2, nil, []string{"-N must be a positive number", "usage: httpserver", "httpserver --help"}},
		// A bad --delay is a usage error like the others.
		{"negative delay", []string{"8080", "--delay=-5ms"}, 2, nil, []string{"--delay must not be negative", "usage: httpserver"}},
		{"delay not a duration", []string{"8080", "--delay=soon"}, 2, nil, []string{"invalid argument", "usage: httpserver"}},
		{"unknown flag", []string{"8080", "--bogus"}, 2, nil, []string{"unknown flag: --bogus", "usage: httpserver", "httpserver --help"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
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
