package dispatcher

import (
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// releaseStatus releases c's lease with a response of the given status.
func (c *client) releaseStatus(status uint16) {
	c.f.sys.Root.Send(c.f.d, &messages.ReleaseLease{Holder: c.probe.PID,
		Release: messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK, Status: status}})
	c.lease = messages.Lease{}
}

// checkLease asks the Dispatcher about c's lease and returns its verdict.
func (c *client) checkLease() *messages.LeaseVerdict {
	c.f.t.Helper()
	c.f.sys.Root.Send(c.f.d, &messages.CheckLease{Holder: c.probe.PID, ReplyTo: c.probe.PID, Lease: c.lease, Waited: time.Since(c.granted)})
	return actortest.Expect[*messages.LeaseVerdict](c.probe)
}

// picks makes n picks with one client, each released OK before the next, and counts them per
// backend.
func (f *fixture) picks(n, backends int) []int {
	f.t.Helper()
	got := make([]int, backends)
	c := f.client()
	for i := 0; i < n; i++ {
		c.pick(messages.Release{}, false)
		m := actortest.Expect[*messages.BackendPicked](c.probe)
		got[m.Lease.Backend]++
		c.lease = m.Lease
		c.release(messages.OutcomeOK)
	}
	return got
}

func TestMaxPerBackendQueuesAtTheCap(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, MaxPerBackend: 1, Policy: PolicyConfig{Name: "least-request"}}, 2)
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	ma := actortest.Expect[*messages.BackendPicked](a.probe)
	first := ma.Lease.Backend
	a.lease = ma.Lease
	b.pick(messages.Release{}, false)
	b.expectPicked(1 - first)
	// Both backends are at their cap of one: c waits although N has room.
	c.pick(messages.Release{}, false)
	c.probe.ExpectNothing(100 * time.Millisecond)
	a.release(messages.OutcomeOK)
	c.expectPicked(first)
}

func TestRetryGoesToAnUntriedBackendAndStopsWhenAllTried(t *testing.T) {
	// Without classic failures a refused connect does not take the backend down, yet the
	// retry must not come back to it: each request tries each backend at most once.
	f := newFixture(t, Config{N: 1, R: 1000, Eject: EjectConfig{MaxPercent: -1}}, 2)
	f.report(up(0, 0), up(1, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeConnectFailed}, true)
	c.expectPicked(1)
	c.pick(messages.Release{Lease: c.lease, Outcome: messages.OutcomeBackendFailed}, true)
	c.expectNoBackend(messages.NoBackendDown)
	// Both are still in rotation for the next request.
	c.pick(messages.Release{}, false)
	m := actortest.Expect[*messages.BackendPicked](c.probe)
	if m.Lease.Backend != 0 && m.Lease.Backend != 1 {
		t.Fatalf("got backend %d", m.Lease.Backend)
	}
}

func TestConsecutive5xxEjectAndReturn(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, Policy: PolicyConfig{Name: "round-robin"},
		Eject: EjectConfig{Consecutive5xx: 3, BaseTime: 300 * time.Millisecond}}, 2)
	c := f.client()
	fails := 0
	for fails < 3 {
		c.pick(messages.Release{}, false)
		m := actortest.Expect[*messages.BackendPicked](c.probe)
		c.lease = m.Lease
		if m.Lease.Backend == 0 {
			c.releaseStatus(503)
			fails++
			continue
		}
		c.releaseStatus(200)
	}
	// Ejected: every pick goes to backend 1.
	if got := f.picks(10, 2); got[0] != 0 {
		t.Fatalf("picks while backend 0 is ejected: got %v, want none on it", got)
	}
	// The ejection ends after its base time.
	deadline := time.Now().Add(actortest.Wait)
	for f.picks(4, 2)[0] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("backend 0 never came back from its ejection")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAnswerBelow500EndsThe5xxRun(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, Eject: EjectConfig{Consecutive5xx: 2}}, 2)
	f.report(up(0, 0), up(100, 0))
	c := f.client()
	for _, st := range []uint16{500, 200, 500, 404, 502} {
		c.pick(messages.Release{}, false)
		c.expectPicked(0)
		c.releaseStatus(st)
	}
	c.pick(messages.Release{}, false)
	c.expectPicked(0) // never two 5xx in a row: not ejected
}

