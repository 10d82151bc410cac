package health

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// dialTimes returns a dial function that dials for real and first sends the time of the call
// on the returned channel: the start of each round's probe of a single backend.
func dialTimes() (DialFunc, <-chan time.Time) {
	times := make(chan time.Time, 64)
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		times <- time.Now()
		return d.DialContext(ctx, network, addr)
	}, times
}

func recvTime(t *testing.T, c <-chan time.Time, what string) time.Time {
	t.Helper()
	select {
	case at := <-c:
		return at
	case <-time.After(actortest.Wait):
		t.Fatalf("no %s within %v", what, actortest.Wait)
		return time.Time{}
	}
}

// TestNoticeGap checks that two notices in quick succession make two rounds, the second
// starting no sooner than the gap after the first ended, and no third.
//
// The times compared are those of the probes' dials: a round's dial comes before it ends, and
// the next round's dial after it starts, so two dials are at least the gap apart however late
// the test sees them.
func TestNoticeGap(t *testing.T) {
	const gap = 300 * time.Millisecond
	a := serve(t, healthy(0, 1))
	dial, dials := dialTimes()
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never, NoticeGap: gap, Dial: dial})
	r0 := actortest.Expect[*messages.HealthReport](dispatcher)
	t0 := recvTime(t, dials, "start-up probe")
	// Nothing is due: the silence also lets the gap after the start-up round pass.
	dispatcher.ExpectNothing(gap)

	sys.Root.Send(pid, &messages.HealthCheckDue{}) // starts a round at once
	sys.Root.Send(pid, &messages.HealthCheckDue{}) // during it or just after: waits for the gap
	r1 := actortest.Expect[*messages.HealthReport](dispatcher)
	t1 := recvTime(t, dials, "first notice's probe")
	r2 := actortest.Expect[*messages.HealthReport](dispatcher)
	t2 := recvTime(t, dials, "second notice's probe")
	actortest.Equal(t, "rounds", []uint64{r1.Round, r2.Round}, []uint64{r0.Round + 1, r0.Round + 2})
	checkReport(t, r2, upAt(0, 1))
	if d := t1.Sub(t0); d < gap {
		t.Fatalf("first notice's round started %v after the start-up round's, want at least %v", d, gap)
	}
	if d := t2.Sub(t1); d < gap {
		t.Fatalf("second notice's round started %v after the first one's, want at least %v", d, gap)
	}
	dispatcher.ExpectNothing(2 * gap)
}

// TestNoticeGapDuringRound checks that notices during a round wait for the gap after it ends,
// and make one round.
func TestNoticeGapDuringRound(t *testing.T) {
	const gap = 300 * time.Millisecond
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	slow := serve(t, held(arrived, release, 0, 3))
	dial, dials := dialTimes()
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends:  backends(slow.addr),
		Interval:  never,
		Timeout:   actortest.Wait,
		NoticeGap: gap,
		Dial:      dial,
	})
	recvWithin(t, arrived, "the start-up round's probe")
	for range 10 {
		sys.Root.Send(pid, &messages.HealthCheckDue{})
	}
	close(release)
	r0 := actortest.Expect[*messages.HealthReport](dispatcher)
	t0 := recvTime(t, dials, "start-up probe")
	r1 := actortest.Expect[*messages.HealthReport](dispatcher)
	t1 := recvTime(t, dials, "notices' probe")
	actortest.Equal(t, "round", r1.Round, r0.Round+1)
	checkReport(t, r1, upAt(0, 3))
	if d := t1.Sub(t0); d < gap {
		t.Fatalf("notices' round started %v after the start-up round's, want at least %v", d, gap)
	}
	dispatcher.ExpectNothing(2 * gap)
}

// TestNoticeWaitsForAnyRound checks that a notice waiting for the gap is answered by any round
// that starts before the gap ends (here one asked for with RunHealthRound, which the gap does not
// hold back), and that a stale gap timer message does nothing.
func TestNoticeWaitsForAnyRound(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never, NoticeGap: time.Hour})
	r0 := actortest.Expect[*messages.HealthReport](dispatcher)
	for range 5 {
		sys.Root.Send(pid, &messages.HealthCheckDue{})
	}
	sys.Root.Send(pid, &messages.NoticeGapElapsed{Gen: 0}) // never armed: a cancelled timer's
	dispatcher.ExpectNothing(300 * time.Millisecond)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	r1 := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "round", r1.Round, r0.Round+1)
	dispatcher.ExpectNothing(300 * time.Millisecond)
}

// TestNoGap checks that a negative NoticeGap lets notices start rounds back to back.
func TestNoGap(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never, NoticeGap: -1})
	prev := actortest.Expect[*messages.HealthReport](dispatcher).Round
	for range 20 {
		sys.Root.Send(pid, &messages.HealthCheckDue{})
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		actortest.Equal(t, "round", r.Round, prev+1)
		prev = r.Round
	}
}
