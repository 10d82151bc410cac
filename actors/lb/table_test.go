package lb

import (
	"io"
	"log/slog"
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/messages"
)

// The table's indices never move: a backend that leaves keeps its slot, marked removed; one
// that comes back gets it again; a new one is appended.
func TestApplyKeepsIndices(t *testing.T) {
	cfg := &Config{Dispatcher: dispatcher.Config{Backends: []messages.Backend{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}}}}
	cfg.Acceptor.Forwarder = &forwarder.Config{}
	s := &Supervisor{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), table: initialTable(cfg)}

	res := s.apply(&messages.ApplyBackends{Backends: []messages.Backend{{Addr: "127.0.0.1:2", Weight: 3}, {Addr: "127.0.0.1:3"}}})
	actortest.Equal(t, "result", res, messages.BackendsApplied{Added: []string{"127.0.0.1:3"},
		Removed: []string{"127.0.0.1:1"}, Changed: []string{"127.0.0.1:2"}})
	if len(s.table) != 3 || !s.table[0].Removed || s.table[1].Backend.Weight != 3 || s.table[2].Backend.Addr != "127.0.0.1:3" {
		t.Fatalf("table: %+v", s.table)
	}
	if !s.table[1].Dial.IsValid() || s.table[1].Dial.Port() != 2 {
		t.Fatalf("an address given as IP and port dials itself: %+v", s.table[1].Dial)
	}

	res = s.apply(&messages.ApplyBackends{Backends: []messages.Backend{{Addr: "127.0.0.1:1"}}})
	actortest.Equal(t, "result", res, messages.BackendsApplied{Added: []string{"127.0.0.1:1"},
		Removed: []string{"127.0.0.1:2", "127.0.0.1:3"}})
	if len(s.table) != 3 || s.table[0].Removed || !s.table[1].Removed || !s.table[2].Removed {
		t.Fatalf("table: %+v", s.table)
	}
}
