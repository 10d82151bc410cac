package health

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// slot is a backend table's slot for addr.
func slot(addr string) messages.BackendSlot {
	return messages.BackendSlot{Backend: messages.Backend{Addr: addr}}
}

// gone is slot(addr), removed.
func gone(addr string) messages.BackendSlot {
	s := slot(addr)
	s.Removed = true
	return s
}

// removedHealth is a removed backend's line in a report.
var removedHealth = messages.BackendHealth{Reason: "removed", Removed: true}

// setBackends sends the monitor the table and waits for its BackendsSet.
func setBackends(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, table ...messages.BackendSlot) {
	t.Helper()
	reply := actortest.NewProbe(t, sys)
	sys.Root.Send(pid, &messages.SetBackends{Table: table, ReplyTo: reply.PID})
	set := actortest.Expect[*messages.BackendsSet](reply)
	if set.From == nil || !set.From.Equal(pid) {
		t.Fatalf("BackendsSet from %v, want %v", set.From, pid)
	}
}

// counting signals conns each time the server accepts a connection, before
// h serves it; so a round that probed the server has signalled by the time it reports.
func counting(conns chan<- struct{}, h handler) handler {
	return func(c net.Conn, done <-chan struct{}) {
		conns <- struct{}{}
		h(c, done)
	}
}

// noConnection fails the test if conns has a connection waiting.
func noConnection(t *testing.T, conns <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-conns:
		t.Fatalf("%s was probed", what)
	default:
	}
}

// switchable answers like healthy(0, n) while up is true, 404 otherwise.
func switchable(up *atomic.Bool, n int64) handler {
	good, bad := healthy(0, n), answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	return func(c net.Conn, done <-chan struct{}) {
		if up.Load() {
			good(c, done)
			return
		}
		bad(c, done)
	}
}

// A backend added at run time is probed at once (not at the next tick, an hour away) and
// reported with the others.
func TestSetBackendsAddsBackend(t *testing.T) {
	a := serve(t, healthy(0, 1))
	b := serve(t, healthy(2, 3))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never})
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, upAt(0, 1))

	setBackends(t, sys, pid, slot(a.addr), slot(b.addr))
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "round", r.Round, first.Round+1)
	checkReport(t, r, upAt(0, 1), upAt(2, 3))
	dispatcher.ExpectNothing(300 * time.Millisecond)

	s := healthStats(t, sys, pid)
	actortest.Equal(t, "stats backends", len(s.Backends), 2)
	actortest.Equal(t, "new backend's checks passed", s.Backends[1].Passed, uint64(1))

	// A table that changes nothing starts no round.
	setBackends(t, sys, pid, slot(a.addr), slot(b.addr))
	dispatcher.ExpectNothing(300 * time.Millisecond)
}

// A removed backend is reported as such and no longer probed; its stats stay.
func TestSetBackendsRemovesBackend(t *testing.T) {
	conns := make(chan struct{}, 64)
	a := serve(t, healthy(0, 1))
	b := serve(t, counting(conns, healthy(0, 2)))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr, b.addr), Interval: never})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 1), upAt(0, 2))
	recvWithin(t, conns, "start-up probe of b")

	setBackends(t, sys, pid, slot(a.addr), gone(b.addr))
	dispatcher.ExpectNothing(200 * time.Millisecond) // a removal alone starts no round
	for range 3 {
		sys.Root.Send(pid, &messages.RunHealthRound{})
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{upAt(0, 1), removedHealth})
		// Had the round probed b, b's handler would have signalled before answering, and
		// so before the round could end.
		noConnection(t, conns, "the removed backend")
	}
	s := healthStats(t, sys, pid)
	actortest.Equal(t, "stats backends", len(s.Backends), 2)
	actortest.Equal(t, "removed backend's checks", []uint64{s.Backends[1].Passed, s.Backends[1].Failed}, []uint64{1, 0})
	actortest.Equal(t, "live backend's checks", s.Backends[0].Passed, uint64(4))
}