func TestEjectionNeverExceedsTheMaxShare(t *testing.T) {
	// Two backends at 50%: one may be ejected, never both.
	f := newFixture(t, Config{N: 10, R: 1000, Eject: EjectConfig{ConnectFailures: 1}}, 2)
	f.report(up(0, 0), up(0, 0))
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	a.release(messages.OutcomeConnectFailed) // ejects 0
	a.pick(messages.Release{}, false)
	a.expectPicked(1)
	a.release(messages.OutcomeConnectFailed) // would eject the last one: refused
	a.pick(messages.Release{}, false)
	a.expectPicked(1)
}

// timed gives backend 0 a latency sample (a request answered in a millisecond), so stalls can
// be judged.
func (f *fixture) timed() {
	f.t.Helper()
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	f.sys.Root.Send(f.d, &messages.ReleaseLease{Holder: c.probe.PID,
		Release: messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK, Status: 200, Latency: time.Millisecond}})
}

// stuck makes two requests wait on backend 0 and returns them.
func (f *fixture) stuck() (*client, *client) {
	f.t.Helper()
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(0)
	return a, b
}

func TestStalledBackendIsAbandonedAndAvoided(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 50 * time.Millisecond}, 2)
	f.report(up(0, 0), up(50, 0))
	f.timed()
	a, b := f.stuck()
	// Asked too early: go on waiting, ask again later.
	if v := a.checkLease(); v.Abandon || v.CheckAfter != 50*time.Millisecond {
		t.Fatalf("early check: got %+v, want keep waiting 50ms", v)
	}
	time.Sleep(60 * time.Millisecond) // the stall is a matter of time: let it pass
	// One request overdue, once: it could be a slow page. It asks again soon.
	if v := b.checkLease(); v.Abandon || v.CheckAfter != 50*time.Millisecond/4 {
		t.Fatalf("first overdue request: got %+v, want keep waiting, and ask again after 12.5ms", v)
	}
	// A second overdue request with no answer in between: stalled.
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("after the stall: got %+v, want Abandon", v)
	}
	// The request goes elsewhere, and so does every new one while backend 0 is ejected.
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeAbandoned}, true)
	a.expectPicked(1)
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(1)
}

func TestSlowBackendThatAnswersIsNotStalled(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 50 * time.Millisecond}, 2)
	f.report(up(0, 0), up(50, 0))
	f.timed()
	a, b := f.stuck()
	time.Sleep(60 * time.Millisecond)
	b.release(messages.OutcomeOK) // backend 0 answered after a's request was sent
	if v := a.checkLease(); v.Abandon || v.CheckAfter == 0 {
		t.Fatalf("got %+v, want keep waiting", v)
	}
}

func TestStallNeedsAUsualLatencyAndMoreThanOneRequest(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timed   bool // backend 0 has a latency sample
		two     bool // two requests wait on it, not one
		wait    time.Duration
		abandon bool
	}{
		// Nobody has timed the backend: slow or frozen, the health checks judge it.
		{"never timed", false, true, 60 * time.Millisecond, false},
		// A lone request just past the stall time is more likely a slow page.
		{"lone request", true, false, 60 * time.Millisecond, false},
		// A lone request stuck four stall times is not.
		{"lone request, long", true, false, 210 * time.Millisecond, true},
		// Two stuck requests past the stall time.
		{"two requests", true, true, 60 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 50 * time.Millisecond}, 2)
			f.report(up(0, 0), up(50, 0))
			if tt.timed {
				f.timed()
			}
			a := f.client()
			var other *client
			if tt.two {
				a, other = f.stuck()
			} else {
				a.pick(messages.Release{}, false)
				a.expectPicked(0)
			}
			time.Sleep(tt.wait)
			if other != nil {
				other.checkLease() // overdue too
			}
			if v := a.checkLease(); v.Abandon != tt.abandon {
				t.Fatalf("got %+v, want Abandon %v", v, tt.abandon)
			}
		})
	}
}

