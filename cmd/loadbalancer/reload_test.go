package main

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/admin"
	"github.com/loadbalancer/loadbalancer/messages"
)

func TestRestartOnlyNamesTheChangedSettings(t *testing.T) {
	a, err := parseArgs([]string{"8080", "9001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseArgs([]string{"-N", "8", "--health-interval", "5s", "8081", "9002", "9003"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := restartOnly(a, b); !slices.Equal(got, []string{"listen"}) {
		t.Errorf("restartOnly: %v, want [listen]", got)
	}
	got := changedSettings(a, b)
	for _, want := range []string{"connections", "health_interval"} {
		if !slices.Contains(got, want) {
			t.Errorf("changedSettings: %v, want %s among them", got, want)
		}
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "backend") || s == "listen" }) {
		t.Errorf("changedSettings: %v names the backends or the listener", got)
	}
	if same := append(restartOnly(a, a), changedSettings(a, a)...); len(same) != 0 {
		t.Errorf("the same options differ in %v", same)
	}
	// What runs after the reload: b's settings, a's listener.
	running := *b
	keepRestartOnly(&running, a)
	if running.port != a.port || running.n != b.n {
		t.Errorf("keepRestartOnly: port %d (want %d), n %d (want %d)", running.port, a.port, running.n, b.n)
	}
}

func TestCheckBackends(t *testing.T) {
	o, err := parseArgs([]string{"8080", "9001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{cur: o, log: slog.New(slog.DiscardHandler)}
	got, err := r.checkBackends([]messages.Backend{{Addr: "9002"}, {Addr: "localhost:80", Weight: 3}}, o.check)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Addr != "127.0.0.1:9002" || got[0].Weight != 1 || got[1].Weight != 3 {
		t.Fatalf("normalised: %+v", got)
	}
	_, err = r.checkBackends([]messages.Backend{{Addr: "http://x:1/"}, {Addr: "9002", Weight: 2000},
		{Addr: "9003", MaxInFlight: -1}, {Addr: "9004", Health: messages.HealthOverride{Path: "/x"}}, {Addr: "9004"}}, o.check)
	var ve *admin.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 5 {
		t.Fatalf("want 5 problems (a URL, a weight, a negative cap, an http override with the classic check, a duplicate), got %v", err)
	}
	if _, err := r.checkBackends(nil, o.check); err == nil {
		t.Fatal("an empty list: no error")
	}
}
