package reply

import (
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
)

func TestClosedEndpointDropsWhatItHoldsAndWhatComesLater(t *testing.T) {
	sys := actortest.NewSystem(t)
	dropped := make(chan any, 4)
	e := NewWithDrop(sys, 2, func(m any) { dropped <- m })
	pid := e.PID()
	sys.Root.Send(pid, "read")
	if got := <-e.C; got != "read" {
		t.Fatalf("C: got %v, want read", got)
	}
	sys.Root.Send(pid, "unread")
	e.Close()
	sys.Root.Send(pid, "late") // the PID still resolves to e: protoactor caches the process
	for _, want := range []string{"unread", "late"} {
		select {
		case got := <-dropped:
			if got != want {
				t.Fatalf("dropped: got %v, want %v", got, want)
			}
		case <-time.After(actortest.Wait):
			t.Fatalf("%q was not dropped", want)
		}
	}
	select {
	case m := <-e.C:
		t.Fatalf("a closed endpoint buffered %v", m)
	default:
	}
}

func TestFullEndpointDrops(t *testing.T) {
	sys := actortest.NewSystem(t)
	dropped := make(chan any, 1)
	e := NewWithDrop(sys, 1, func(m any) { dropped <- m })
	defer e.Close()
	sys.Root.Send(e.PID(), 1)
	sys.Root.Send(e.PID(), 2)
	if got := <-dropped; got != 2 {
		t.Fatalf("dropped: got %v, want 2", got)
	}
	if got := <-e.C; got != 1 {
		t.Fatalf("C: got %v, want 1", got)
	}
}
