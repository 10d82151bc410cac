package main

import (
	"testing"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Backends given by name are resolved once, at start-up (IPv4 preferred); ones given as IP and
// port need no entry.
func TestResolveBackends(t *testing.T) {
	got, err := resolveBackends([]messages.Backend{{Addr: "localhost:8080"}, {Addr: "127.0.0.2:9000"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("resolved %v, want only localhost:8080", got)
	}
	if ap := got["localhost:8080"]; !ap.Addr().IsLoopback() || ap.Port() != 8080 {
		t.Fatalf("localhost:8080 resolved to %v, want a loopback address with port 8080", ap)
	}
	if _, err := resolveBackends([]messages.Backend{{Addr: "localhost:notaport"}}); err == nil {
		t.Fatal("a bad port: got no error")
	}
}
