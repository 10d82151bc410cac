package dispatcher

import (
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// slowStartFloor is the share of its weight a backend gets as slow start begins.
const slowStartFloor = 0.1

func (d *Dispatcher) handleHealthReport(ctx actor.Context, m *messages.HealthReport) {
	now := time.Now()
	for i := range d.backends {
		if i >= len(m.Backends) {
			break
		}
		r := &m.Backends[i]
		be := &d.backends[i]
		c := &d.cands[i]
		if be.removed || r.Removed {
			// Draining: it takes no request whatever its health. Or the report was built while
			// the backend was removed, and it is back since: no news of it.
			continue
		}
		wasUp, wasProbed := c.Up, be.probed
		be.probed, be.pending = true, false
		if r.Up {
			c.Up, be.reason = true, ""
			if r.Counted {
				c.Entries, c.Errors = r.Entries, r.Errors
			}
			// Its latest probe passed (an up verdict within the fall threshold carries the
			// failed probe's reason), was sent after the stall began, and got an HTTP answer
			// (a TCP connect succeeds on a frozen server: the kernel accepts for it).
			if be.stallEjected && d.cfg.HealthAnswers && r.Reason == "" && now.Sub(be.ejectedAt) > d.cfg.HealthTimeout {
				d.unEject(i, "passed a health check", now)
			}
			if !wasUp {
				if wasProbed {
					d.startRamp(i, now)
				}
			}
			d.refresh(i)
			if !wasUp || !wasProbed {
				be.since = now
				d.log.Info("backend up", "backend", be.addr, "entries", c.Entries, "errors", c.Errors)
			}
			continue
		}
		be.reason = r.Reason
		c.Up = false
		d.stopRamp(i)
		d.refresh(i)
		if wasUp || !wasProbed {
			be.since = now
			d.log.Warn("backend down", "backend", be.addr, "reason", r.Reason)
		}
	}
	d.refreshBackups()
	if !d.ready {
		d.logFirstRound(m)
		d.becomeReady()
	}
	d.serveQueue(ctx)
}

// logFirstRound says after the first health round how many backends are up, and warns when
// none is, with the reason of each and the hint of the configuration.
func (d *Dispatcher) logFirstRound(m *messages.HealthReport) {
	up := 0
	for i := range m.Backends {
		if m.Backends[i].Up {
			up++
		}
	}
	if up > 0 {
		d.log.Info("first health round done", "up", up, "backends", len(d.backends))
		return
	}
	var why strings.Builder
	for i := range m.Backends {
		if i > 0 {
			why.WriteString("; ")
		}
		why.WriteString(d.backends[i].addr + ": " + m.Backends[i].Reason)
	}
	args := []any{"backends", len(d.backends), "why", why.String()}
	if d.cfg.DownHint != "" {
		args = append(args, "hint", d.cfg.DownHint)
	}
	d.log.Warn("NO BACKEND IS UP after the first health round; every request gets the error until one comes up", args...)
}

// handleStartupDue ends the wait for the first health report: picks are served with what is
// known (every backend not yet probed counts as up).
func (d *Dispatcher) handleStartupDue(ctx actor.Context, m *messages.StartupDue) {
	if d.ready || m.Gen != d.startupGen {
		return
	}
	d.log.Warn("first health round not finished in time; serving without it", "waited", d.cfg.HealthTimeout)
	d.becomeReady()
	d.serveQueue(ctx)
}

func (d *Dispatcher) becomeReady() {
	d.ready = true
	if d.startupCancel != nil {
		d.startupCancel()
		d.startupCancel = nil
	}
}

// markDown takes backend b out of rotation until a health report finds it up.
func (d *Dispatcher) markDown(b int, reason string) {
	c := &d.cands[b]
	be := &d.backends[b]
	if !c.Up || be.removed {
		return
	}
	c.Up = false
	be.reason, be.since = reason, time.Now()
	d.stopRamp(b)
	d.refresh(b)
	d.refreshBackups()
	d.log.Warn("backend down", "backend", be.addr, "reason", reason)
}

// startRamp begins backend b's slow start, when slow start is on.
func (d *Dispatcher) startRamp(b int, now time.Time) {
	if d.cfg.SlowStart <= 0 {
		return
	}
	be := &d.backends[b]
	if be.slowUntil.IsZero() {
		d.ramping++
	}
	be.slowFrom, be.slowUntil = now, now.Add(d.cfg.SlowStart)
	d.cands[b].Eff = float64(d.cands[b].Weight) * slowStartFloor
}

// stopRamp ends backend b's slow start, if any, at full weight.
func (d *Dispatcher) stopRamp(b int) {
	be := &d.backends[b]
	if !be.slowUntil.IsZero() {
		be.slowUntil = time.Time{}
		d.ramping--
	}
	d.cands[b].Eff = float64(d.cands[b].Weight)
}

// ramp brings the effective weights of backends in slow start up to date.
func (d *Dispatcher) ramp(now time.Time) {
	for i := range d.backends {
		be := &d.backends[i]
		if be.slowUntil.IsZero() {
			continue
		}
		c := &d.cands[i]
		if !now.Before(be.slowUntil) {
			be.slowUntil = time.Time{}
			c.Eff = float64(c.Weight)
			d.ramping--
			continue
		}
		f := float64(now.Sub(be.slowFrom)) / float64(be.slowUntil.Sub(be.slowFrom))
		c.Eff = float64(c.Weight) * max(slowStartFloor, f)
	}
}
