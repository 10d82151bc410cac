package health

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// handleReconfigure takes the configuration of a *messages.Reconfigure (a *Config, sent by the
// lb supervisor on a reload) for what follows. Its Backends are ignored (the backend table comes
// by SetBackends); a nil Dispatcher, Logger or Dial keeps the current one. Settings that are not
// valid are logged at Error and change nothing.
//
// What changes:
//
//   - Interval: the periodic tick is re-armed from now;
//   - Timeout: rounds started from now use it (a new prober; the running round keeps its own);
//   - Check: every backend that is not removed gets a new Checker, built from the new Check
//     with its own settings, used from the next round on; verdicts stay. From KindNone to a
//     probing kind the monitor starts probing as at start-up: a round at once, judging every
//     backend afresh (its first probe decides), and the tick armed. To KindNone it stops: the
//     timers are cancelled, the running round is abandoned (it reports nothing) and the report
//     of every backend up is sent, as at start-up;
//   - Rise, Fall: rounds started from now are judged with them; the runs of disagreeing probes
//     so far stay;
//   - NoticeGap: used from now on; a notice waiting for the gap waits for the new one, counted
//     from the end of the last round as before.
//
// A round running when the settings change finishes as it started: with its Checkers, its
// prober and its rise and fall.
func (m *Monitor) handleReconfigure(ctx actor.Context, r *messages.Reconfigure) {
	in, ok := r.Config.(*Config)
	if !ok || in == nil {
		m.log.Error("health settings not valid; the current ones are kept",
			"error", fmt.Sprintf("reconfigure with a %T, want a non-nil *health.Config", r.Config))
		return
	}
	next := *in
	next.Backends = m.cfg.Backends // ignored: the table comes by SetBackends
	next.Check.Status = slices.Clone(next.Check.Status)
	if next.Dispatcher == nil {
		next.Dispatcher = m.cfg.Dispatcher
	}
	if next.Logger == nil {
		next.Logger = m.cfg.Logger
	}
	if next.Dial == nil {
		next.Dial = m.cfg.Dial
	}
	if err := m.validateSettings(&next); err != nil {
		m.log.Error("health settings not valid; the current ones are kept", "error", err)
		return
	}

	old := m.cfg
	m.cfg = &next
	if next.Logger != old.Logger {
		m.log = next.logger().With("actor", "health")
	}
	// The running round's probes keep the prober they started with.
	m.prober = &prober{dial: next.dial(), timeout: next.timeout()}
	changes := settingsChanges(old, &next)
	if len(changes) == 0 {
		m.log.Debug("health settings unchanged")
		return
	}
	m.log.Info("health settings changed", changes...)

	wasOff, off := old.Check.Kind == KindNone, next.Check.Kind == KindNone
	switch {
	case wasOff && off:
		// Nothing is probed either way; the other settings apply if probing starts.
	case off:
		m.stopProbing()
		m.checkers = nil
		m.reportAllUp(ctx)
	case wasOff:
		m.startProbing(ctx)
	default:
		if checkString(old.Check) != checkString(next.Check) {
			m.rebuildCheckers()
		}
		if old.interval() != next.interval() {
			m.rearmTick()
		}
		if old.noticeGap() != next.noticeGap() && m.cancelGap != nil {
			// A notice waits for the gap: it waits for the new one instead (it may be over).
			m.cancelGapTimer()
			m.startNoticeRound(ctx)
		}
	}
}

// validateSettings reports what is wrong with cfg, a configuration for the running monitor:
// what Config.Validate checks but the backends list, which is not used; the check instead
// must hold with the own settings of every backend of the table that is not removed.
func (m *Monitor) validateSettings(cfg *Config) error {
	errs := cfg.timingErrors()
	if checkErrs := cfg.Check.validate(); len(checkErrs) > 0 {
		return errors.Join(append(errs, checkErrs...)...) // each backend would repeat them
	}
	for i := range m.slots {
		s := &m.slots[i]
		if s.Removed {
			continue
		}
		if _, err := cfg.Check.For(s.Backend.Health); err != nil {
			errs = append(errs, fmt.Errorf("health: backend %s: %w", s.Backend.Addr, err))
		}
	}
	return errors.Join(errs...)
}

// startProbing starts health checking after KindNone: every backend is judged afresh (the
// verdicts KindNone gave were no probe's), a round starts at once and the tick is armed.
func (m *Monitor) startProbing(ctx actor.Context) {
	m.checkers = make([]Checker, len(m.slots))
	for i := range m.slots {
		m.backends[i] = backendState{}
		if !m.slots[i].Removed {
			m.checkers[i] = m.checkerFor(m.slots[i].Backend)
		}
	}
	m.startRound(ctx)
	m.armTick()
}

// rebuildCheckers gives every backend that is not removed a new Checker from the current
// Check; a removed one's is dropped (it is rebuilt if the backend comes back). The running
// round's probes keep the Checkers they started with.
func (m *Monitor) rebuildCheckers() {
	for i := range m.slots {
		if m.slots[i].Removed {
			m.checkers[i] = nil
			continue
		}
		m.rebuildChecker(i)
	}
}

// rearmTick cancels the armed tick and arms the next one, an Interval from now. The new
// generation makes a tick the old timer has already sent stale.
func (m *Monitor) rearmTick() {
	if m.cancelTick != nil {
		m.cancelTick()
		m.cancelTick = nil
	}
	m.armTick()
}

// settingsChanges lists, as log attributes, the settings that differ between old and next,
// with their new values (defaults resolved).
func settingsChanges(old, next *Config) []any {
	var attrs []any
	if a, b := checkString(old.Check), checkString(next.Check); a != b {
		attrs = append(attrs, "check", b)
	}
	if old.interval() != next.interval() {
		attrs = append(attrs, "interval", next.interval())
	}
	if old.timeout() != next.timeout() {
		attrs = append(attrs, "timeout", next.timeout())
	}
	if old.rise() != next.rise() {
		attrs = append(attrs, "rise", next.rise())
	}
	if old.fall() != next.fall() {
		attrs = append(attrs, "fall", next.fall())
	}
	if old.noticeGap() != next.noticeGap() {
		attrs = append(attrs, "notice_gap", next.noticeGap())
	}
	return attrs
}

// checkString describes c for the log: its kind, and for the http check its request and what
// passes (defaults resolved, the Host only when set). Two checks that probe alike describe
// alike, and two that do not, differently.
func checkString(c Check) string {
	if c.Kind != KindHTTP {
		return c.Kind.String()
	}
	var b strings.Builder
	b.WriteString("http " + c.method() + " " + c.path() + " status " + c.status().String())
	if c.Body != "" {
		b.WriteString(" body " + strconv.Quote(c.Body))
	}
	if c.Host != "" {
		b.WriteString(" host " + c.Host)
	}
	return b.String()
}
