package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// inspect runs fn inside the Dispatcher's Receive, through a wrapper actor: tests that check the
// Dispatcher's invariants read its state where only its Receive may.
type inspect struct {
	fn   func(*Dispatcher)
	done chan struct{}
}

type wrapped struct{ d *Dispatcher }

func (w *wrapped) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*inspect); ok {
		m.fn(w.d)
		close(m.done)
		return
	}
	w.d.Receive(ctx)
}

// newWrapped is newFixture with the Dispatcher inside a wrapper that also takes inspect.
func newWrapped(t *testing.T, cfg Config, nBackends int) *fixture {
	t.Helper()
	return newFixtureOf(t, cfg, nBackends, func(prod actor.Producer) actor.Producer {
		return func() actor.Actor { return &wrapped{d: prod().(*Dispatcher)} }
	})
}

func (f *fixture) in(fn func(*Dispatcher)) {
	m := &inspect{fn: fn, done: make(chan struct{})}
	f.sys.Root.Send(f.d, m)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		f.t.Fatal("inspect timed out")
	}
}

// A live waiter for a full backend at the head; fresh picks behind it are served out of order,
// each leaving a dead entry behind the head: the queue fills with dead entries and refuses
// picks while slots and a backend are free.
func TestWaitersServedOutOfOrderDoNotFillTheQueue(t *testing.T) {
	f := newWrapped(t, Config{N: 100, R: 1000, MaxPerBackend: 1, MaxQueue: 5, Eject: EjectConfig{MaxPercent: -1}}, 2)
	f.report(up(0, 0), up(10, 0))
	a, b, c := f.client(), f.client(), f.client()
	a.pick(messages.Release{}, false)
	a.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(1)
	a.pick(messages.Release{Lease: a.lease, Outcome: messages.OutcomeBackendFailed}, true)
	a.probe.ExpectNothing(50 * time.Millisecond)
	for i := 0; i < 10; i++ {
		c.pick(messages.Release{}, false)
		r := c.probe.Next()
		var ql, inUse int
		f.in(func(d *Dispatcher) { ql, inUse = d.queue.len(), d.inUse })
		switch m := r.Msg.(type) {
		case *messages.BackendPicked:
			c.lease = m.Lease
			t.Logf("pick %d: backend %d; queue len now %d, inUse %d", i, m.Lease.Backend, ql, inUse)
			c.release(messages.OutcomeOK)
		case *messages.NoBackend:
			t.Fatalf("pick %d: NoBackend %v with queue len %d (1 live), inUse %d of 100, backend 0 idle", i, m.Reason, ql, inUse)
		}
	}
}

// The overdue count survives a stall ejection: after it ends, a lone request just past its
// check is judged stalled at once.
func TestOverdueCountEndsWithItsLeases(t *testing.T) {
	f := newWrapped(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond,
		Eject: EjectConfig{BaseTime: 100 * time.Millisecond}}, 3)
	f.report(up(0, 0), up(50, 0), up(50, 0))
	f.timed()
	a, b := f.stuck()
	time.Sleep(30 * time.Millisecond)
	b.checkLease()
	if v := a.checkLease(); !v.Abandon {
		t.Fatalf("want stall")
	}
	a.release(messages.OutcomeAbandoned)
	b.release(messages.OutcomeAbandoned)
	time.Sleep(150 * time.Millisecond) // the ejection is over
	var ov int
	f.in(func(d *Dispatcher) { ov = d.backends[0].overdue })
	if ov != 0 {
		t.Fatalf("overdue after its leases ended: got %d, want 0", ov)
	}
	f.report(up(0, 0), up(50, 0), up(50, 0))
	c := f.client()
	c.pick(messages.Release{}, false)
	c.expectPicked(0)
	time.Sleep(25 * time.Millisecond) // just past its check (20ms), far below 4x
	if v := c.checkLease(); v.Abandon {
		t.Fatalf("a lone request 25ms into a 20ms check after the ejection ended: Abandon (re-ejected)")
	}
}