// An address that comes back is probed again at its old index, at once, and judged afresh: its
// first probe decides, whatever the fall threshold says.
func TestSetBackendsReturningBackend(t *testing.T) {
	conns := make(chan struct{}, 64)
	var aUp atomic.Bool
	aUp.Store(true)
	a := serve(t, counting(conns, switchable(&aUp, 1)))
	b := serve(t, healthy(0, 2))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr, b.addr), Interval: never, Fall: 3, Rise: 3})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 1), upAt(0, 2))
	recvWithin(t, conns, "start-up probe of a")

	// One failure: still up within the fall threshold of 3.
	aUp.Store(false)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	recvWithin(t, conns, "second probe of a")
	if !r.Backends[0].Up || r.Backends[0].Reason == "" {
		t.Fatalf("a after one failure with fall 3: %+v, want up with the failure's reason", r.Backends[0])
	}

	setBackends(t, sys, pid, gone(a.addr), slot(b.addr))
	sys.Root.Send(pid, &messages.RunHealthRound{})
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{removedHealth, upAt(0, 2)})
	noConnection(t, conns, "the removed backend")

	// Back, with a new backend after it: one round at once probes both. a's verdict starts
	// afresh, so its first failed probe takes it down (without the reset it would still be up,
	// two failures into a fall of 3).
	c := serve(t, healthy(0, 3))
	setBackends(t, sys, pid, slot(a.addr), slot(b.addr), slot(c.addr))
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	recvWithin(t, conns, "probe of the returned backend")
	checkReport(t, r, down, upAt(0, 2), upAt(0, 3))
	dispatcher.ExpectNothing(300 * time.Millisecond)
}

// With health checks off, a new backend is reported up at once and a removed one as removed;
// nothing is ever dialled.
func TestSetBackendsCheckNone(t *testing.T) {
	dialed := make(chan string, 16)
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends("127.0.0.1:1"),
		Check:    Check{Kind: KindNone},
		Interval: never,
		Dial: func(_ context.Context, _, addr string) (net.Conn, error) {
			dialed <- addr
			return nil, fmt.Errorf("no dial expected")
		},
	})
	up := messages.BackendHealth{Up: true}
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, up)

	setBackends(t, sys, pid, slot("127.0.0.1:1"), slot("127.0.0.1:2"))
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{up, up})
	actortest.Equal(t, "round", r.Round, first.Round+1)

	setBackends(t, sys, pid, gone("127.0.0.1:1"), slot("127.0.0.1:2"))
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{removedHealth, up})

	setBackends(t, sys, pid, slot("127.0.0.1:1"), slot("127.0.0.1:2"))
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{up, up})

	sys.Root.Send(pid, &messages.RunHealthRound{})
	dispatcher.ExpectNothing(300 * time.Millisecond)
	actortest.Equal(t, "stats backends", len(healthStats(t, sys, pid).Backends), 2)
	select {
	case addr := <-dialed:
		t.Fatalf("probed %s with health checks off", addr)
	default:
	}
}

// gated answers like healthy(0, n), each connection once it takes a token from gate; arrived
// gets a value when a request has been read.
func gated(arrived chan<- struct{}, gate <-chan struct{}, n int64) handler {
	good := healthy(0, n)
	return func(c net.Conn, done <-chan struct{}) {
		arrived <- struct{}{}
		select {
		case <-gate:
		case <-done:
			return
		}
		good(c, done)
	}
}

