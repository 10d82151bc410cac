package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/loadbalancer/loadbalancer/messages"
)

// seen is what the monitor last knew of a backend, to log transitions.
type seen uint8

const (
	seenNothing seen = iota // not probed yet by this incarnation
	seenUp
	seenDown
)

// Monitor is the HealthMonitor actor; all its fields are owned by Receive.
type Monitor struct {
	cfg      *Config
	log      *slog.Logger
	prober   *prober
	requests [][]byte // per backend, shared read-only with probe goroutines
	timers   *scheduler.TimerScheduler
	self     *actor.PID

	// The periodic tick. tickGen is the generation of the armed timer; cancelTick is nil when
	// none is armed.
	tickGen    uint64
	cancelTick scheduler.CancelFunc

	// The round. round is the number of the running or last round; while running, results
	// and reported fill in as probes finish, waiting counts the probes still out, and
	// cancelRound abandons them. pending is a round asked for while one was running.
	round       uint64
	running     bool
	pending     bool
	started     time.Time
	results     []messages.BackendHealth
	reported    []bool
	waiting     int
	cancelRound context.CancelFunc

	last []seen // per backend
}

// Props returns the HealthMonitor's props with cfg, which must not change afterwards.
func Props(cfg *Config) *actor.Props {
	return actor.PropsFromProducer(New(cfg))
}

// New returns a producer for a HealthMonitor with cfg, which must not change afterwards.
func New(cfg *Config) actor.Producer {
	requests := make([][]byte, len(cfg.Backends))
	for i, b := range cfg.Backends {
		requests[i] = healthRequest(b.Addr)
	}
	p := &prober{dial: cfg.dial(), timeout: cfg.timeout(), parser: Classic{}}
	return func() actor.Actor {
		return &Monitor{
			cfg:      cfg,
			log:      cfg.logger().With("actor", "health"),
			prober:   p,
			requests: requests,
			// Rounds and timer generations count from a random base per incarnation: the
			// PID and the mailbox survive a restart, so results and ticks meant for the
			// previous incarnation may still arrive, and must match nothing here.
			tickGen: rand.Uint64() >> 1,
			round:   rand.Uint64() >> 1,
			last:    make([]seen, len(cfg.Backends)),
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
	case *messages.HealthCheckDue, *messages.RunHealthRound:
		m.handleRoundWanted(ctx)
	case *messages.ProbeFinished:
		m.handleProbeFinished(ctx, msg)
	case *messages.ProbePanicked:
		m.handleProbePanicked(msg)
	}
}

func (m *Monitor) handleStarted(ctx actor.Context) {
	m.timers = scheduler.NewTimerScheduler(ctx)
	m.self = ctx.Self()
	m.startRound(ctx)
	m.armTick()
}

// handleStopping cancels the timer and abandons the running round: its probes end at once and
// report nothing.
func (m *Monitor) handleStopping() {
	if m.cancelTick != nil {
		m.cancelTick()
		m.cancelTick = nil
	}
	m.tickGen++
	if m.cancelRound != nil {
		m.cancelRound()
		m.cancelRound = nil
	}
	m.running, m.pending = false, false
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
		return // from a cancelled timer or a previous incarnation
	}
	m.armTick()
	if m.running {
		m.log.Debug("periodic round skipped, a round is running", "round", m.round)
		return
	}
	m.startRound(ctx)
}

// handleRoundWanted starts a round now, or, when one is running, one more when it ends; any
// number of notices during a round make that one round.
func (m *Monitor) handleRoundWanted(ctx actor.Context) {
	if m.running {
		m.pending = true
		return
	}
	m.startRound(ctx)
}

// startRound probes every backend concurrently, one goroutine each.
func (m *Monitor) startRound(ctx actor.Context) {
	n := len(m.cfg.Backends)
	m.round++
	m.running = true
	m.started = time.Now()
	m.results = make([]messages.BackendHealth, n) // a fresh slice: the last report owns the old one
	m.reported = make([]bool, n)
	m.waiting = n
	roundCtx, cancel := context.WithCancel(context.Background())
	m.cancelRound = cancel
	root := ctx.ActorSystem().Root
	for i, b := range m.cfg.Backends {
		pr := probeRun{prober: m.prober, root: root, self: m.self, round: m.round, index: i, addr: b.Addr, req: m.requests[i]}
		go pr.run(roundCtx)
	}
	if n == 0 {
		m.finishRound(ctx)
	}
}

func (m *Monitor) handleProbeFinished(ctx actor.Context, f *messages.ProbeFinished) {
	if !m.running || f.Round != m.round || f.Index < 0 || f.Index >= len(m.results) || m.reported[f.Index] {
		return // a result of an earlier round or incarnation
	}
	m.results[f.Index] = f.Health
	m.reported[f.Index] = true
	m.waiting--
	if m.waiting == 0 {
		m.finishRound(ctx)
	}
}

// handleProbePanicked re-panics, so the supervisor sees the probe's crash. A panic from a round
// this incarnation did not start belongs to an incarnation that has already been restarted or
// stopped; it is logged, not repeated.
func (m *Monitor) handleProbePanicked(p *messages.ProbePanicked) {
	if !m.running || p.Round != m.round || p.Index < 0 || p.Index >= len(m.cfg.Backends) {
		m.log.Error("probe of a previous incarnation panicked", "round", p.Round, "panic", fmt.Sprint(p.Value))
		return
	}
	panic(fmt.Sprintf("health: probe of %s panicked: %v\n%s", m.cfg.Backends[p.Index].Addr, p.Value, p.Stack))
}

// finishRound sends the round's report, logs transitions, and starts the round asked for while
// this one ran, if any.
func (m *Monitor) finishRound(ctx actor.Context) {
	report := &messages.HealthReport{Round: m.round, Backends: m.results}
	m.running = false
	m.results, m.reported = nil, nil // the report owns the results now
	m.cancelRound()
	m.cancelRound = nil
	m.logRound(report)
	if m.cfg.Dispatcher != nil {
		ctx.Send(m.cfg.Dispatcher, report)
	}
	if m.pending {
		m.pending = false
		m.startRound(ctx)
	}
}

// logRound logs each backend's transitions and the round itself at Debug (the Dispatcher logs
// the transitions that change routing at Info).
func (m *Monitor) logRound(r *messages.HealthReport) {
	up := 0
	for i := range r.Backends {
		h := &r.Backends[i]
		addr := m.cfg.Backends[i].Addr
		now := seenDown
		if h.Up {
			now = seenUp
			up++
		}
		if now == m.last[i] {
			continue
		}
		m.last[i] = now
		// The Dispatcher logs the transitions that change routing at Info; this is the
		// probe's own view, for debugging.
		if h.Up {
			m.log.Debug("probe passed", "backend", addr, "errors", h.Errors, "entries", h.Entries)
		} else {
			m.log.Debug("probe failed", "backend", addr, "reason", h.Reason)
		}
	}
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		m.log.LogAttrs(context.Background(), slog.LevelDebug, "round finished",
			slog.Uint64("round", r.Round), slog.Int("up", up), slog.Int("down", len(r.Backends)-up),
			slog.Duration("took", time.Since(m.started)))
	}
}