func TestLoneStalledBackendIsKeptWaitingOn(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond}, 1)
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	time.Sleep(30 * time.Millisecond)
	if v := a.checkLease(); v.Abandon {
		t.Fatalf("got %+v, want keep waiting: there is nowhere else to go", v)
	}
}

func TestDownBackendsWaitingRequestIsAbandoned(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000}, 2)
	f.report(up(0, 0), up(5, 0))
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	f.report(down, up(5, 0))
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("got %+v, want Abandon: its backend is down", v)
	}
}

func TestStallEjectionEndsAtAHealthyReport(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond, HealthTimeout: 30 * time.Millisecond, HealthAnswers: true}, 2)
	f.report(up(0, 0), up(50, 0))
	f.timed()
	a, stuck := f.stuck()
	time.Sleep(30 * time.Millisecond)
	stuck.checkLease()
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("got %+v, want Abandon", v)
	}
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeAbandoned}, true)
	a.expectPicked(1)
	a.release(messages.OutcomeOK)
	stuck.release(messages.OutcomeAbandoned)
	time.Sleep(40 * time.Millisecond) // the next report's probes ran after the stall
	// Still up within its fall threshold, but its latest probe failed: still ejected.
	f.report(messages.BackendHealth{Up: true, Reason: "timeout"}, up(50, 0))
	b := f.client()
	b.pick(messages.Release{}, false)
	b.expectPicked(1)
	b.release(messages.OutcomeOK)
	f.report(up(0, 0), up(50, 0))
	b.pick(messages.Release{}, false)
	b.expectPicked(0)
}

func TestPicksWaitForTheFirstHealthReport(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, HealthTimeout: time.Minute}, 2)
	c := f.client()
	c.pick(messages.Release{}, false)
	c.probe.ExpectNothing(100 * time.Millisecond)
	f.report(down, up(0, 0))
	c.expectPicked(1) // not backend 0, which nobody had probed when the pick came
}

func TestPicksWaitingForTheFirstReportGetNoBackendWhenAllAreDown(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, HealthTimeout: time.Minute}, 2)
	c := f.client()
	c.pick(messages.Release{}, false)
	c.probe.ExpectNothing(50 * time.Millisecond)
	f.report(down, down)
	c.expectNoBackend(messages.NoBackendDown)
}

func TestStartupWaitIsCapped(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, HealthTimeout: 100 * time.Millisecond}, 1)
	c := f.client()
	c.pick(messages.Release{}, false)
	actortest.ExpectWithin[*messages.BackendPicked](c.probe, actortest.Wait)
}

func TestSlowStartRampsAComebackUp(t *testing.T) {
	for _, tt := range []struct {
		name      string
		slowStart time.Duration
		min, max  int // picks of the comeback backend out of 40
	}{
		// Without slow start a comeback takes its share at once.
		{"off", 0, 20, 20},
		// With it, it starts at a tenth of its weight: about 4 of 40.
		{"on", time.Hour, 1, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{N: 10, R: 1000, SlowStart: tt.slowStart, Policy: PolicyConfig{Name: "round-robin"}}, 2)
			f.report(up(0, 0), up(0, 0))
			f.report(up(0, 0), down)
			f.report(up(0, 0), up(0, 0))
			if got := f.picks(40, 2)[1]; got < tt.min || got > tt.max {
				t.Fatalf("comeback backend: got %d of 40 picks, want %d to %d", got, tt.min, tt.max)
			}
		})
	}
}