// A table change while a round runs (held by a slow backend): results for backends still there
// count, results for removed backends and for indices the round did not probe are ignored
// without harm, the round's report stops before the new backend, and the round that follows at
// once reports the whole table.
func TestSetBackendsDuringRound(t *testing.T) {
	arrived := make(chan struct{}, 16)
	gate := make(chan struct{}, 16)
	slow := serve(t, gated(arrived, gate, 3))
	other := serve(t, healthy(0, 4))
	added := serve(t, healthy(0, 5))
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends(slow.addr, other.addr),
		Interval: never,
		Timeout:  actortest.Wait,
	})
	recvWithin(t, arrived, "the start-up round's probe")
	gate <- struct{}{}
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, upAt(0, 3), upAt(0, 4))

	sys.Root.Send(pid, &messages.RunHealthRound{})
	recvWithin(t, arrived, "the held round's probe")
	heldRound := first.Round + 1
	forged := messages.BackendHealth{Reason: "forged"}
	for _, i := range []int{-1, 2, 7} { // outside the round's table
		sys.Root.Send(pid, &messages.ProbeFinished{Round: heldRound, Index: i, Health: forged})
	}
	setBackends(t, sys, pid, slot(slow.addr), gone(other.addr), slot(added.addr))
	for _, i := range []int{1, 2} { // removed; added during the round
		sys.Root.Send(pid, &messages.ProbeFinished{Round: heldRound, Index: i, Health: forged})
	}
	dispatcher.ExpectNothing(200 * time.Millisecond) // the round still waits for slow

	gate <- struct{}{}
	gate <- struct{}{}
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "held round", r.Round, heldRound)
	actortest.Equal(t, "held round's report", r.Backends, []messages.BackendHealth{upAt(0, 3), removedHealth})
	r = actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "next round", r.Round, heldRound+1)
	actortest.Equal(t, "next round's report", r.Backends, []messages.BackendHealth{upAt(0, 3), removedHealth, upAt(0, 5)})
	dispatcher.ExpectNothing(300 * time.Millisecond)
	actortest.Equal(t, "stats backends", len(healthStats(t, sys, pid).Backends), 3)
}

// Removing the only backend a running round waits for ends the round at once.
func TestSetBackendsRemovalEndsRound(t *testing.T) {
	arrived := make(chan struct{}, 16)
	gate := make(chan struct{}, 16)
	fast := serve(t, healthy(0, 1))
	slow := serve(t, gated(arrived, gate, 2))
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends(fast.addr, slow.addr),
		Interval: never,
		Timeout:  time.Hour, // only the removal can end the round
	})
	recvWithin(t, arrived, "the start-up round's probe")
	setBackends(t, sys, pid, slot(fast.addr), gone(slow.addr))
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{upAt(0, 1), removedHealth})
	dispatcher.ExpectNothing(200 * time.Millisecond)
}

// A backend's own check settings changed at run time take effect from the next probe; settings
// that make no valid check take the backend down, saying why, without crashing the monitor.
func TestSetBackendsHealthOverride(t *testing.T) {
	alive := serve(t, byPath("/alive"))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(alive.addr), Interval: never,
		Check: Check{Kind: KindHTTP}})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), down) // / is 404 there

	s := slot(alive.addr)
	s.Backend.Health.Path = "/alive"
	setBackends(t, sys, pid, s)
	dispatcher.ExpectNothing(200 * time.Millisecond) // a changed check starts no round
	sys.Root.Send(pid, &messages.RunHealthRound{})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), messages.BackendHealth{Up: true})

	s.Backend.Health.Method = "POST"
	setBackends(t, sys, pid, s)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	if h := r.Backends[0]; h.Up || !strings.Contains(h.Reason, "GET or HEAD") {
		t.Fatalf("backend with an invalid check: %+v, want down saying why", h)
	}
}

// On start the monitor asks its parent for the backend table, and follows the answer.
func TestAsksParentForBackends(t *testing.T) {
	a := serve(t, healthy(0, 1))
	b := serve(t, healthy(0, 2))
	sys := actortest.NewSystem(t)
	dispatcher := actortest.NewProbe(t, sys)
	cfg := &Config{Backends: backends(a.addr), Dispatcher: dispatcher.PID, Interval: never}
	asked := make(chan *messages.GetBackends, 4)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch msg := ctx.Message().(type) {
		case *actor.Started:
			ctx.Spawn(Props(cfg))
		case *messages.GetBackends:
			asked <- msg
			ctx.Send(msg.ReplyTo, &messages.SetBackends{Table: []messages.BackendSlot{slot(a.addr), slot(b.addr)}})
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(parent).Wait() })
	select {
	case <-asked:
	case <-time.After(actortest.Wait):
		t.Fatal("the monitor did not ask its parent for the backends")
	}
	// The start-up round over Config.Backends reports a alone (the table may have come while
	// it ran: it stops before b, not probed yet); the round the table started reports both.
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 1))
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 1), upAt(0, 2))
	dispatcher.ExpectNothing(300 * time.Millisecond)
}
