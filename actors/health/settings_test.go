package health

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// logRecord is one record a logRecorder got: its level, message and attributes (as text).
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logRecorder is a slog.Handler that passes every record on a channel (dropping records when
// it is full).
type logRecorder struct {
	c     chan logRecord
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{c: make(chan logRecord, 4096)} }

func (h *logRecorder) logger() *slog.Logger { return slog.New(h) }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	select {
	case h.c <- rec:
	default:
	}
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{c: h.c, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// expect waits for a record with level and msg, skipping the others, and returns it.
func (h *logRecorder) expect(t *testing.T, level slog.Level, msg string) logRecord {
	t.Helper()
	deadline := time.After(actortest.Wait)
	for {
		select {
		case rec := <-h.c:
			if rec.level == level && rec.msg == msg {
				return rec
			}
		case <-deadline:
			t.Fatalf("no %v log %q within %v", level, msg, actortest.Wait)
		}
	}
}

// An interval changed by Reconfigure takes effect at once: with an hour between rounds at
// first, reports start coming at the new, short interval. The Backends of the new configuration
// are ignored, and its nil Dispatcher keeps the current one.
func TestReconfigureInterval(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr), Interval: never})
	first := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, first, upAt(0, 1))

	logs := newLogRecorder()
	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{
		Backends: backends("127.0.0.1:1", "127.0.0.1:2"),
		Interval: 20 * time.Millisecond,
		Logger:   logs.logger(),
	}})
	rec := logs.expect(t, slog.LevelInfo, "health settings changed")
	actortest.Equal(t, "changed interval", rec.attrs["interval"], "20ms")
	if _, ok := rec.attrs["check"]; ok {
		t.Fatalf("the check is logged as changed: %v", rec.attrs)
	}

	prev := first.Round
	for range 5 {
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		actortest.Equal(t, "round", r.Round, prev+1)
		checkReport(t, r, upAt(0, 1))
		prev = r.Round
	}
	actortest.Equal(t, "stats interval", healthStats(t, sys, pid).Interval, 20*time.Millisecond)
}

// A check changed from tcp to http, with a path the backend answers 404, takes the backend down
// at the next round; the change itself starts no round.
func TestReconfigureCheckKind(t *testing.T) {
	srv := serve(t, byPath("/alive"))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(srv.addr), Interval: never,
		Check: Check{Kind: KindTCP}})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), messages.BackendHealth{Up: true})

	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{Interval: never,
		Check: Check{Kind: KindHTTP, Path: "/missing"}}})
	dispatcher.ExpectNothing(200 * time.Millisecond)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	if h := r.Backends[0]; h.Up || !strings.Contains(h.Reason, "status 404") {
		t.Fatalf("backend after the switch to http /missing: %+v, want down on status 404", h)
	}
	actortest.Equal(t, "stats kind", healthStats(t, sys, pid).Kind, "http")
}

// A round running when the settings change finishes with the check it started with; the next
// round uses the new one.
func TestReconfigureDuringRound(t *testing.T) {
	arrived := make(chan struct{}, 16)
	gate := make(chan struct{}, 16)
	srv := serve(t, gated(arrived, gate, 3))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(srv.addr), Interval: never,
		Timeout: actortest.Wait})
	recvWithin(t, arrived, "the start-up round's probe")

	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{Interval: never, Timeout: actortest.Wait,
		Check: Check{Kind: KindHTTP}}})
	// The reply to a later message says the Reconfigure was handled, the round still held.
	actortest.Equal(t, "stats kind", healthStats(t, sys, pid).Kind, "http")
	gate <- struct{}{}
	// Counted: the classic check judged it.
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), upAt(0, 3))

	gate <- struct{}{}
	sys.Root.Send(pid, &messages.RunHealthRound{})
	recvWithin(t, arrived, "the next round's probe")
	// Not counted: the http check passed it on its 200.
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), messages.BackendHealth{Up: true})
}

