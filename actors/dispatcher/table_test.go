package dispatcher

import (
	"testing"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// setBackends sends a table and waits for BackendsSet.
func (f *fixture) setBackends(table ...messages.BackendSlot) {
	f.t.Helper()
	p := actortest.NewProbe(f.t, f.sys)
	f.sys.Root.Send(f.d, &messages.SetBackends{Table: table, ReplyTo: p.PID})
	actortest.Expect[*messages.BackendsSet](p)
}

func slot(addr string, weight int, removed bool) messages.BackendSlot {
	return messages.BackendSlot{Backend: messages.Backend{Addr: addr, Weight: weight}, Removed: removed}
}

// A removed backend takes no new request; its lease, released after the removal, still frees
// its slot of the budget.
func TestRemovedBackendDrains(t *testing.T) {
	f := newFixture(t, Config{N: 2}, 2)
	f.report(up(0, 0), up(5, 0)) // backend 0 has fewer entries: the classic rule picks it
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	f.setBackends(slot("127.0.0.1:1000", 1, true), slot("127.0.0.1:2000", 1, false))
	b := f.client()
	b.pick(messages.Release{}, false)
	b.expectPicked(1) // 0 is draining
	// N is 2 and both slots are taken: a third request waits until a's release frees one.
	c := f.client()
	c.pick(messages.Release{}, false)
	c.probe.ExpectNothing(50e6)
	a.release(messages.OutcomeOK)
	c.expectPicked(1)
	s := f.stats()
	if !s.Backends[0].Removed || s.Backends[0].InFlight != 0 || s.InFlight != 2 {
		t.Fatalf("after the drain: %+v, in flight %d", s.Backends[0], s.InFlight)
	}
}

// A new backend takes nothing before a health report finds it up; a reweighted one gets its
// new share.
func TestAddedBackendWaitsForItsHealthCheck(t *testing.T) {
	f := newFixture(t, Config{N: 10, Policy: PolicyConfig{Name: "round-robin"}}, 1)
	f.report(up(0, 0))
	f.setBackends(slot("127.0.0.1:1000", 1, false), slot("127.0.0.1:9999", 1, false))
	c := f.client()
	for range 4 {
		c.pick(messages.Release{}, false)
		c.expectPicked(0) // the new one is not checked yet
		c.release(messages.OutcomeOK)
	}
	f.report(up(0, 0), up(0, 0))
	seen := map[int]int{}
	for range 4 {
		c.pick(messages.Release{}, false)
		m := actortest.Expect[*messages.BackendPicked](c.probe)
		seen[m.Lease.Backend]++
		c.lease = m.Lease
		c.release(messages.OutcomeOK)
	}
	if seen[0] != 2 || seen[1] != 2 {
		t.Fatalf("round robin over two equal backends: %v", seen)
	}
	f.setBackends(slot("127.0.0.1:1000", 3, false), slot("127.0.0.1:9999", 1, false))
	seen = map[int]int{}
	for range 8 {
		c.pick(messages.Release{}, false)
		m := actortest.Expect[*messages.BackendPicked](c.probe)
		seen[m.Lease.Backend]++
		c.lease = m.Lease
		c.release(messages.OutcomeOK)
	}
	if seen[0] != 6 || seen[1] != 2 {
		t.Fatalf("weights 3 and 1 over 8 picks: %v", seen)
	}
	if s := f.stats(); s.Backends[1].Addr != "127.0.0.1:9999" || s.Backends[0].Weight != 3 {
		t.Fatalf("stats: %+v", s.Backends)
	}
}

// An address that comes back gets its old index, and waits for a health check again.
func TestReturningBackendKeepsItsIndex(t *testing.T) {
	f := newFixture(t, Config{N: 10}, 2)
	f.report(up(0, 0), up(0, 0))
	f.setBackends(slot("127.0.0.1:1000", 1, false), slot("127.0.0.1:2000", 1, true))
	f.setBackends(slot("127.0.0.1:1000", 1, false), slot("127.0.0.1:2000", 1, false))
	s := f.stats()
	if len(s.Backends) != 2 || s.Backends[1].Removed || s.Backends[1].Probed || s.Backends[1].Up {
		t.Fatalf("returned backend: %+v", s.Backends)
	}
}

// A reload's settings apply to what follows: a larger budget lets a waiting pick through at
// once, and a new policy picks from then on; the lease in flight stays.
func TestReconfigure(t *testing.T) {
	f := newFixture(t, Config{N: 1}, 2)
	f.report(up(0, 0), up(5, 0))
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.probe.ExpectNothing(50e6) // N is 1
	f.sys.Root.Send(f.d, &messages.Reconfigure{Config: &Config{N: 2, Policy: PolicyConfig{Name: "least-request"}}})
	b.expectPicked(1) // classic would say 0 (fewer entries); least-request says 1 (a has 0)
	a.release(messages.OutcomeOK)
	b.release(messages.OutcomeOK)
	if s := f.stats(); s.N != 2 || s.InFlight != 0 || len(s.Backends) != 2 {
		t.Fatalf("after: N %d, in flight %d, %d backends", s.N, s.InFlight, len(s.Backends))
	}
}

// A report line marked Removed (built while the backend was removed) says nothing of a backend
// revived since: it stays waiting for its first real check.
func TestRemovedLineDoesNotJudgeARevivedBackend(t *testing.T) {
	f := newFixture(t, Config{N: 10}, 2)
	f.report(up(0, 0), up(0, 0))
	f.setBackends(slot("127.0.0.1:1000", 1, false), slot("127.0.0.1:2000", 1, true))
	f.setBackends(slot("127.0.0.1:1000", 1, false), slot("127.0.0.1:2000", 1, false))
	f.report(up(0, 0), messages.BackendHealth{Reason: "removed", Removed: true})
	if b := f.stats().Backends[1]; !b.Pending || b.Probed {
		t.Fatalf("the revived backend after a stale removed line: %+v", b)
	}
}
