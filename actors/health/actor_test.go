package health

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// never is an interval long enough that no periodic round runs during a test.
const never = time.Hour

// backends lists addrs as a backend list.
func backends(addrs ...string) []messages.Backend {
	bs := make([]messages.Backend, len(addrs))
	for i, a := range addrs {
		bs[i] = messages.Backend{Addr: a}
	}
	return bs
}

// spawnMonitor spawns a HealthMonitor with cfg in a fresh system, with a probe as its
// Dispatcher; the monitor is stopped when the test ends.
func spawnMonitor(t *testing.T, cfg *Config) (*actor.ActorSystem, *actortest.Probe, *actor.PID) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sys := actortest.NewSystem(t)
	dispatcher := actortest.NewProbe(t, sys)
	cfg.Dispatcher = dispatcher.PID
	pid := sys.Root.Spawn(Props(cfg))
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return sys, dispatcher, pid
}

var (
	upAt = func(errors, entries int64) messages.BackendHealth {
		return messages.BackendHealth{Up: true, Counted: true, Errors: errors, Entries: entries}
	}
	down = messages.BackendHealth{Reason: "any"}
)

// checkReport fails the test unless r's backends are want, comparing down backends by their
// having a reason rather than by its text.
func checkReport(t *testing.T, r *messages.HealthReport, want ...messages.BackendHealth) {
	t.Helper()
	got := make([]messages.BackendHealth, len(r.Backends))
	for i, h := range r.Backends {
		got[i] = h
		if !h.Up {
			if h.Reason == "" {
				t.Fatalf("backend %d: down without a reason in %+v", i, r.Backends)
			}
			got[i].Reason = "any"
		}
	}
	actortest.Equal(t, "report", got, want)
}

func TestStartupRound(t *testing.T) {
	a := serve(t, healthy(2, 100))
	b := serve(t, healthy(0, 7))
	notFound := serve(t, answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
	raw := serve(t, answer("0\n5"))
	quiet := serve(t, silent(nil))
	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(a.addr, deadAddr(t), b.addr, notFound.addr, raw.addr, quiet.addr),
		Interval: never,
		Timeout:  time.Second, // for the silent one; the others answer at once
	})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, upAt(2, 100), down, upAt(0, 7), down, down, down)
	dispatcher.ExpectNothing(500 * time.Millisecond)
}

func TestReportWhenAllDown(t *testing.T) {
	raw := serve(t, answer("a\nb"))
	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(deadAddr(t), raw.addr, deadAddr(t)),
		Interval: never,
	})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, down, down, down)
}

func TestPeriodicRounds(t *testing.T) {
	a := serve(t, healthy(1, 2))
	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(a.addr),
		Interval: 50 * time.Millisecond,
	})
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, upAt(1, 2))
	prev := first.Round
	for range 4 {
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		checkReport(t, r, upAt(1, 2))
		actortest.Equal(t, "round", r.Round, prev+1)
		prev = r.Round
	}
}

func TestRoundOnNotice(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never})
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	for i, msg := range []any{&messages.HealthCheckDue{}, &messages.RunHealthRound{}} {
		sys.Root.Send(pid, msg)
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		actortest.Equal(t, "round", r.Round, first.Round+uint64(i)+1)
		checkReport(t, r, upAt(0, 1))
	}
	dispatcher.ExpectNothing(200 * time.Millisecond)
}

func TestStaleTickIgnored(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never})
	actortest.Expect[*messages.HealthReport](dispatcher)
	// Generation 0 is never armed: it stands for a tick of a cancelled timer.
	sys.Root.Send(pid, &messages.HealthTick{Gen: 0})
	dispatcher.ExpectNothing(300 * time.Millisecond)
}

func TestReportsAreFresh(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never})
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	second := actortest.Expect[*messages.HealthReport](dispatcher)
	if &first.Backends[0] == &second.Backends[0] {
		t.Fatal("two reports share their Backends slice")
	}
}

// held answers like healthy, but only once release is closed; arrived gets a value when a
// request has been read, so the test knows a round is under way.
func held(arrived chan<- struct{}, release <-chan struct{}, errors, entries int64) handler {
	body := strconv.FormatInt(errors, 10) + "\n" + strconv.FormatInt(entries, 10)
	return func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-done:
			return
		}
		_, _ = c.Write([]byte(ok(body)))
	}
}

func TestNoticesDuringRoundCoalesce(t *testing.T) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	slow := serve(t, held(arrived, release, 0, 3))
	fast := serve(t, healthy(4, 5))
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends(fast.addr, slow.addr),
		Interval: never,
		Timeout:  actortest.Wait,
	})
	recvWithin(t, arrived, "the start-up round's probe")
	// The round cannot end before release is closed, so every notice lands during it.
	for range 10 {
		sys.Root.Send(pid, &messages.HealthCheckDue{})
		sys.Root.Send(pid, &messages.RunHealthRound{})
	}
	close(release)
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, upAt(4, 5), upAt(0, 3))
	second := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "round", second.Round, first.Round+1)
	checkReport(t, second, upAt(4, 5), upAt(0, 3))
	dispatcher.ExpectNothing(500 * time.Millisecond)
	recvWithin(t, arrived, "the coalesced round's probe")
	select {
	case <-arrived:
		t.Fatal("a third round probed the backend")
	default:
	}
}

func recvWithin(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(actortest.Wait):
		t.Fatalf("no %s within %v", what, actortest.Wait)
	}
}

