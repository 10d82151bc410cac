package dispatcher

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// fixture is a Dispatcher under test with probes standing in for its peers.
type fixture struct {
	t      *testing.T
	sys    *actor.ActorSystem
	d      *actor.PID
	health *actortest.Probe
}

func newFixture(t *testing.T, cfg Config, nBackends int) *fixture {
	t.Helper()
	return newFixtureOf(t, cfg, nBackends, func(p actor.Producer) actor.Producer { return p })
}

// newFixtureOf is newFixture with the Dispatcher's producer passed through wrap (see newWrapped).
func newFixtureOf(t *testing.T, cfg Config, nBackends int, wrap func(actor.Producer) actor.Producer) *fixture {
	t.Helper()
	sys := actortest.NewSystem(t)
	f := &fixture{t: t, sys: sys, health: actortest.NewProbe(t, sys)}
	for i := 0; i < nBackends; i++ {
		cfg.Backends = append(cfg.Backends, messages.Backend{Addr: "127.0.0.1:" + string(rune('1'+i)) + "000"})
	}
	cfg.Health = f.health.PID
	f.d = sys.Root.Spawn(actor.PropsFromProducer(wrap(New(&cfg))))
	t.Cleanup(func() { _ = sys.Root.StopFuture(f.d).Wait() })
	return f
}

// client is one Forwarder as the Dispatcher sees it: a holder PID and a reply address.
type client struct {
	f       *fixture
	probe   *actortest.Probe
	lease   messages.Lease
	granted time.Time // when expectPicked saw the grant (CheckLease's Waited counts from it)
}

func (f *fixture) client() *client { return &client{f: f, probe: actortest.NewProbe(f.t, f.sys)} }

func (c *client) pick(rel messages.Release, retry bool) {
	c.f.sys.Root.Send(c.f.d, &messages.PickBackend{Holder: c.probe.PID, ReplyTo: c.probe.PID, Release: rel, Retry: retry})
}

// forget tells the Dispatcher this holder is gone, as the Acceptor does when a Forwarder stops.
func (c *client) forget() {
	c.f.sys.Root.Send(c.f.d, &messages.ForgetHolder{Holder: c.probe.PID})
}

// expectPicked waits for BackendPicked and checks the backend index.
func (c *client) expectPicked(wantBackend int) *messages.BackendPicked {
	c.f.t.Helper()
	m := actortest.Expect[*messages.BackendPicked](c.probe)
	if m.Lease.Backend != wantBackend {
		c.f.t.Fatalf("picked backend: got %d, want %d", m.Lease.Backend, wantBackend)
	}
	c.lease, c.granted = m.Lease, time.Now()
	return m
}

func (c *client) expectNoBackend(want messages.NoBackendReason) {
	c.f.t.Helper()
	m := actortest.Expect[*messages.NoBackend](c.probe)
	if m.Reason != want {
		c.f.t.Fatalf("NoBackend reason: got %v, want %v", m.Reason, want)
	}
}

func (c *client) release(o messages.Outcome) {
	c.f.sys.Root.Send(c.f.d, &messages.ReleaseLease{Holder: c.probe.PID, Release: messages.Release{Lease: c.lease, Outcome: o}})
	c.lease = messages.Lease{}
}

func (f *fixture) report(backends ...messages.BackendHealth) {
	f.sys.Root.Send(f.d, &messages.HealthReport{Round: 1, Backends: backends})
}

func up(entries, errors int64) messages.BackendHealth {
	return messages.BackendHealth{Up: true, Counted: true, Entries: entries, Errors: errors}
}

var down = messages.BackendHealth{Reason: "test"}

