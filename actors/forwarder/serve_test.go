package forwarder

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

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
	cfg := &Config{Dispatcher: actor.NewPID("nonhost", "dispatcher")}
	c := &clientConn{cfg: cfg, system: sys}
	c.relMsg = &messages.ReleaseLease{Holder: holder, Release: messages.Release{Lease: messages.Lease{ID: 7}}}
	sent := c.relMsg
	c.pending = messages.Release{Lease: messages.Lease{ID: 8}}

	c.reset(ioJob{cfg: cfg, system: sys, self: actor.NewPID("nonhost", "forwarder-2"), conn: conn})
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
	cfg := &Config{Dispatcher: actor.NewPID("nonhost", "dispatcher")}
	c := &clientConn{cfg: cfg, system: sys, ep: reply.New(sys, 4), epOwed: true}
	c.pickMsg = &messages.PickBackend{Holder: holder}
	sent := c.pickMsg
	c.settleEndpoint()
	_, conn := loopback(t)
	c.reset(ioJob{cfg: cfg, system: sys, self: actor.NewPID("nonhost", "forwarder-2"), conn: conn})
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
	cfgA := &Config{Dispatcher: actor.NewPID("nonhost", "dispatcher-a")}
	cfgB := &Config{Dispatcher: actor.NewPID("nonhost", "dispatcher-b")}
	tests := []struct {
		name     string
		owed     bool // a pick gave up waiting: its answer may still come
		unread   bool // a reply sits unread in the endpoint
		next     *actor.ActorSystem
		nextCfg  *Config
		wantKept bool
	}{
		// The common case: every pick was answered, so no late reply can arrive.
		{name: "clean", next: sysA, nextCfg: cfgA, wantKept: true},
		// A late answer to the abandoned pick would be taken for the next connection's.
		{name: "owed", owed: true, next: sysA, nextCfg: cfgA},
		{name: "unread reply", unread: true, next: sysA, nextCfg: cfgA},
		// Tests run several actor systems; the endpoint is registered with one of them.
		{name: "other system", next: sysB, nextCfg: cfgA},
		// The reused messages are ordered by one Dispatcher's mailbox only.
		{name: "other dispatcher", next: sysA, nextCfg: cfgB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clientConn{cfg: cfgA, system: sysA, ep: reply.New(sysA, 4), epOwed: tt.owed}
			ep := c.ep
			defer ep.Close()
			if tt.unread {
				sysA.Root.Send(ep.PID(), &messages.NoBackend{Reason: messages.NoBackendDown})
			}
			c.settleEndpoint()
			_, conn := loopback(t)
			c.reset(ioJob{cfg: tt.nextCfg, system: tt.next, self: actor.NewPID("nonhost", "f"), conn: conn})
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

// The I/O goroutines are shared by every Forwarder of the process, whatever their Config (and
// actor system): ioWork is a package variable. relMsg outlives reset because the next write to
// it comes after a pick of the next connection was answered, which orders the two only when
// both go to the same Dispatcher. Here the first connection's last release goes to Dispatcher
// A, the next connection on the same goroutine talks to Dispatcher B: A must still read what it
// was sent.
func TestReleaseToOneDispatcherIsNotRewrittenForAnother(t *testing.T) {
	sys := actortest.NewSystem(t)
	dispA := actortest.NewProbe(t, sys)
	dispB := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.PickBackend); ok {
			ctx.Send(m.ReplyTo, &messages.BackendPicked{Lease: messages.Lease{ID: 99}, Addr: "127.0.0.1:1"})
		}
	}))
	c := new(clientConn)
	defer c.dispose()

	// Connection 1 (Dispatcher A) ends with a release nobody answers.
	_, conn1 := loopback(t)
	holder1 := actor.NewPID("nonhost", "forwarder-1")
	c.reset(ioJob{cfg: &Config{Dispatcher: dispA.PID}, system: sys, self: holder1, conn: conn1})
	c.pending = messages.Release{Lease: messages.Lease{ID: 7}, Outcome: messages.OutcomeOK}
	c.flushRelease()
	c.releaseBuffers()
	c.settleEndpoint()

	// Connection 2 on the same goroutine (Dispatcher B): a pick, answered, then its release.
	_, conn2 := loopback(t)
	holder2 := actor.NewPID("nonhost", "forwarder-2")
	c.reset(ioJob{cfg: &Config{Dispatcher: dispB}, system: sys, self: holder2, conn: conn2})
	defer c.releaseBuffers()
	c.ep = reply.NewWithDrop(sys, 4, dropReply(sys, dispB))
	c.pickMsg = &messages.PickBackend{Holder: holder2, ReplyTo: c.ep.PID()}
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
	p, f := c.pick(false)
	if f != 0 {
		t.Fatalf("pick failed: %v", f)
	}
	c.pending = messages.Release{Lease: p.Lease, Outcome: messages.OutcomeOK}
	c.flushRelease()

	// What Dispatcher A got from connection 1.
	rel := actortest.Expect[*messages.ReleaseLease](dispA)
	if rel.Holder != holder1 || rel.Release.Lease.ID != 7 {
		t.Fatalf("the release sent to Dispatcher A changed after the send: got holder %v lease %d, want %v lease 7",
			rel.Holder, rel.Release.Lease.ID, holder1)
	}
}

// panicAddrConn is a client connection whose RemoteAddr panics: a stand-in for any panic while an
// I/O goroutine prepares a connection (clientConn.reset).
type panicAddrConn struct{ net.Conn }

func (panicAddrConn) RemoteAddr() net.Addr { panic("test: RemoteAddr panicked") }

// House rule 3 and the package doc: a crash anywhere in a Forwarder is seen by its supervisor,
// never by the process. reset runs on the I/O goroutine, so it must run inside serve's recover;
// outside it, a panic there ended the process. The child process below reports whether the
// supervisor saw a failure.
func TestPanicWhilePreparingAConnectionReachesTheSupervisor(t *testing.T) {
	if os.Getenv("FORWARDER_RESET_PANIC_CHILD") == "1" {
		sys := actortest.NewSystem(t)
		disp := actortest.NewProbe(t, sys)
		events := make(chan *actor.SupervisorEvent, 4)
		sys.EventStream.Subscribe(func(e any) {
			if ev, ok := e.(*actor.SupervisorEvent); ok {
				select {
				case events <- ev:
				default:
				}
			}
		})
		_, conn := loopback(t)
		cfg := &Config{Dispatcher: disp.PID}
		strategy := actor.NewOneForOneStrategy(3, 10*time.Second, func(any) actor.Directive { return actor.StopDirective })
		sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				ctx.Spawn(Props(cfg, panicAddrConn{conn}))
			}
		}, actor.WithSupervisor(strategy)))
		select {
		case <-events:
		case <-time.After(2 * time.Second):
			t.Fatal("no supervisor event")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicWhilePreparingAConnectionReachesTheSupervisor$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FORWARDER_RESET_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 600 {
			out = out[:600]
		}
		t.Fatalf("a panic while preparing a connection ended the process (%v):\n%s", err, out)
	}
}
