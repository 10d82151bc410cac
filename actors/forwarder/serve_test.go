package forwarder

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// An I/O goroutine serves connection after connection with one clientConn (ioWorker); these
// tests pin down what reset may keep from the previous connection and what it must not touch.

func TestResetLeavesTheLastReleaseAlone(t *testing.T) {
	// The last ReleaseLease of a connection is sent as it ends, and nobody answers it: the
	// Dispatcher may read it after the goroutine has moved on to its next connection. Zeroing it
	// there made the Dispatcher read a release without a holder and crash.
	sys := actortest.NewSystem(t)
	_, conn := loopback(t)
	holder := actor.NewPID("nonhost", "forwarder-1")
	c := new(clientConn)
	c.relMsg = &messages.ReleaseLease{Holder: holder, Release: messages.Release{Lease: messages.Lease{ID: 7}}}
	sent := c.relMsg
	c.pending = messages.Release{Lease: messages.Lease{ID: 8}}

	c.reset(ioJob{cfg: &Config{}, system: sys, self: actor.NewPID("nonhost", "forwarder-2"), conn: conn})
	defer c.releaseBuffers()

	if sent.Holder != holder || sent.Release.Lease.ID != 7 {
		t.Fatalf("the sent release changed: got %+v, want holder %v and lease 7", *sent, holder)
	}
	if c.relMsg != sent {
		t.Fatal("reset dropped the release message it should reuse")
	}
	if c.pending.Lease.ID != 0 {
		t.Fatalf("pending lease after reset: got %d, want 0 (it belonged to the previous connection)", c.pending.Lease.ID)
	}
}

func TestResetLeavesAnUnansweredPickAlone(t *testing.T) {
	// A pick that gave up waiting (abort, pick timeout) may still sit unread in the
	// Dispatcher's mailbox: the next connection must not write over it.
	sys := actortest.NewSystem(t)
	holder := actor.NewPID("nonhost", "forwarder-1")
	c := &clientConn{system: sys, ep: reply.New(sys, 4), epOwed: true}
	c.pickMsg = &messages.PickBackend{Holder: holder}
	sent := c.pickMsg
	c.settleEndpoint()
	_, conn := loopback(t)
	c.reset(ioJob{cfg: &Config{}, system: sys, self: actor.NewPID("nonhost", "forwarder-2"), conn: conn})
	defer c.releaseBuffers()
	if c.pickMsg == sent {
		t.Fatal("the next connection reuses a pick the Dispatcher may not have read")
	}
	if sent.Holder != holder {
		t.Fatalf("the unanswered pick changed: got holder %v, want %v", sent.Holder, holder)
	}
}

func TestResetKeepsOnlyAnEndpointThatOwesNothing(t *testing.T) {
	sysA := actortest.NewSystem(t)
	sysB := actortest.NewSystem(t)
	tests := []struct {
		name     string
		owed     bool // a pick gave up waiting: its answer may still come
		unread   bool // a reply sits unread in the endpoint
		next     *actor.ActorSystem
		wantKept bool
	}{
		// The common case: every pick was answered, so no late reply can arrive.
		{name: "clean", next: sysA, wantKept: true},
		// A late answer to the abandoned pick would be taken for the next connection's.
		{name: "owed", owed: true, next: sysA},
		{name: "unread reply", unread: true, next: sysA},
		// Tests run several actor systems; the endpoint is registered with one of them.
		{name: "other system", next: sysB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clientConn{system: sysA, ep: reply.New(sysA, 4), epOwed: tt.owed}
			ep := c.ep
			defer ep.Close()
			if tt.unread {
				sysA.Root.Send(ep.PID(), &messages.NoBackend{Reason: messages.NoBackendDown})
			}
			c.settleEndpoint()
			_, conn := loopback(t)
			c.reset(ioJob{cfg: &Config{}, system: tt.next, self: actor.NewPID("nonhost", "f"), conn: conn})
			defer c.releaseBuffers()
			if kept := c.ep == ep; kept != tt.wantKept {
				t.Fatalf("endpoint kept: got %v, want %v", kept, tt.wantKept)
			}
			if c.epOwed {
				t.Fatal("epOwed survived reset")
			}
		})
	}
}