// Two slow requests far apart on a quiet backend, the first ending without an answer (client
// gone, response timeout): the second alone makes a stall.
func TestOverdueLeaseThatEndedUnansweredIsForgotten(t *testing.T) {
	for _, o := range []messages.Outcome{messages.OutcomeClientFailed, messages.OutcomeTimeout, messages.OutcomeBackendFailed} {
		f := newWrapped(t, Config{N: 10, R: 1000, StallAfter: 20 * time.Millisecond, Eject: EjectConfig{MaxPercent: -1}}, 2)
		f.report(up(0, 0), up(50, 0))
		f.timed()
		r1 := f.client()
		r1.pick(messages.Release{}, false)
		r1.expectPicked(0)
		time.Sleep(30 * time.Millisecond)
		if v := r1.checkLease(); v.Abandon {
			t.Fatal("r1 alone abandoned")
		}
		r1.release(o)
		time.Sleep(200 * time.Millisecond) // "minutes later"; nothing else on backend 0
		f.report(up(0, 0), up(50, 0))
		r2 := f.client()
		r2.pick(messages.Release{}, false)
		r2.expectPicked(0)
		time.Sleep(30 * time.Millisecond)
		if v := r2.checkLease(); v.Abandon {
			t.Errorf("outcome %v of r1: r2, alone and 30ms into a 20ms check, is called a stall", o)
		}
	}
}

type rclient struct {
	probe       *actortest.Probe
	lease       messages.Lease
	outstanding bool
}

// A random walk of picks, retries, releases, forgets and health reports, checking after every
// step that each pick is answered exactly once (or waits, live, exactly once in the queue).
func TestQueueInvariantsUnderRandomOperations(t *testing.T) {
	var lastOp string
	for seed := uint64(1); seed <= 6; seed++ {
		rng := newRng(seed)
		f := newWrapped(t, Config{N: 4, R: 1 << 30, MaxPerBackend: 2, MaxQueue: 6, QueueTimeout: 40 * time.Millisecond,
			Eject: EjectConfig{MaxPercent: -1}, Policy: PolicyConfig{Name: "least-request"}}, 3)
		f.report(up(0, 0), up(0, 0), up(0, 0))
		cl := make([]*rclient, 8)
		for i := range cl {
			cl[i] = &rclient{probe: actortest.NewProbe(t, f.sys)}
		}
		answer := func(c *rclient, m any) {
			switch m := m.(type) {
			case *messages.BackendPicked:
				c.lease = m.Lease
			case *messages.NoBackend:
				c.lease = messages.Lease{}
			default:
				t.Fatalf("seed %d: unexpected %T", seed, m)
			}
			c.outstanding = false
		}
		check := func(step int) {
			waiting := map[*actor.PID]bool{}
			f.in(func(d *Dispatcher) {
				liveCount := map[*holder]int{}
				for i := 0; i < d.queue.len(); i++ {
					w := d.queue.at(i)
					if w.live() {
						liveCount[w.holder]++
					}
				}
				leases, inflight := 0, 0
				for _, h := range d.holders {
					if h.waiting && liveCount[h] != 1 || !h.waiting && liveCount[h] != 0 {
						t.Errorf("seed %d step %d: holder waiting=%v with %d live entries", seed, step, h.waiting, liveCount[h])
					}
					if h.lease.ID != 0 {
						leases++
					}
					waiting[h.pid] = h.waiting
				}
				for i := range d.cands {
					inflight += d.cands[i].InFlight
				}
				if d.inUse != leases || inflight != leases {
					t.Errorf("seed %d step %d: inUse %d, in flight %d, leases %d", seed, step, d.inUse, inflight, leases)
				}
				if d.inUse < d.cfg.n() {
					for i := 0; i < d.queue.len(); i++ {
						w := d.queue.at(i)
						if w.live() && d.availableUntried(w.holder) {
							t.Errorf("seed %d step %d (%s): a live waiter at %d of %d could be served; tried %v; inUse %d; cands %+v", seed, step, lastOp, i, d.queue.len(), w.holder.tried, d.inUse, d.cands)
						}
					}
				}
			})
			for _, c := range cl {
				if !c.outstanding {
					select {
					case r := <-c.probe.C:
						t.Fatalf("seed %d step %d: an extra reply %T %+v", seed, step, r.Msg, r.Msg)
					default:
					}
					continue
				}
				if !waiting[c.probe.PID] {
					answer(c, c.probe.Next().Msg) // must have been answered
				}
			}
		}
		for step := 0; step < 800; step++ {
			lastOp = ""
			i := rng.intn(len(cl))
			c := cl[i]
			switch op := rng.intn(20); {
			case op < 9 && !c.outstanding:
				rel := messages.Release{}
				retry := false
				if c.lease.ID != 0 && rng.intn(2) == 0 {
					rel = messages.Release{Lease: c.lease, Outcome: []messages.Outcome{messages.OutcomeOK, messages.OutcomeConnectFailed, messages.OutcomeBackendFailed}[rng.intn(3)]}
					retry = rel.Outcome != messages.OutcomeOK && rng.intn(2) == 0
				}
				c.outstanding = true
				lastOp = fmt.Sprintf("client %d pick rel %+v retry %v", i, rel, retry)
				f.sys.Root.Send(f.d, &messages.PickBackend{Holder: c.probe.PID, ReplyTo: c.probe.PID, Release: rel, Retry: retry})
			case op < 15 && !c.outstanding && c.lease.ID != 0:
				lastOp = fmt.Sprintf("client %d release %+v", i, c.lease)
				f.sys.Root.Send(f.d, &messages.ReleaseLease{Holder: c.probe.PID, Release: messages.Release{Lease: c.lease, Outcome: messages.OutcomeOK}})
				c.lease = messages.Lease{}
			case op == 16:
				f.sys.Root.Send(f.d, &messages.ForgetHolder{Holder: c.probe.PID})
				f.in(func(*Dispatcher) {})
				cl[i] = &rclient{probe: actortest.NewProbe(t, f.sys)} // a new connection
				continue
			case op == 17:
				hs := make([]messages.BackendHealth, 3)
				for k := range hs {
					if rng.intn(4) == 0 {
						hs[k] = down
					} else {
						hs[k] = up(0, 0)
					}
				}
				lastOp = fmt.Sprintf("report %+v", hs)
				f.report(hs...)
			case op == 18:
				lastOp = "sleep"
				time.Sleep(time.Duration(rng.intn(50)) * time.Millisecond)
			}
			check(step)
		}
		time.Sleep(60 * time.Millisecond)
		check(-1)
		for _, c := range cl {
			if c.outstanding {
				t.Errorf("seed %d: a pick never answered", seed)
			}
		}
	}
}

