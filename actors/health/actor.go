package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Monitor is the HealthMonitor actor; all its fields are owned by Receive.
type Monitor struct {
	// cfg is the configuration for what follows: the one spawned with, then each
	// *messages.Reconfigure's (see settings.go). A Config is never changed once here: a
	// reconfiguration replaces it, and prober with it. prober is shared read-only with the
	// probe goroutines of the rounds started while it was current.
	cfg    *Config
	log    *slog.Logger
	prober *prober
	timers *scheduler.TimerScheduler
	self   *actor.PID

	// slots is the backend table as this incarnation knows it: Config.Backends at first, then
	// each *messages.SetBackends (see reconfig.go). It never shrinks, and index i always names
	// the same address. Every per-backend slice below has its length.
	slots []messages.BackendSlot
	// checkers holds each backend's Checker, each shared read-only with that backend's probe
	// goroutines (a slot's Checker is replaced, never changed); nil with KindNone. A removed
	// slot's may be stale or nil: it is rebuilt when the slot comes back.
	checkers []Checker

	// The periodic tick. tickGen is the generation of the armed timer; cancelTick is nil when
	// none is armed.
	tickGen    uint64
	cancelTick scheduler.CancelFunc

	// The round. round is the number of the running or last round. While running, results,
	// out and got have the length the table had when the round started: out[i] says a probe
	// of backend i is out and its result wanted, got[i] that results[i] holds it; waiting
	// counts the probes out, and cancelRound abandons them. A table change may drop a probe
	// (out false, got false: its result is ignored). ended is when the last round ended (zero
	// before the first). roundCfg is the Config the running round started with: it judges the
	// round's results (rise and fall), whatever Reconfigure came since.
	round       uint64
	running     bool
	roundCfg    *Config
	started     time.Time
	ended       time.Time
	results     []messages.BackendHealth
	out         []bool
	got         []bool
	waiting     int
	cancelRound context.CancelFunc

	// Rounds asked for and not started yet. wantNow: a *messages.RunHealthRound came while a
	// round ran, and the next starts when it ends. wantNotice: a *messages.HealthCheckDue
	// waits, for the running round to end and then for the notice gap. Starting any round
	// clears both: that round answers every request made before it.
	wantNow    bool
	wantNotice bool

	// The notice gap timer (see gap.go): gapGen is its generation, cancelGap nil when none is
	// armed.
	gapGen    uint64
	cancelGap scheduler.CancelFunc

	backends []backendState // per backend, the verdict across rounds

	// checks counts every probe's result and keeps the last ones, per backend; rounds counts
	// the rounds that ended (StatsRequest).
	checks []messages.BackendChecks
	rounds uint64
}

// Props returns the HealthMonitor's props with cfg, which must not change afterwards. Every
// incarnation starts with cfg; a *messages.Reconfigure changes the settings of the running one.
func Props(cfg *Config) *actor.Props {
	return actor.PropsFromProducer(New(cfg))
}

// New returns a producer for a HealthMonitor with cfg, which must not change afterwards.
func New(cfg *Config) actor.Producer {
	var checkers []Checker
	if cfg.Check.Kind != KindNone {
		checkers = make([]Checker, len(cfg.Backends))
		for i, b := range cfg.Backends {
			chk, err := cfg.Check.For(b.Health)
			if err != nil {
				panic(err) // Validate reports it before anything is spawned
			}
			checkers[i] = chk.checker(b.Addr)
		}
	}
	slots := make([]messages.BackendSlot, len(cfg.Backends))
	for i, b := range cfg.Backends {
		slots[i].Backend = b
	}
	p := &prober{dial: cfg.dial(), timeout: cfg.timeout()}
	return func() actor.Actor {
		return &Monitor{
			cfg:    cfg,
			log:    cfg.logger().With("actor", "health"),
			prober: p,
			// Each incarnation changes its own copies as the table changes.
			slots:    slices.Clone(slots),
			checkers: slices.Clone(checkers),
			// Rounds and timer generations count from a random base per incarnation: the
			// PID and the mailbox survive a restart, so results and timer messages meant
			// for the previous incarnation may still arrive, and must match nothing here.
			tickGen:  rand.Uint64() >> 1,
			gapGen:   rand.Uint64() >> 1,
			round:    rand.Uint64() >> 1,
			backends: make([]backendState, len(cfg.Backends)),
			checks:   make([]messages.BackendChecks, len(cfg.Backends)),
		}
	}
}

// Receive implements actor.Actor.
func (m *Monitor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		m.handleStopping()
	case *messages.HealthTick:
		m.handleTick(ctx, msg)
	case *messages.HealthCheckDue:
		m.handleCheckDue(ctx)
	case *messages.RunHealthRound:
		m.handleRunRound(ctx)
	case *messages.NoticeGapElapsed:
		m.handleGapElapsed(ctx, msg)
	case *messages.ProbeFinished:
		m.handleProbeFinished(ctx, msg)
	case *messages.ProbePanicked:
		m.handleProbePanicked(msg)
	case *messages.SetBackends:
		m.handleSetBackends(ctx, msg)
	case *messages.Reconfigure:
		m.handleReconfigure(ctx, msg)
	case *messages.StatsRequest:
		ctx.Send(msg.ReplyTo, m.stats())
	}
}