func TestPickRule(t *testing.T) {
	tests := []struct {
		name   string
		report []messages.BackendHealth
		want   []int // successive picks, each released before the next
	}{
		// Fewest entries wins outright.
		{"fewest entries", []messages.BackendHealth{up(5, 0), up(3, 9), up(4, 0)}, []int{1, 2, 1}},
		// Equal entries: fewer errors wins.
		{"tie on entries, errors decide", []messages.BackendHealth{up(3, 2), up(3, 1), up(3, 5)}, []int{1, 0, 2}},
		// Equal entries and errors: listing order decides, and the +1 per pick spreads a burst.
		{"full tie, listing order", []messages.BackendHealth{up(0, 0), up(0, 0), up(0, 0)}, []int{0, 1, 2, 0, 1, 2}},
		// Down backends are never candidates, however lightly loaded.
		{"down skipped", []messages.BackendHealth{down, up(10, 0), down}, []int{1, 1, 1}},
		// Not yet probed (report shorter than the list) counts as up with zero load.
		{"not yet probed", []messages.BackendHealth{up(1, 0)}, []int{1, 2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{N: 100, R: 1000}, 3)
			f.report(tt.report...)
			c := f.client()
			for _, want := range tt.want {
				c.pick(messages.Release{}, false)
				c.expectPicked(want)
				c.release(messages.OutcomeOK)
			}
		})
	}
}

func TestPickIncrementsWithoutRelease(t *testing.T) {
	// Concurrent requests (slots held) also spread: the estimate grows at pick time.
	f := newFixture(t, Config{N: 10, R: 1000}, 2)
	f.report(up(0, 0), up(1, 0))
	var got []int
	for i := 0; i < 4; i++ {
		c := f.client()
		c.pick(messages.Release{}, false)
		got = append(got, actortest.Expect[*messages.BackendPicked](c.probe).Lease.Backend)
	}
	actortest.Equal(t, "picks", got, []int{0, 0, 1, 0})
}

func TestQueueFIFOAtN(t *testing.T) {
	f := newFixture(t, Config{N: 2, R: 1000}, 1)
	a, b, c, d := f.client(), f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(0)
	c.pick(messages.Release{}, false)
	d.pick(messages.Release{}, false)
	c.probe.ExpectNothing(100 * time.Millisecond)
	d.probe.ExpectNothing(10 * time.Millisecond)

	b.release(messages.OutcomeOK)
	c.expectPicked(0) // first in, first served
	d.probe.ExpectNothing(100 * time.Millisecond)

	// A release folded into the next pick frees the slot for the oldest waiter first.
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeOK}, false)
	d.expectPicked(0)
	a.probe.ExpectNothing(100 * time.Millisecond)
	c.release(messages.OutcomeOK)
	a.expectPicked(0)
}

func TestQueueTimeout(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000, QueueTimeout: 100 * time.Millisecond}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectNoBackend(messages.NoBackendQueueTimeout)
	// The timed-out waiter does not take the slot later.
	a.release(messages.OutcomeOK)
	b.probe.ExpectNothing(100 * time.Millisecond)
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
}

func TestQueueFull(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000, MaxQueue: 1}, 1)
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	c.pick(messages.Release{}, false)
	c.expectNoBackend(messages.NoBackendQueueFull)
	b.probe.ExpectNothing(50 * time.Millisecond)
}

func TestHolderTerminationReleasesSlot(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.probe.ExpectNothing(50 * time.Millisecond)
	// The holder dies without a word (the Acceptor says so): its slot must come back.
	a.forget()
	b.expectPicked(0)
}

func TestTerminatedWaiterIsSkipped(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	c.pick(messages.Release{}, false)
	b.forget()
	a.release(messages.OutcomeOK)
	c.expectPicked(0)
}

func TestHealthNoticeEveryRPicks(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 3}, 2)
	c := f.client()
	for round := 0; round < 2; round++ {
		for i := 0; i < 3; i++ {
			c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK}, false)
			c.lease = actortest.Expect[*messages.BackendPicked](c.probe).Lease
			if i < 2 {
				f.health.ExpectNothing(20 * time.Millisecond)
			}
		}
		actortest.Expect[*messages.HealthCheckDue](f.health)
	}
	f.health.ExpectNothing(50 * time.Millisecond)
}

