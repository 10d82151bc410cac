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
	got := restartOnly(a, b)
	for _, want := range []string{"connections", "health_interval", "listen"} {
		if !slices.Contains(got, want) {
			t.Errorf("restartOnly: %v, want %s among them", got, want)
		}
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "backend") }) {
		t.Errorf("restartOnly: %v names the backends, which a reload applies", got)
	}
	if same := restartOnly(a, a); len(same) != 0 {
		t.Errorf("restartOnly of the same options: %v", same)
	}
}

func TestCheckBackends(t *testing.T) {
	o, err := parseArgs([]string{"8080", "9001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{cur: o, log: slog.New(slog.DiscardHandler)}
	got, err := r.checkBackends([]messages.Backend{{Addr: "9002"}, {Addr: "localhost:80", Weight: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Addr != "127.0.0.1:9002" || got[0].Weight != 1 || got[1].Weight != 3 {
		t.Fatalf("normalised: %+v", got)
	}
	_, err = r.checkBackends([]messages.Backend{{Addr: "http://x:1/"}, {Addr: "9002", Weight: 2000},
		{Addr: "9003", MaxInFlight: -1}, {Addr: "9004", Health: messages.HealthOverride{Path: "/x"}}, {Addr: "9004"}})
	var ve *admin.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 5 {
		t.Fatalf("want 5 problems (a URL, a weight, a negative cap, an http override with the classic check, a duplicate), got %v", err)
	}
	if _, err := r.checkBackends(nil); err == nil {
		t.Fatal("an empty list: no error")
	}
}