// off reports whether health checking is off (KindNone): nothing is probed.
func (m *Monitor) off() bool { return m.cfg.Check.Kind == KindNone }

// handleStarted asks the parent (the lb supervisor) for the current backend table, which
// comes back as a *messages.SetBackends, and meanwhile starts with Config.Backends: the
// start-up round (or, with KindNone, the report of every backend up) runs at once.
func (m *Monitor) handleStarted(ctx actor.Context) {
	m.timers = scheduler.NewTimerScheduler(ctx)
	m.self = ctx.Self()
	if parent := ctx.Parent(); parent != nil {
		ctx.Send(parent, &messages.GetBackends{ReplyTo: m.self})
	}
	if m.off() {
		m.reportAllUp(ctx)
		return
	}
	m.startRound(ctx)
	m.armTick()
}

// handleStopping cancels the timers and abandons the running round: its probes end at once and
// report nothing.
func (m *Monitor) handleStopping() {
	m.stopProbing()
}

// stopProbing cancels the timers, forgets the rounds asked for, and abandons the running round:
// its probes end at once and report nothing, and nothing of it is reported or counted.
func (m *Monitor) stopProbing() {
	if m.cancelTick != nil {
		m.cancelTick()
		m.cancelTick = nil
	}
	m.tickGen++
	m.cancelGapTimer()
	if m.cancelRound != nil {
		m.cancelRound()
		m.cancelRound = nil
	}
	m.running, m.wantNow, m.wantNotice = false, false, false
	m.roundCfg, m.results, m.out, m.got, m.waiting = nil, nil, nil, nil, 0
}

// armTick schedules the next periodic tick. Each tick is a single SendOnce, re-armed when it
// is handled (see the protoactor-go notes in ARCHITECTURE.md on SendRepeatedly).
func (m *Monitor) armTick() {
	m.tickGen++
	m.cancelTick = m.timers.SendOnce(m.cfg.interval(), m.self, &messages.HealthTick{Gen: m.tickGen})
}

// handleTick starts a periodic round, unless one is running: that round is fresh enough, so the
// tick is skipped rather than queued behind it.
func (m *Monitor) handleTick(ctx actor.Context, t *messages.HealthTick) {
	if m.cancelTick == nil || t.Gen != m.tickGen {
		return // from a cancelled timer or a previous incarnation (or health checks are off)
	}
	m.armTick()
	if m.running {
		m.log.Debug("periodic round skipped, a round is running", "round", m.round)
		return
	}
	m.startRound(ctx)
}

// handleCheckDue asks for a round on the Dispatcher's notice; the notice gap may hold it back
// (see noticeWanted).
func (m *Monitor) handleCheckDue(ctx actor.Context) {
	if m.off() {
		return
	}
	m.noticeWanted(ctx)
}

// handleRunRound starts a round now, or, when one is running, one more when it ends; any number
// of requests during a round make that one round. The notice gap does not apply.
func (m *Monitor) handleRunRound(ctx actor.Context) {
	if m.off() {
		return
	}
	m.roundNow(ctx)
}

// roundNow starts a round at once, or, when one is running, right after it.
func (m *Monitor) roundNow(ctx actor.Context) {
	if m.running {
		m.wantNow = true
		return
	}
	m.startRound(ctx)
}

// startRound probes every backend that is not removed concurrently, one goroutine each. It
// answers every round asked for so far, so it clears the requests and disarms the gap timer.
func (m *Monitor) startRound(ctx actor.Context) {
	n := len(m.slots)
	m.round++
	m.running = true
	m.roundCfg = m.cfg
	m.wantNow, m.wantNotice = false, false
	if m.cancelGap != nil {
		m.cancelGapTimer()
	}
	m.started = time.Now()
	m.results = make([]messages.BackendHealth, n)
	m.out = make([]bool, n)
	m.got = make([]bool, n)
	m.waiting = 0
	roundCtx, cancel := context.WithCancel(context.Background())
	m.cancelRound = cancel
	root := ctx.ActorSystem().Root
	for i := range m.slots {
		s := &m.slots[i]
		if s.Removed {
			continue
		}
		m.out[i] = true
		m.waiting++
		pr := probeRun{prober: m.prober, root: root, self: m.self, round: m.round, index: i, addr: s.Backend.Addr, check: m.checkers[i]}
		go pr.run(roundCtx)
	}
	if m.waiting == 0 {
		m.finishRound(ctx)
	}
}

func (m *Monitor) handleProbeFinished(ctx actor.Context, f *messages.ProbeFinished) {
	if !m.running || f.Round != m.round || f.Index < 0 || f.Index >= len(m.out) || !m.out[f.Index] {
		// A result of an earlier round or incarnation, or of a probe a table change dropped
		// (its backend removed or replaced since the round started).
		return
	}
	m.results[f.Index] = f.Health
	m.out[f.Index] = false
	m.got[f.Index] = true
	m.count(f)
	m.waiting--
	if m.waiting == 0 {
		m.finishRound(ctx)
	}
}

