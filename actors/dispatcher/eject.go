package dispatcher

import (
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// stallFactor: a request may wait for its response head this many times its backend's latency
// estimate (and at least Config.StallAfter) before its backend counts as stalled.
const stallFactor = 8

// latencyDecay is the time constant of the latency estimate's decay: a sample taken this long
// after the previous one weighs 1-1/e against the estimate.
const latencyDecay = 10 * time.Second

// decayWeight is the weight the old estimate keeps for a sample taken dt after the previous one.
func decayWeight(dt time.Duration) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp(-float64(dt) / float64(latencyDecay))
}

// checkAfter is how long a request on backend b may wait for its response head before its
// Forwarder asks whether to go on (CheckLease): far longer than the backend's usual latency.
// Zero when stall detection is off.
func (d *Dispatcher) checkAfter(b int) time.Duration {
	if d.cfg.StallAfter < 0 {
		return 0
	}
	return max(d.cfg.stallAfter(), time.Duration(stallFactor*d.backends[b].lat))
}

// passive counts a request's outcome toward ejection: consecutive 5xx answers (and responses
// broken mid-way), connect failures and response timeouts each eject the backend at their
// threshold; a success of a kind ends that kind's run.
func (d *Dispatcher) passive(b int, r *messages.Release) {
	be := &d.backends[b]
	ej := &d.cfg.Eject
	switch r.Outcome {
	case messages.OutcomeOK:
		be.runConnect, be.runTimeout = 0, 0
		if r.Status < 500 {
			be.run5xx = 0
			return
		}
		be.run5xx++
		if ej.Consecutive5xx > 0 && be.run5xx >= ej.Consecutive5xx {
			d.eject(b, fmt.Sprintf("%d 5xx answers in a row", be.run5xx), false)
		}
	case messages.OutcomeBackendFailed:
		be.runConnect, be.runTimeout = 0, 0
		be.run5xx++
		if ej.Consecutive5xx > 0 && be.run5xx >= ej.Consecutive5xx {
			d.eject(b, fmt.Sprintf("%d failed answers in a row", be.run5xx), false)
		}
	case messages.OutcomeConnectFailed:
		be.runConnect++
		if ej.ConnectFailures > 0 && be.runConnect >= ej.ConnectFailures {
			d.eject(b, fmt.Sprintf("%d connect failures in a row", be.runConnect), false)
		}
	case messages.OutcomeTimeout:
		be.runTimeout++
		if ej.Timeouts > 0 && be.runTimeout >= ej.Timeouts {
			d.eject(b, fmt.Sprintf("%d response timeouts in a row", be.runTimeout), false)
		}
	}
}

// eject takes backend b out of rotation for the base ejection time times the number of its
// ejections in a row (up to the maximum), unless that would eject more than the allowed share
// of the backends. It reports whether b is ejected.
func (d *Dispatcher) eject(b int, reason string, stall bool) bool {
	be := &d.backends[b]
	if be.ejected {
		return true
	}
	if be.removed {
		return false // draining: it takes no request anyway, and must not use the ejection share
	}
	// A stall is no outlier among working backends but a backend that answers nothing: it
	// goes whatever the share (its caller keeps another usable backend).
	if !stall && d.ejected+1 > d.maxEjected() {
		d.log.Debug("not ejecting backend: too many ejected already", "backend", be.addr, "reason", reason, "ejected", d.ejected)
		return false
	}
	now := time.Now()
	base := d.cfg.ejectBase()
	if !be.returnedAt.IsZero() {
		// A while back in rotation without trouble forgives earlier ejections.
		be.ejections = max(0, be.ejections-int(now.Sub(be.returnedAt)/base))
	}
	be.ejections++
	dur := min(base*time.Duration(be.ejections), d.cfg.ejectMax())
	be.ejected, be.stallEjected = true, stall
	be.ejectedAt, be.ejectedUntil = now, now.Add(dur)
	be.since, be.ejectReason = now, reason
	be.ejectedTotal++
	be.run5xx, be.runConnect, be.runTimeout = 0, 0, 0
	d.stopRamp(b)
	d.ejected++
	d.refresh(b)
	d.refreshBackups()
	d.log.Warn("backend ejected", "backend", be.addr, "reason", reason, "for", dur, "ejections", be.ejections)
	d.armEjection(be.ejectedUntil)
	return true
}

// unEject puts backend b back in rotation, ramping up when slow start is on.
func (d *Dispatcher) unEject(b int, why string, now time.Time) {
	be := &d.backends[b]
	be.ejected, be.stallEjected = false, false
	be.returnedAt = now
	if d.cands[b].Up {
		be.since = now // back up; a backend still down keeps its since
	}
	d.ejected--
	d.startRamp(b, now)
	d.refresh(b)
	d.refreshBackups()
	d.log.Info("backend returned from ejection", "backend", be.addr, "after", now.Sub(be.ejectedAt).Round(time.Millisecond), "why", why)
}

