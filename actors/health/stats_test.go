package health

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// healthStats asks the monitor for its counts.
func healthStats(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) *messages.HealthStats {
	t.Helper()
	p := actortest.NewProbe(t, sys)
	sys.Root.Send(pid, &messages.StatsRequest{ReplyTo: p.PID})
	return actortest.Expect[*messages.HealthStats](p)
}

func TestStatsAfterOneRound(t *testing.T) {
	live := serve(t, healthy(0, 1))
	start := time.Now()
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(live.addr, deadAddr(t)), Interval: never})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 1), down)
	end := time.Now()

	s := healthStats(t, sys, pid)
	actortest.Equal(t, "rounds", s.Rounds, uint64(1))
	actortest.Equal(t, "kind", s.Kind, "classic")
	actortest.Equal(t, "interval", s.Interval, never)
	actortest.Equal(t, "backends", len(s.Backends), 2)
	for i, want := range []struct {
		passed, failed uint64
		ok             bool
	}{{1, 0, true}, {0, 1, false}} {
		b := s.Backends[i]
		actortest.Equal(t, "passed, failed", []uint64{b.Passed, b.Failed}, []uint64{want.passed, want.failed})
		actortest.Equal(t, "durations observed", b.Duration.Count(), uint64(1))
		actortest.Equal(t, "history", len(b.History), 1)
		c := b.History[0]
		actortest.Equal(t, "ok", c.OK, want.ok)
		if want.ok != (c.Reason == "") {
			t.Fatalf("backend %d: check ok %v with reason %q", i, c.OK, c.Reason)
		}
		if c.At.Before(start) || c.At.After(end) || c.Took < 0 || c.At.Add(c.Took).After(end) {
			t.Fatalf("backend %d: check at %v took %v, outside the round [%v, %v]", i, c.At, c.Took, start, end)
		}
		actortest.Equal(t, "duration sum", b.Duration.SumDuration(), c.Took)
	}
}

// The history keeps the last HealthHistory checks, oldest first; the counts keep them all.
func TestStatsHistoryIsBounded(t *testing.T) {
	live := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(live.addr), Interval: never})
	actortest.Expect[*messages.HealthReport](dispatcher)
	rounds := messages.HealthHistory + 5
	var last time.Time
	for i := 1; i < rounds; i++ {
		sys.Root.Send(pid, &messages.RunHealthRound{})
		actortest.Expect[*messages.HealthReport](dispatcher)
		if i == rounds-1 {
			last = time.Now()
		}
	}
	s := healthStats(t, sys, pid)
	actortest.Equal(t, "rounds", s.Rounds, uint64(rounds))
	b := s.Backends[0]
	actortest.Equal(t, "passed", b.Passed, uint64(rounds))
	actortest.Equal(t, "durations observed", b.Duration.Count(), uint64(rounds))
	actortest.Equal(t, "history kept", len(b.History), messages.HealthHistory)
	for i := 1; i < len(b.History); i++ {
		if b.History[i].At.Before(b.History[i-1].At) {
			t.Fatalf("history not oldest first at %d: %v before %v", i, b.History[i].At, b.History[i-1].At)
		}
	}
	if newest := b.History[len(b.History)-1]; newest.At.After(last) || !newest.OK {
		t.Fatalf("newest check %+v: want the last round's, passed", newest)
	}

	// The snapshot is a copy: a later round does not change what was sent.
	kept := append([]messages.CheckResult(nil), b.History...)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "earlier snapshot", b.History, kept)
	actortest.Equal(t, "rounds later", healthStats(t, sys, pid).Rounds, uint64(rounds+1))
}

func TestStatsKindAndNoChecks(t *testing.T) {
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends("127.0.0.1:1"),
		Check: Check{Kind: KindNone}, Interval: 5 * time.Second})
	actortest.Expect[*messages.HealthReport](dispatcher)
	s := healthStats(t, sys, pid)
	actortest.Equal(t, "kind", s.Kind, "none")
	actortest.Equal(t, "rounds", s.Rounds, uint64(0))
	actortest.Equal(t, "interval", s.Interval, 5*time.Second)
	actortest.Equal(t, "backend checks", s.Backends, []messages.BackendChecks{{}})
}