// Switching to KindNone abandons the running round, sends the report of every backend up at
// once, and stops probing: no tick, notice or RunHealthRound reaches a backend afterwards.
func TestReconfigureToNone(t *testing.T) {
	arrived := make(chan struct{}, 64)
	gate := make(chan struct{}) // opened after the switch: the start-up round runs until then
	srv := serve(t, gated(arrived, gate, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{
		Backends: backends(srv.addr, deadAddr(t)),
		Interval: 20 * time.Millisecond, // would tick many times during the test
		Timeout:  actortest.Wait,
	})
	recvWithin(t, arrived, "the start-up round's probe")

	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{Check: Check{Kind: KindNone},
		Interval: 20 * time.Millisecond}})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	up := messages.BackendHealth{Up: true}
	actortest.Equal(t, "report", r.Backends, []messages.BackendHealth{up, up})

	// The abandoned round's probe was interrupted: the answer finds no one, and the round
	// reports nothing. Any probe from now on would pass the gate and report.
	close(gate)
	sys.Root.Send(pid, &messages.RunHealthRound{})
	sys.Root.Send(pid, &messages.HealthCheckDue{})
	dispatcher.ExpectNothing(300 * time.Millisecond)
	noConnection(t, arrived, "a backend with health checks off")
	actortest.Equal(t, "stats kind", healthStats(t, sys, pid).Kind, "none")
}

// Switching from KindNone to a probing kind starts probing as at start-up: a round at once that
// judges every backend afresh (a dead one's first probe takes it down, whatever Fall says), and
// the periodic rounds. Switching back stops them again.
func TestReconfigureFromNone(t *testing.T) {
	a := serve(t, healthy(0, 1))
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: backends(a.addr, deadAddr(t)),
		Check: Check{Kind: KindNone}, Interval: never})
	up := messages.BackendHealth{Up: true}
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), up, up)

	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{Interval: 20 * time.Millisecond, Fall: 3}})
	r := actortest.Expect[*messages.HealthReport](dispatcher)
	checkReport(t, r, upAt(0, 1), down)
	for range 3 {
		next := actortest.Expect[*messages.HealthReport](dispatcher)
		actortest.Equal(t, "round", next.Round, r.Round+1)
		checkReport(t, next, upAt(0, 1), down)
		r = next
	}

	// Back to none, whether or not a round runs: the reports of the rounds before it, then
	// every backend up, and nothing after.
	sys.Root.Send(pid, &messages.Reconfigure{Config: &Config{Check: Check{Kind: KindNone}}})
	for {
		r := actortest.Expect[*messages.HealthReport](dispatcher)
		if slices.Equal(r.Backends, []messages.BackendHealth{up, up}) {
			break
		}
		checkReport(t, r, upAt(0, 1), down)
	}
	dispatcher.ExpectNothing(300 * time.Millisecond)
}

// Settings that are not valid are logged at Error and change nothing: the check, the backend's
// own settings with it, and the interval stay.
func TestReconfigureInvalidKept(t *testing.T) {
	alive := serve(t, byPath("/alive"))
	bs := backends(alive.addr)
	bs[0].Health.Path = "/alive"
	logs := newLogRecorder()
	sys, dispatcher, pid := spawnMonitor(t, &Config{Backends: bs, Interval: never,
		Check: Check{Kind: KindHTTP}, Logger: logs.logger()})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), messages.BackendHealth{Up: true})

	fast := 20 * time.Millisecond // would start periodic rounds, were it taken
	httpCheck := Check{Kind: KindHTTP}
	for i, cfg := range []any{
		&Config{Interval: fast, Check: Check{Kind: KindTCP}},  // the backend's path is for http only
		&Config{Interval: fast, Check: Check{Kind: KindNone}}, // the same
		&Config{Interval: fast, Check: Check{Kind: KindHTTP, Method: "POST"}},
		&Config{Interval: fast, Check: Check{Kind: KindTCP, Host: "x"}},
		&Config{Interval: fast, Check: Check{Kind: Kind(42)}},
		&Config{Interval: fast, Check: httpCheck, Timeout: -time.Second},
		&Config{Interval: fast, Check: httpCheck, Rise: -1},
		&Config{Interval: fast, Check: httpCheck, Fall: -1},
		&Config{Interval: -time.Second, Check: httpCheck},
		Config{Interval: fast, Check: httpCheck}, // not a pointer
		(*Config)(nil),
		nil,
	} {
		sys.Root.Send(pid, &messages.Reconfigure{Config: cfg})
		rec := logs.expect(t, slog.LevelError, "health settings not valid; the current ones are kept")
		if rec.attrs["error"] == "" {
			t.Fatalf("config %d: logged without the error: %v", i, rec.attrs)
		}
	}
	dispatcher.ExpectNothing(300 * time.Millisecond) // still an hour between rounds
	sys.Root.Send(pid, &messages.RunHealthRound{})
	checkReport(t, actortest.Expect[*messages.HealthReport](dispatcher), messages.BackendHealth{Up: true})
	s := healthStats(t, sys, pid)
	actortest.Equal(t, "stats kind", s.Kind, "http")
	actortest.Equal(t, "stats interval", s.Interval, never)
}