type rngT struct{ s uint64 }

func newRng(seed uint64) *rngT { return &rngT{s: seed*0x9e3779b97f4a7c15 + 1} }
func (r *rngT) intn(n int) int {
	r.s ^= r.s << 13
	r.s ^= r.s >> 7
	r.s ^= r.s << 17
	return int(r.s % uint64(n))
}

// A retry that gives back its slot on one backend and takes another leaves a waiter for the
// first one waiting, though it has room now.
func TestRetryThatFreesRoomServesTheQueue(t *testing.T) {
	f := newWrapped(t, Config{N: 10, R: 1000, MaxPerBackend: 1, QueueTimeout: 500 * time.Millisecond,
		Eject: EjectConfig{MaxPercent: -1}, Policy: PolicyConfig{Name: "least-request"}}, 3)
	w, b, r := f.client(), f.client(), f.client()
	w.pick(messages.Release{}, false)
	w.expectPicked(0)
	b.pick(messages.Release{}, false)
	b.expectPicked(1)
	r.pick(messages.Release{}, false)
	r.expectPicked(2)
	// w's request broke on 0: 1 and 2 are full, it waits.
	w.pick(messages.Release{Lease: w.lease, Outcome: messages.OutcomeBackendFailed}, true)
	w.probe.ExpectNothing(30 * time.Millisecond)
	// r's request broke on 2: it goes to 0, which has room; 2 has room now.
	r.pick(messages.Release{Lease: r.lease, Outcome: messages.OutcomeBackendFailed}, true)
	r.expectPicked(0)
	start := time.Now()
	m := w.probe.Next()
	t.Logf("w got %T %+v after %v", m.Msg, m.Msg, time.Since(start).Round(time.Millisecond))
	if _, ok := m.Msg.(*messages.BackendPicked); !ok {
		t.Fatalf("w waited out its queue deadline while backend 2 had room")
	}
}

func TestOverdueAsksSoonOnlyWhenAStallCanFollow(t *testing.T) {
	// Asking again sooner than the stall time only helps when a second overdue request could
	// make a stall: not for a backend nobody has timed, nor for the last usable one.
	for _, tt := range []struct {
		name     string
		backends int
		timed    bool
	}{{"never timed", 2, false}, {"last backend", 1, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newWrapped(t, Config{N: 10, R: 1000, StallAfter: 40 * time.Millisecond}, tt.backends)
			if tt.timed {
				f.timed()
			}
			a := f.client()
			a.pick(messages.Release{}, false)
			a.expectPicked(0)
			time.Sleep(50 * time.Millisecond)
			for i := 0; i < 2; i++ {
				if v := a.checkLease(); v.Abandon || v.CheckAfter != 40*time.Millisecond {
					t.Fatalf("check %d: got %+v, want keep waiting and ask again after the whole 40ms", i, v)
				}
			}
		})
	}
}