// handleProbePanicked re-panics, so the supervisor sees the probe's crash. A panic from a round
// this incarnation did not start belongs to an incarnation that has already been restarted or
// stopped; it is logged, not repeated.
func (m *Monitor) handleProbePanicked(p *messages.ProbePanicked) {
	if !m.running || p.Round != m.round || p.Index < 0 || p.Index >= len(m.slots) {
		m.log.Error("probe of a previous incarnation panicked", "round", p.Round, "panic", fmt.Sprint(p.Value))
		return
	}
	panic(fmt.Sprintf("health: probe of %s panicked: %v\n%s", m.slots[p.Index].Backend.Addr, p.Value, p.Stack))
}

// finishRound takes the round's results into each backend's verdict, sends the report, and
// starts the round asked for while this one ran, if any: at once for a RunHealthRound, after the
// notice gap for a HealthCheckDue.
//
// The report covers the table as it is now: a removed backend's line says so, and one the
// round has no result for keeps its verdict. A backend that has no verdict yet (added or
// back while the round ran: a round right after this one probes it) has no line to give, so
// the report stops just before the first such backend; the Dispatcher keeps what it knew of
// the backends past the end of a report.
func (m *Monitor) finishRound(ctx actor.Context) {
	m.running = false
	m.rounds++
	m.ended = time.Now()
	m.cancelRound()
	m.cancelRound = nil
	rise, fall := m.roundCfg.rise(), m.roundCfg.fall()
	m.roundCfg = nil
	lines := make([]messages.BackendHealth, len(m.slots))
	cut := len(lines)
	for i := range m.slots {
		b := &m.backends[i]
		switch {
		case m.slots[i].Removed:
			lines[i] = removedLine
			continue
		case i < len(m.got) && m.got[i]:
			h := m.results[i]
			if b.observe(h, rise, fall) {
				m.logChange(i)
			} else if !h.Up && b.verdict == isUp {
				m.log.Debug("probe failed, backend still up", "backend", m.slots[i].Backend.Addr,
					"failed", b.streak, "fall", fall, "reason", h.Reason)
			}
		case b.verdict == unknown:
			cut = min(cut, i)
		}
		lines[i] = b.report()
	}
	m.results, m.out, m.got = nil, nil, nil
	report := &messages.HealthReport{Round: m.round, Backends: lines[:cut:cut]}
	m.logRound(report)
	if cut > 0 || len(lines) == 0 {
		m.send(ctx, report)
	} // else nothing to tell yet, and the round asked for (wantNow) follows at once
	switch {
	case m.wantNow:
		m.startRound(ctx)
	case m.wantNotice:
		m.startNoticeRound(ctx)
	}
}

// reportAllUp sends the report of a monitor that probes nothing: every backend up, but the
// removed ones. It is sent at start-up and after each change of the backend table.
func (m *Monitor) reportAllUp(ctx actor.Context) {
	m.round++
	report := &messages.HealthReport{Round: m.round, Backends: make([]messages.BackendHealth, len(m.slots))}
	for i := range m.slots {
		if m.slots[i].Removed {
			report.Backends[i] = removedLine
			continue
		}
		report.Backends[i].Up = true
		if m.backends[i].verdict != isUp {
			m.backends[i].verdict = isUp
			m.logChange(i)
		}
	}
	m.log.Debug("health checks off, every backend up", "backends", len(m.slots))
	m.send(ctx, report)
}

// send sends a report to the Dispatcher, which owns it from then on.
func (m *Monitor) send(ctx actor.Context, r *messages.HealthReport) {
	if m.cfg.Dispatcher != nil {
		ctx.Send(m.cfg.Dispatcher, r)
	}
}

// logChange logs a change of backend i's verdict at Debug: the Dispatcher logs the changes that
// alter routing (up at Info, down at Warn); this is the monitor's own view, for debugging.
func (m *Monitor) logChange(i int) {
	b := &m.backends[i]
	addr := m.slots[i].Backend.Addr
	if b.verdict == isUp {
		if b.passed.Counted {
			m.log.Debug("backend up", "backend", addr, "errors", b.passed.Errors, "entries", b.passed.Entries)
		} else {
			m.log.Debug("backend up", "backend", addr)
		}
		return
	}
	m.log.Debug("backend down", "backend", addr, "reason", b.reason)
}

// logRound logs the round at Debug.
func (m *Monitor) logRound(r *messages.HealthReport) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	up, removed := 0, 0
	for i := range r.Backends {
		switch {
		case r.Backends[i].Up:
			up++
		case r.Backends[i] == removedLine:
			removed++
		}
	}
	m.log.LogAttrs(context.Background(), slog.LevelDebug, "round finished",
		slog.Uint64("round", r.Round), slog.Int("up", up), slog.Int("down", len(r.Backends)-up-removed),
		slog.Int("removed", removed), slog.Int("unreported", len(m.slots)-len(r.Backends)),
		slog.Duration("took", time.Since(m.started)))
}
