package dispatcher

import (
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// stats asks the Dispatcher for its counts.
func (f *fixture) stats() *messages.DispatcherStats {
	f.t.Helper()
	p := actortest.NewProbe(f.t, f.sys)
	f.sys.Root.Send(f.d, &messages.StatsRequest{ReplyTo: p.PID})
	return actortest.Expect[*messages.DispatcherStats](p)
}

func weightedPair() []messages.Backend {
	return []messages.Backend{{Addr: "127.0.0.1:9001", Weight: 3}, {Addr: "127.0.0.1:9002"}}
}

func TestStatsBeforeAndAfterTheFirstReport(t *testing.T) {
	start := time.Now()
	f := newFixture(t, Config{Backends: weightedPair(), N: 3, R: 1000, HealthTimeout: time.Hour}, 0)
	s := f.stats()
	if s.Ready {
		t.Fatal("ready before the first health report")
	}
	actortest.Equal(t, "budget", []int{s.N, s.InFlight, s.Queued}, []int{3, 0, 0})
	actortest.Equal(t, "picks", s.Picks, uint64(0))
	actortest.Equal(t, "backends", len(s.Backends), 2)
	for i, want := range []struct {
		addr   string
		weight int
	}{{"127.0.0.1:9001", 3}, {"127.0.0.1:9002", 1}} {
		b := s.Backends[i]
		actortest.Equal(t, "address", b.Addr, want.addr)
		actortest.Equal(t, "weight", b.Weight, want.weight) // a zero weight counts as 1
		if b.Probed || !b.Up || b.Ejected || b.Reason != "" || b.InFlight != 0 || b.Latency != 0 || b.Ejections != 0 {
			t.Fatalf("backend %d before any report: %+v", i, b)
		}
		if b.Since.Before(start) || b.Since.After(time.Now()) {
			t.Fatalf("backend %d: since %v, want the start-up time", i, b.Since)
		}
	}

	// A pick waits for the first report (and counts as queued).
	c := f.client()
	c.pick(messages.Release{}, false)
	c.probe.ExpectNothing(50 * time.Millisecond)
	actortest.Equal(t, "queued before ready", f.stats().Queued, 1)

	before := time.Now()
	f.report(up(0, 0), up(0, 0))
	c.expectPicked(0)
	s = f.stats()
	if !s.Ready {
		t.Fatal("not ready after the first health report")
	}
	actortest.Equal(t, "queued", s.Queued, 0)
	actortest.Equal(t, "waits counted", s.QueueWait.Count(), uint64(1))
	for i, b := range s.Backends {
		if !b.Probed || !b.Up {
			t.Fatalf("backend %d after an up report: %+v", i, b)
		}
		if b.Since.Before(before) {
			t.Fatalf("backend %d: since %v is older than its first report (%v)", i, b.Since, before)
		}
	}
}

func TestStatsInFlightPicksAndDown(t *testing.T) {
	f := newFixture(t, Config{Backends: weightedPair(), N: 4, R: 1000}, 0)
	f.report(up(0, 0), up(0, 0))
	s := f.stats()
	if !s.Ready {
		t.Fatal("not ready after the first report (HealthTimeout zero)")
	}
	since1 := s.Backends[1].Since

	a := f.client()
	a.pick(messages.Release{}, false)
	granted := actortest.Expect[*messages.BackendPicked](a.probe)
	a.lease = granted.Lease
	s = f.stats()
	actortest.Equal(t, "in flight", s.InFlight, 1)
	actortest.Equal(t, "picks", s.Picks, uint64(1))
	for i, b := range s.Backends {
		want := 0
		if i == granted.Lease.Backend {
			want = 1
		}
		actortest.Equal(t, "backend in flight", b.InFlight, want)
	}

	sent := time.Now()
	f.sys.Root.Send(f.d, &messages.HealthReport{Round: 2, Backends: []messages.BackendHealth{up(0, 0),
		{Reason: "connection refused"}}})
	s = f.stats()
	b := s.Backends[1]
	if b.Up || !b.Probed {
		t.Fatalf("backend 1 after a down report: %+v", b)
	}
	actortest.Equal(t, "reason", b.Reason, "connection refused")
	if b.Since.Before(sent) || !b.Since.After(since1) {
		t.Fatalf("since %v, was %v, report sent at %v: the change of state did not move it", b.Since, since1, sent)
	}
	if s.Backends[0].Reason != "" || !s.Backends[0].Up {
		t.Fatalf("backend 0 is up: %+v", s.Backends[0])
	}
	// The same verdict again is no change of state.
	f.sys.Root.Send(f.d, &messages.HealthReport{Round: 3, Backends: []messages.BackendHealth{up(0, 0),
		{Reason: "connection refused"}}})
	actortest.Equal(t, "since after the same verdict", f.stats().Backends[1].Since, b.Since)

	a.release(messages.OutcomeOK)
	s = f.stats()
	actortest.Equal(t, "in flight after the release", []int{s.InFlight, s.Backends[0].InFlight, s.Backends[1].InFlight},
		[]int{0, 0, 0})
	actortest.Equal(t, "picks after the release", s.Picks, uint64(1))
}

func TestStatsQueueWait(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	actortest.Equal(t, "waits before any wait", f.stats().QueueWait.Count(), uint64(0))

	queued := time.Now()
	b.pick(messages.Release{}, false)
	b.probe.ExpectNothing(50 * time.Millisecond)
	s := f.stats()
	actortest.Equal(t, "queued", s.Queued, 1)
	actortest.Equal(t, "waits while waiting", s.QueueWait.Count(), uint64(0))

	a.release(messages.OutcomeOK)
	b.expectPicked(0)
	waited := time.Since(queued)
	s = f.stats()
	actortest.Equal(t, "queued", s.Queued, 0)
	actortest.Equal(t, "waits", s.QueueWait.Count(), uint64(1))
	actortest.Equal(t, "picks", s.Picks, uint64(2))
	if s.QueueWait.SumDuration() < 40*time.Millisecond || s.QueueWait.SumDuration() > waited {
		t.Fatalf("wait %v: want between about 50ms (it waited at least that) and %v", s.QueueWait.SumDuration(), waited)
	}
}

// A pick that times out in the queue counts its wait too.
func TestStatsQueueWaitCountsTimeouts(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000, QueueTimeout: 100 * time.Millisecond}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectNoBackend(messages.NoBackendQueueTimeout)
	s := f.stats()
	actortest.Equal(t, "waits", s.QueueWait.Count(), uint64(1))
	if s.QueueWait.SumDuration() < 100*time.Millisecond || s.QueueWait.SumDuration() > actortest.Wait {
		t.Fatalf("wait %v: want at least the queue timeout", s.QueueWait.SumDuration())
	}
	actortest.Equal(t, "picks", s.Picks, uint64(1))
}

