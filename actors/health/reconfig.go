package health

import (
	"net"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// removedReason is the Reason of a removed backend's line in a HealthReport.
const removedReason = "removed"

// removedLine is a removed backend's line in a HealthReport.
var removedLine = messages.BackendHealth{Reason: removedReason, Removed: true}

// handleSetBackends makes the monitor follow the backend table t (see applyTable), starts a
// round for the backends that are new or back (with KindNone, reports them up at once), and
// answers ReplyTo.
func (m *Monitor) handleSetBackends(ctx actor.Context, t *messages.SetBackends) {
	added, changed := m.applyTable(t.Table)
	// Removals may have dropped the last probes the running round waited for.
	if m.running && m.waiting == 0 {
		m.finishRound(ctx)
	}
	switch {
	case m.off():
		if changed {
			m.reportAllUp(ctx)
		}
	case added:
		// A backend gets no request before a report has found it up: probe it now (or right
		// after the running round), not at the next tick.
		m.roundNow(ctx)
	}
	if t.ReplyTo != nil {
		ctx.Send(t.ReplyTo, &messages.BackendsSet{From: ctx.Self()})
	}
}

// applyTable takes table, the whole backend table, into the monitor's per-backend state. It
// reports whether a backend was added or came back (added), and whether any backend was added,
// came back or was removed (changed).
//
// The table is never shorter than the one before, and index i keeps naming the same address:
// new backends are appended, a removed one keeps its slot (Removed), one that comes back is
// un-removed at its old index. A slot beyond table (a shorter table, against that rule) is
// taken as removed.
//
// A new backend, or one back, gets a fresh Checker and a fresh verdict (its first probe
// decides at once, as at start-up); its stats go on. A backend whose own check settings
// changed gets a new Checker and keeps its verdict. A removed one is no longer probed: a probe
// of it the running round still waits for is dropped, and its stats stop where they are.
func (m *Monitor) applyTable(table []messages.BackendSlot) (added, changed bool) {
	if len(table) < len(m.slots) {
		m.log.Error("backend table shorter than before; the missing backends are taken as removed",
			"had", len(m.slots), "got", len(table))
	}
	for i := range max(len(table), len(m.slots)) {
		var next messages.BackendSlot
		if i < len(table) {
			next = table[i]
		} else {
			next = m.slots[i]
			next.Removed = true
		}
		if i >= len(m.slots) {
			m.slots = append(m.slots, next)
			m.backends = append(m.backends, backendState{})
			m.checks = append(m.checks, messages.BackendChecks{})
			if !m.off() {
				var c Checker
				if !next.Removed {
					c = m.checkerFor(next.Backend)
				}
				m.checkers = append(m.checkers, c)
			}
			if !next.Removed {
				m.log.Debug("backend added", "backend", next.Backend.Addr, "index", i)
				added, changed = true, true
			}
			continue
		}
		cur := m.slots[i]
		m.slots[i] = next
		switch {
		case next.Backend.Addr != cur.Backend.Addr:
			// Against the rule above: another backend at this index. It is treated as a
			// new one, so nothing of the old one's verdict or round carries over.
			m.log.Error("backend table gives an index another address", "index", i,
				"was", cur.Backend.Addr, "now", next.Backend.Addr)
			m.resetSlot(i)
			changed = true
			added = added || !next.Removed
		case cur.Removed && !next.Removed:
			m.log.Debug("backend back", "backend", next.Backend.Addr, "index", i)
			m.resetSlot(i)
			added, changed = true, true
		case !cur.Removed && next.Removed:
			m.log.Debug("backend removed", "backend", next.Backend.Addr, "index", i)
			m.dropProbe(i)
			changed = true
		case !next.Removed && next.Backend.Health != cur.Backend.Health:
			// Its own check settings changed: probes from now on use the new Checker. A
			// probe of the running round already out used the old one; its result counts.
			m.log.Debug("backend's health check changed", "backend", next.Backend.Addr, "index", i)
			m.rebuildChecker(i)
		}
	}
	return added, changed
}

// resetSlot makes backend i as if never probed by this incarnation: a new Checker (when it is
// not removed), no verdict, and no result in the running round.
func (m *Monitor) resetSlot(i int) {
	m.backends[i] = backendState{}
	m.dropProbe(i)
	if m.slots[i].Removed {
		if !m.off() {
			m.checkers[i] = nil // rebuilt if it comes back
		}
		return
	}
	m.rebuildChecker(i)
}

// dropProbe makes the running round neither wait for nor use a result of backend i. The probe
// itself runs on until it ends or the round does; what it sends is then ignored.
func (m *Monitor) dropProbe(i int) {
	if !m.running || i >= len(m.out) {
		return
	}
	if m.out[i] {
		m.out[i] = false
		m.waiting--
	}
	m.got[i] = false
}

// rebuildChecker gives backend i a Checker built from its current settings. The old one may
// still be in use by a probe goroutine: it is replaced, not changed.
func (m *Monitor) rebuildChecker(i int) {
	if m.off() {
		return
	}
	m.checkers[i] = m.checkerFor(m.slots[i].Backend)
}

// checkerFor builds the Checker of backend b: Config.Check with b's own settings, dialling
// b.Addr (the name as configured, like the start-up backends; the slot's Dial is for the
// event loops). Settings that do not make a valid check (the lb validates them before
// sending a table, so this is a bug elsewhere) give a Checker that always fails, saying why:
// the backend is reported down rather than the monitor crashing on every restart.
func (m *Monitor) checkerFor(b messages.Backend) Checker {
	chk, err := m.cfg.Check.For(b.Health)
	if err != nil {
		m.log.Error("backend's health check settings are not valid; it is reported down",
			"backend", b.Addr, "error", err)
		return failedCheck{err: err}
	}
	return chk.checker(b.Addr)
}

// failedCheck is the Checker of a backend whose check settings are not valid: it always fails
// with err.
type failedCheck struct{ err error }

func (f failedCheck) Check(net.Conn) (Result, error) { return Result{}, f.err }