func TestStopAbandonsRound(t *testing.T) {
	closed := make(chan struct{})
	quiet := serve(t, silent(closed))
	arrived := make(chan struct{}, 1)
	// A dial hook tells when the probe is under way.
	var d net.Dialer
	sys := actortest.NewSystem(t)
	dispatcher := actortest.NewProbe(t, sys)
	cfg := &Config{
		Backends:   backends(quiet.addr),
		Dispatcher: dispatcher.PID,
		Interval:   never,
		Timeout:    time.Minute,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			arrived <- struct{}{}
			return c, err
		},
	}
	pid := sys.Root.Spawn(Props(cfg))
	recvWithin(t, arrived, "probe dial")
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	// The probe's deadline is a minute away: only the stop can have closed the connection.
	recvWithin(t, closed, "close of the abandoned probe's connection")
	dispatcher.ExpectNothing(200 * time.Millisecond)
	if leaked := actortest.SettleLeaks(actortest.Wait, "/actors/health.probeRun"); len(leaked) > 0 {
		t.Fatalf("goroutines still running after stop:\n\n%s", strings.Join(leaked, "\n\n"))
	}
}

func TestTicksDuringRoundSkipped(t *testing.T) {
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	slow := serve(t, held(arrived, release, 0, 1))
	_, dispatcher, _ := spawnMonitor(t, &Config{
		Backends: backends(slow.addr),
		Interval: 20 * time.Millisecond,
		Timeout:  actortest.Wait,
	})
	recvWithin(t, arrived, "the start-up round's probe")
	// Several ticks fire while the round is held; none may start a second round.
	select {
	case <-arrived:
		t.Fatal("a second round started while the first was running")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, upAt(0, 1))
	// The schedule survived the skipped ticks.
	next := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "round", next.Round, r.Round+1)
}

// TestProbePanicRestartsMonitor checks rule 3 of the house: a panic in a probe goroutine
// reaches the monitor's supervisor, which restarts it, and the new incarnation keeps working.
func TestProbePanicRestartsMonitor(t *testing.T) {
	a := serve(t, healthy(6, 9))
	sys := actortest.NewSystem(t)
	dispatcher := actortest.NewProbe(t, sys)

	events := make(chan *actor.SupervisorEvent, 16)
	sub := sys.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*actor.SupervisorEvent); ok {
			events <- e
		}
	})
	t.Cleanup(func() { sys.EventStream.Unsubscribe(sub) })

	// The first dial panics, later ones dial for real. The token channel is safe to share
	// between probe goroutines.
	panicOnce := make(chan struct{}, 1)
	panicOnce <- struct{}{}
	var d net.Dialer
	cfg := &Config{
		Backends:   backends(a.addr),
		Dispatcher: dispatcher.PID,
		Interval:   never,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case <-panicOnce:
				panic("injected probe panic")
			default:
				return d.DialContext(ctx, network, addr)
			}
		},
	}

	children := make(chan *actor.PID, 1)
	strategy := actor.NewOneForOneStrategy(3, time.Minute, func(any) actor.Directive { return actor.RestartDirective })
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			children <- ctx.Spawn(Props(cfg))
		}
	}, actor.WithSupervisor(strategy)))
	t.Cleanup(func() { _ = sys.Root.StopFuture(parent).Wait() })
	var monitor *actor.PID
	select {
	case monitor = <-children:
	case <-time.After(actortest.Wait):
		t.Fatal("parent did not spawn the monitor")
	}

	select {
	case e := <-events:
		actortest.Equal(t, "restarted child", e.Child.Id, monitor.Id)
		actortest.Equal(t, "directive", e.Directive, actor.RestartDirective)
		if reason := fmt.Sprint(e.Reason); !strings.Contains(reason, "injected probe panic") {
			t.Fatalf("got failure reason %q, want the probe's panic", reason)
		}
	case <-time.After(actortest.Wait):
		t.Fatal("no supervisor event within the deadline")
	}

	// The crashed round sent nothing; the new incarnation's start-up round reports.
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, upAt(6, 9))
	sys.Root.Send(monitor, &messages.RunHealthRound{})
	next := actortest.Expect[*messages.HealthReport](dispatcher)
	actortest.Equal(t, "round", next.Round, r.Round+1)
	checkReport(t, next, upAt(6, 9))
	select {
	case e := <-events:
		t.Fatalf("unexpected second supervisor event %+v", e)
	default:
	}
}

// TestCheckNone checks that with health checks off the monitor sends one report, every backend
// up and nothing counted, probes nothing, and ignores whatever asks for a round.
func TestCheckNone(t *testing.T) {
	dialed := make(chan string, 16)
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends("127.0.0.1:1", "127.0.0.1:2"),
		Check:    Check{Kind: KindNone},
		Interval: 10 * time.Millisecond, // would tick many times during the test
		Dial: func(_ context.Context, _, addr string) (net.Conn, error) {
			dialed <- addr
			return nil, fmt.Errorf("no dial expected")
		},
	})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, messages.BackendHealth{Up: true}, messages.BackendHealth{Up: true})
	sys.Root.Send(pid, &messages.RunHealthRound{})
	sys.Root.Send(pid, &messages.HealthCheckDue{})
	sys.Root.Send(pid, &messages.HealthTick{Gen: 0})
	dispatcher.ExpectNothing(300 * time.Millisecond)
	select {
	case addr := <-dialed:
		t.Fatalf("probed %s with health checks off", addr)
	default:
	}
}
