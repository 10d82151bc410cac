package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/messages"
)

func TestBackendFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		name, args, wantErr string
	}{
		// Each is bad input the issue names: a clear message naming the flag or argument.
		{"unknown policy", "80 1 --policy fastest", "--policy: want one of classic, round-robin"},
		{"weight not a number", "80 1@x", `weight "x" is not a whole number`},
		{"weight zero", "80 1@0", `weight "0"`},
		{"weight too big", "80 1@1001", `weight "1001"`},
		{"rise zero", "80 1 --health-rise 0", "--health-rise must be at least 1"},
		{"fall zero", "80 1 --health-fall 0", "--health-fall must be at least 1"},
		{"eject threshold zero", "80 1 --eject-5xx 0", "--eject-5xx must be at least 1"},
		{"health path without slash", "80 1 --health-check http --health-path x", "--health-path must start with '/'"},
		{"unknown check", "80 1 --health-check ping", "--health-check: want classic, http, tcp or none"},
		{"status out of range", "80 1 --health-check http --health-status 600", "--health-status"},
		// Checked whatever the check kind: a typo is an error even where the flag is unused.
		{"status not a number, classic", "80 1 --health-status abc", "--health-status"},
		{"status range backwards", "80 1 --health-check http --health-status 300-200", "--health-status"},
		{"bad method", "80 1 --health-check http --health-method POST", "--health-method"},
		// Caught by the HealthMonitor's own validation: HEAD answers have no body to match.
		{"body with HEAD", "80 1 --health-check http --health-method HEAD --health-body ok", "needs method GET"},
		{"bad hash key", "80 1 --policy hash --hash-key uri", "--hash-key"},
		{"hash balance below 1", "80 1 --policy hash --hash-balance 0.5", "--hash-balance must be at least 1"},
		// Not numbers a bound can be made of: the process would start and never answer.
		{"hash balance NaN", "80 1 --policy hash --hash-balance NaN", "--hash-balance must be at least 1"},
		{"hash balance Inf", "80 1 --policy hash --hash-balance +Inf", "--hash-balance must be at least 1"},
		{"eject percent over 100", "80 1 --eject-max-percent 101", "--eject-max-percent"},
		{"negative slow start", "80 1 --slow-start -1s", "--slow-start must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(strings.Fields(tt.args), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBackendFlagDefaultsFollowTheCheck(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       string
		rise, fall int
		classic    bool // ClassicFailures
		notices    bool // R notices start rounds
		eject5xx   int
	}{
		// The classic command line keeps the contract: one probe decides, failures take a
		// backend down, R notices, no 5xx ejection.
		{"classic", "80 1", 1, 1, true, true, 0},
		// Asked for explicitly, 5xx ejection works with the classic check too.
		{"classic with 5xx ejection", "80 1 --eject-5xx 4", 1, 1, true, true, 4},
		// Any other check: rise 2, fall 3, rounds on the interval only, ejection on.
		{"http", "80 1 --health-check http", 2, 3, false, false, 5},
		// -R given explicitly keeps R notices with another check.
		{"tcp with -R", "80 1 --health-check tcp -R 50", 2, 3, false, true, 5},
		// Explicit thresholds win; --no-eject turns ejection off.
		{"none, explicit", "80 1 --health-check none --health-rise 4 --health-fall 5 --no-eject", 4, 5, false, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(strings.Fields(tt.args), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg := o.config(nil, nil)
			h, d := cfg.Health, cfg.Dispatcher
			if h.Rise != tt.rise || h.Fall != tt.fall {
				t.Errorf("rise/fall: got %d/%d, want %d/%d", h.Rise, h.Fall, tt.rise, tt.fall)
			}
			if d.ClassicFailures != tt.classic {
				t.Errorf("ClassicFailures: got %v, want %v", d.ClassicFailures, tt.classic)
			}
			if !d.NoHealthNotices != tt.notices {
				t.Errorf("R notices: got %v, want %v", !d.NoHealthNotices, tt.notices)
			}
			if d.Eject.Consecutive5xx != tt.eject5xx {
				t.Errorf("eject 5xx: got %d, want %d", d.Eject.Consecutive5xx, tt.eject5xx)
			}
			if d.HealthTimeout != 2*time.Second {
				t.Errorf("start-up wait: got %v, want the health timeout", d.HealthTimeout)
			}
		})
	}
}

func TestBackendFlagsReachTheActors(t *testing.T) {
	o, err := parseArgs(strings.Fields("80 9001@3 host:9002 --policy hash --hash-key cookie:sid --hash-balance 2 "+
		"--max-per-backend 7 --slow-start 5s --health-check http --health-path /up --health-method get "+
		"--health-status 200,204 --health-body ok --health-host example.org --stall-after 0 --eject-max-percent 0"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.config(nil, nil)
	d, h := cfg.Dispatcher, cfg.Health
	want := []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 3}, {Addr: "host:9002", Weight: 1}}
	if len(d.Backends) != 2 || d.Backends[0] != want[0] || d.Backends[1] != want[1] {
		t.Errorf("backends: got %+v, want %+v", d.Backends, want)
	}
	if d.Policy != (dispatcher.PolicyConfig{Name: "hash", HashBalance: 2}) {
		t.Errorf("policy: got %+v", d.Policy)
	}
	if cfg.Acceptor.Forwarder.Hash != (forwarder.HashKey{Source: forwarder.HashCookie, Name: "sid"}) {
		t.Errorf("hash key: got %+v", cfg.Acceptor.Forwarder.Hash)
	}
	if d.MaxPerBackend != 7 || d.SlowStart != 5*time.Second {
		t.Errorf("max per backend, slow start: got %d, %v", d.MaxPerBackend, d.SlowStart)
	}
	if d.StallAfter >= 0 || d.Eject.MaxPercent >= 0 {
		t.Errorf("0 must turn stalls and ejection shares off: got %v, %d", d.StallAfter, d.Eject.MaxPercent)
	}
	c := h.Check
	if c.Kind != health.KindHTTP || c.Path != "/up" || c.Method != "GET" || c.Status.String() != "200,204" || c.Body != "ok" || c.Host != "example.org" {
		t.Errorf("check: got %+v", c)
	}
}
