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

func TestRunBadArgsExit2(t *testing.T) {
	var sb strings.Builder
	if code := run([]string{"8080"}, &sb); code != 2 {
		t.Fatalf("got exit %d, want 2", code)
	}
	if !strings.Contains(sb.String(), "usage: loadbalancer") {
		t.Fatalf("stderr %q has no usage line", sb.String())
	}
}