// armEjection makes sure the ejection timer fires by t.
func (d *Dispatcher) armEjection(t time.Time) {
	if d.timers == nil || (d.ejectCancel != nil && !d.ejectAt.After(t)) {
		return
	}
	if d.ejectCancel != nil {
		d.ejectCancel()
	}
	d.ejectGen++
	d.ejectAt = t
	d.ejectCancel = d.timers.SendOnce(time.Until(t), d.self, &messages.EjectionDue{Gen: d.ejectGen})
}

func (d *Dispatcher) handleEjectionDue(ctx actor.Context, m *messages.EjectionDue) {
	if m.Gen != d.ejectGen {
		return
	}
	d.ejectCancel = nil
	now := time.Now()
	var next time.Time
	for i := range d.backends {
		be := &d.backends[i]
		switch {
		case !be.ejected:
		case !now.Before(be.ejectedUntil):
			d.unEject(i, "ejection time over", now)
		case next.IsZero() || be.ejectedUntil.Before(next):
			next = be.ejectedUntil
		}
	}
	if !next.IsZero() {
		d.armEjection(next)
	}
	d.serveQueue(ctx)
}

// handleCheckLease answers a Forwarder whose request has waited CheckAfter for its response
// head. A backend that has stalled (see stalled) is ejected while another is usable. The request
// is told to go elsewhere (Abandon) when its backend is down, ejected or stalled and a backend it
// has not tried can take it now; otherwise it waits on and asks again after CheckAfter.
func (d *Dispatcher) handleCheckLease(ctx actor.Context, m *messages.CheckLease) {
	h, ok := d.holders[m.Holder.Id]
	b := m.Lease.Backend
	if !ok || h.lease.ID != m.Lease.ID || m.Lease.ID == 0 || b < 0 || b >= len(d.backends) {
		ctx.Send(m.ReplyTo, keepWaiting)
		return
	}
	be := &d.backends[b]
	if !h.checked && m.Waited >= d.checkAfter(b) {
		h.checked, h.checkEpoch = true, be.answers
		be.overdue++
	}
	bad := !d.cands[b].Up || be.ejected
	if !bad && d.stalled(b, m.Waited) && d.otherUsable(b) {
		reason := fmt.Sprintf("stalled: no answer for %v with %d requests in flight (latency estimate %v)",
			m.Waited.Round(time.Millisecond), d.cands[b].InFlight, time.Duration(be.lat).Round(time.Microsecond))
		bad = d.eject(b, reason, true)
	}
	if bad && d.availableUntried(h) {
		ctx.Send(m.ReplyTo, abandon)
		return
	}
	next := d.checkAfter(b)
	if h.checked && !bad && !be.latAt.IsZero() && time.Since(be.lastAnswer) >= next/2 && d.otherUsable(b) {
		// Overdue on a backend that has been silent a while: the next request to turn
		// overdue may make this a stall, so ask again soon rather than a whole stall time
		// later.
		next = max(next/4, 10*time.Millisecond)
	}
	ctx.Send(m.ReplyTo, &messages.LeaseVerdict{CheckAfter: next})
}

// availableUntried reports whether a backend that h's request has not tried can take it now.
func (d *Dispatcher) availableUntried(h *holder) bool {
	for i := range d.cands {
		if d.cands[i].Avail && !h.hasTried(i) {
			return true
		}
	}
	return false
}

// stalled reports whether backend b looks frozen to a request that has waited this long
// for its answer: the backend has answered nothing for as long (a request sent just before it
// froze counts too), it has a usual latency to compare with (a backend nobody has timed is left
// to the health checks), and the wait is far beyond it, with another request overdue as well
// (asked CheckLease and still in flight), or this one overdue four times as long: a lone slow
// request is more likely a slow page than a frozen server.
func (d *Dispatcher) stalled(b int, waited time.Duration) bool {
	be := &d.backends[b]
	limit := d.checkAfter(b)
	switch {
	case be.latAt.IsZero() || time.Since(be.lastAnswer) < limit || waited < limit:
		return false
	case be.overdue >= 2:
		return true
	}
	return waited >= 4*limit
}

// otherUsable reports whether a backend other than b is up and not ejected.
func (d *Dispatcher) otherUsable(b int) bool {
	for i := range d.cands {
		if i != b && (d.cands[i].Up || d.backends[i].pending) && !d.backends[i].ejected && !d.backends[i].removed {
			return true
		}
	}
	return false
}

var (
	abandon     = &messages.LeaseVerdict{Abandon: true}
	keepWaiting = &messages.LeaseVerdict{}
)