func TestStatsEjection(t *testing.T) {
	f := newFixture(t, Config{N: 4, R: 1000, Eject: EjectConfig{Consecutive5xx: 1, BaseTime: time.Hour, MaxTime: 2 * time.Hour}}, 2)
	f.report(up(0, 0), up(0, 0))
	before := time.Now()
	c := f.client()
	c.pick(messages.Release{}, false)
	m := c.expectPicked(0)
	f.sys.Root.Send(f.d, &messages.ReleaseLease{Holder: c.probe.PID,
		Release: messages.Release{Lease: m.Lease, Outcome: messages.OutcomeOK, Status: 503, Latency: 3 * time.Millisecond}})
	s := f.stats()
	b := s.Backends[0]
	if !b.Ejected || !b.Up {
		t.Fatalf("backend 0 after a 5xx with Consecutive5xx 1: %+v", b)
	}
	if !strings.Contains(b.Reason, "5xx") {
		t.Fatalf("ejection reason %q does not say why", b.Reason)
	}
	actortest.Equal(t, "ejections", b.Ejections, uint64(1))
	if b.Since.Before(before) || b.EjectedUntil.Before(b.Since.Add(time.Hour-time.Second)) {
		t.Fatalf("since %v, ejected until %v: want now and an hour later", b.Since, b.EjectedUntil)
	}
	actortest.Equal(t, "latency", b.Latency, 3*time.Millisecond)
	if s.Backends[1].Ejected || s.Backends[1].Reason != "" || !s.Backends[1].EjectedUntil.IsZero() {
		t.Fatalf("backend 1: %+v", s.Backends[1])
	}
}
