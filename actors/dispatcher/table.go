package dispatcher

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// The backend table at run time (messages.SetBackends): indices never move. A backend that
// leaves is marked removed and drains (no new request; the ones in flight finish, and their
// releases are applied as usual); a new one is appended, and one that comes back is revived at
// its old index; either waits for a health report before it takes requests.

// handleSetBackends applies a new table from the lb supervisor.
func (d *Dispatcher) handleSetBackends(ctx actor.Context, m *messages.SetBackends) {
	now := time.Now()
	for i, slot := range m.Table {
		if i >= len(d.backends) {
			d.backends = append(d.backends, backend{})
			d.cands = append(d.cands, Candidate{})
			d.addBackend(i, slot, now)
			if slot.Removed { // a table longer than this one's (a restart): removed already
				d.backends[i].removed, d.backends[i].pending = true, false
				d.refresh(i)
			}
			continue
		}
		be := &d.backends[i]
		switch {
		case slot.Removed && !be.removed:
			d.removeBackend(i, now)
		case !slot.Removed && be.removed:
			d.addBackend(i, slot, now)
		case !slot.Removed:
			d.updateBackend(i, slot)
		}
	}
	d.live = 0
	d.hasBackup = false
	for i := range d.backends {
		if !d.backends[i].removed {
			d.live++
			d.hasBackup = d.hasBackup || d.backends[i].backup
		}
	}
	d.primaryUsable = false
	for i := range d.backends {
		if be := &d.backends[i]; !be.backup && !be.removed && d.cands[i].Up && !be.ejected {
			d.primaryUsable = true
		}
	}
	for i := range d.backends {
		d.refresh(i)
	}
	if m.ReplyTo != nil {
		ctx.Send(m.ReplyTo, &messages.BackendsSet{From: ctx.Self()})
	}
	d.serveQueue(ctx) // a waiter whose backends all left gets its answer
}

// addBackend puts slot at index i, new or back: known to nobody's health report yet, so it
// takes no request before one finds it up.
func (d *Dispatcher) addBackend(i int, slot messages.BackendSlot, now time.Time) {
	be := &d.backends[i]
	if be.ejected {
		d.ejected--
	}
	if !be.slowUntil.IsZero() {
		d.ramping--
	}
	*be = backend{addr: slot.Backend.Addr, dial: slot.Dial, since: now, limit: d.cfg.limitOf(slot.Backend),
		own: slot.Backend.MaxInFlight, backup: slot.Backend.Backup,
		reason: "not checked yet", pending: true, ejectedTotal: be.ejectedTotal}
	w := max(slot.Backend.Weight, 1)
	inFlight := d.cands[i].InFlight // a revived backend may still have requests of its old life
	d.cands[i] = Candidate{Weight: w, Eff: float64(w), InFlight: inFlight}
	d.refresh(i)
	d.log.Info("backend added; waiting for its first health check", "backend", be.addr)
}

// removeBackend takes backend i out: no new request; those in flight finish.
func (d *Dispatcher) removeBackend(i int, now time.Time) {
	be := &d.backends[i]
	be.removed, be.since = true, now
	if be.ejected {
		be.ejected = false
		d.ejected--
	}
	d.stopRamp(i)
	d.refresh(i)
	d.log.Info("backend removed; draining", "backend", be.addr, "in_flight", d.cands[i].InFlight)
	if d.cands[i].InFlight == 0 {
		d.log.Info("backend drained", "backend", be.addr)
	}
}

// updateBackend takes a kept backend's new settings.
func (d *Dispatcher) updateBackend(i int, slot messages.BackendSlot) {
	be, c := &d.backends[i], &d.cands[i]
	be.dial = slot.Dial // a name may resolve elsewhere now; requests already sent go on
	w := max(slot.Backend.Weight, 1)
	changed := w != c.Weight || be.limit != d.cfg.limitOf(slot.Backend) || be.backup != slot.Backend.Backup ||
		be.own != slot.Backend.MaxInFlight
	if !changed {
		return
	}
	be.limit, be.own, be.backup = d.cfg.limitOf(slot.Backend), slot.Backend.MaxInFlight, slot.Backend.Backup
	if w != c.Weight {
		c.Eff = c.Eff * float64(w) / float64(c.Weight)
		c.Weight = w
	}
	d.refresh(i)
	d.log.Info("backend changed", "backend", be.addr, "weight", w, "max_in_flight", be.limit, "backup", be.backup)
}

// reconfigure takes a reload's settings for what follows: the budget, the queue's limits (for
// picks queued from now), the policy (a new one starts from scratch: a round robin position, a
// hash ring), the caps, ejection and stall thresholds, slow start. Leases, holders, the queue
// and every backend's state stay. The backend list in cfg is ignored (SetBackends brings it).
func (d *Dispatcher) reconfigure(ctx actor.Context, cfg *Config) {
	policy, err := NewPolicy(cfg.Policy)
	if err != nil {
		d.log.Error("new settings refused; the running ones stay", "err", err)
		return
	}
	old := d.cfg
	next := *cfg
	next.Backends = old.Backends
	if next.Health == nil {
		next.Health = old.Health
	}
	if next.Logger == nil {
		next.Logger = old.Logger
	}
	d.cfg = &next
	if next.Policy != old.Policy {
		d.policy = policy
	}
	for i := range d.backends {
		be := &d.backends[i]
		be.limit = d.cfg.limitOf(messages.Backend{MaxInFlight: be.own})
		d.refresh(i)
	}
	if next.SlowStart <= 0 {
		for i := range d.backends {
			d.stopRamp(i)
		}
	}
	d.log.Info("settings changed", "n", d.cfg.n(), "policy", d.cfg.Policy.Name, "max_per_backend", d.cfg.MaxPerBackend,
		"queue_timeout", d.cfg.queueTimeout())
	d.serveQueue(ctx) // a larger budget or cap lets waiters through now
}