func TestNoBackendUp(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000}, 2)
	f.report(down, down)
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectNoBackend(messages.NoBackendDown)
	// No slot was taken: once a backend is up, picks succeed at once.
	f.report(down, up(0, 0))
	c.pick(messages.Release{}, false)
	c.expectPicked(1)
}

func TestConnectFailedRetryMovesOn(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000, ClassicFailures: true}, 3)
	f.report(up(0, 0), up(1, 0), up(2, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	// Refused: keep the slot, take the next best; backend 0 is out of rotation.
	c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeConnectFailed}, true)
	c.expectPicked(1)
	c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeConnectFailed}, true)
	c.expectPicked(2)
	c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeConnectFailed}, true)
	c.expectNoBackend(messages.NoBackendDown)
	// The slot was freed with the last answer, and a health report brings backends back.
	f.report(up(5, 0), up(4, 0), down)
	other := f.client()
	other.pick(messages.Release{}, false)
	other.expectPicked(1)
}

func TestTimeoutTakesBackendOutUntilHealthy(t *testing.T) {
	f := newFixture(t, Config{N: 4, R: 1000, ClassicFailures: true}, 2)
	f.report(up(0, 0), up(10, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	c.release(messages.OutcomeTimeout)
	c.pick(messages.Release{}, false)
	c.expectPicked(1)
	c.release(messages.OutcomeOK)
	f.report(up(0, 0), up(10, 0))
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
}

func TestStaleReleaseIgnored(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	old := a.lease
	a.release(messages.OutcomeOK)
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	// Releasing the old lease again must not free the slot a holds now.
	f.sys.Root.Send(f.d, &messages.ReleaseLease{Holder: a.probe.PID, Release: messages.Release{Lease: old, Outcome: messages.OutcomeOK}})
	b.pick(messages.Release{}, false)
	b.probe.ExpectNothing(100 * time.Millisecond)
	a.release(messages.OutcomeOK)
	b.expectPicked(0)
}

func TestTimeoutAfterForgetStillTakesBackendOut(t *testing.T) {
	// The holder's ForgetHolder overtakes its last release; the release's verdict on the
	// backend (no response in time) must still take it out of rotation.
	f := newFixture(t, Config{N: 4, R: 1000, ClassicFailures: true}, 2)
	f.report(up(0, 0), up(5, 0))
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	a.forget()
	f.sys.Root.Send(f.d, &messages.ReleaseLease{Holder: a.probe.PID, Release: messages.Release{Lease: a.lease, Outcome: messages.OutcomeTimeout}})
	b := f.client()
	b.pick(messages.Release{}, false)
	b.expectPicked(1)
}

func TestPickAfterForgetThenUndeliveredGivesSlotBack(t *testing.T) {
	// A Forwarder stopped between reading a request and picking: the Acceptor's ForgetHolder
	// comes first, then the pick, whose reply address is gone by the time the grant goes out.
	// Nobody would forget that holder again, so the grant itself must give the slot back (N=1:
	// otherwise no one is served again).
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a, b := f.client(), f.client()
	a.forget()
	gone := actor.NewPID(f.sys.Address(), "gone-reply-endpoint")
	f.sys.Root.Send(f.d, &messages.PickBackend{Holder: a.probe.PID, ReplyTo: gone})
	b.pick(messages.Release{}, false)
	b.expectPicked(0)
}

func TestGrantNamesItsHolder(t *testing.T) {
	// A receiver that drops the grant forgets its holder with it (the Forwarder's dropGrant).
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a := f.client()
	a.pick(messages.Release{}, false)
	if m := a.expectPicked(0); m.Holder != a.probe.PID {
		t.Fatalf("BackendPicked.Holder: got %v, want %v", m.Holder, a.probe.PID)
	}
}