func TestLeastRequestCountsInFlight(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1000, Policy: PolicyConfig{Name: "least-request"}}, 2)
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	ma := actortest.Expect[*messages.BackendPicked](a.probe)
	a.lease = ma.Lease
	b.pick(messages.Release{}, false)
	mb := actortest.Expect[*messages.BackendPicked](b.probe)
	if ma.Lease.Backend == mb.Lease.Backend {
		t.Fatalf("two requests in flight on backend %d, none on the other", ma.Lease.Backend)
	}
	a.release(messages.OutcomeOK)
	// b's request is still in flight: the next goes where a's was.
	c.pick(messages.Release{}, false)
	c.expectPicked(ma.Lease.Backend)
}

func TestNoHealthNotices(t *testing.T) {
	f := newFixture(t, Config{N: 10, R: 1, NoHealthNotices: true}, 1)
	f.picks(3, 1)
	f.health.ExpectNothing(100 * time.Millisecond)
}

func TestWaiterForAFullBackendDoesNotHoldBackOthers(t *testing.T) {
	// A retry whose only untried backend is at its cap waits at the head of the queue; a fresh
	// pick behind it goes to the idle backend at once, and the retry follows when there is room.
	f := newFixture(t, Config{N: 10, R: 1000, MaxPerBackend: 1, Eject: EjectConfig{MaxPercent: -1}}, 2)
	f.report(up(0, 0), up(10, 0))
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(1)
	// a's request broke before any answer: it must go to backend 1, which is full.
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeBackendFailed}, true)
	a.probe.ExpectNothing(50 * time.Millisecond)
	c.pick(messages.Release{}, false)
	c.expectPicked(0) // backend 0 is idle since a's release
	b.release(messages.OutcomeOK)
	a.expectPicked(1)
}

func TestQueueDeadlineServesThoseBehind(t *testing.T) {
	f := newFixture(t, Config{N: 1, R: 1000, QueueTimeout: 100 * time.Millisecond}, 1)
	a, b := f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectNoBackend(messages.NoBackendQueueTimeout)
}

func TestAbandonOnlyWhenAnUntriedBackendHasRoom(t *testing.T) {
	// The request already tried backend 0 (refused) and now waits on 1, which goes down: with
	// no other backend to go to it keeps waiting rather than fail.
	f := newFixture(t, Config{N: 10, R: 1000, Eject: EjectConfig{MaxPercent: -1}}, 2)
	f.report(up(0, 0), up(10, 0))
	a := f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeConnectFailed}, true)
	a.expectPicked(1)
	f.report(up(0, 0), down)
	if v := a.checkLease(); v.Abandon {
		t.Fatalf("got %+v, want keep waiting: the request has tried every other backend", v)
	}
}

func TestStallEjectsBeyondTheShare(t *testing.T) {
	// Three backends at 50%: one may be ejected for failures. A second that stalls is ejected
	// anyway: it answers nothing, and another backend is left.
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond, Eject: EjectConfig{ConnectFailures: 1}}, 3)
	f.report(up(50, 0), up(60, 0), up(0, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(2)
	c.release(messages.OutcomeConnectFailed) // backend 2 ejected: the share's one
	f.report(up(0, 0), up(60, 0), up(0, 0))
	f.timed()
	a, b := f.stuck()
	time.Sleep(30 * time.Millisecond)
	b.checkLease()
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("got %+v, want Abandon: backend 0 stalled", v)
	}
	c.pick(messages.Release{}, false)
	c.expectPicked(1) // 0 stalled and 2 failed: both out
}

func TestTCPCheckDoesNotEndAStallEjection(t *testing.T) {
	// A TCP connect succeeds on a frozen server (the kernel accepts for it): without
	// HealthAnswers, a passing report leaves the stall ejection to run its time.
	f := newFixture(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond, HealthTimeout: 10 * time.Millisecond}, 2)
	f.report(up(0, 0), up(50, 0))
	f.timed()
	a, b := f.stuck()
	time.Sleep(30 * time.Millisecond)
	b.checkLease()
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("got %+v, want Abandon", v)
	}
	time.Sleep(20 * time.Millisecond)
	f.report(up(0, 0), up(50, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(1)
}
