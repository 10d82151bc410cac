package dispatcher

import (
	"time"

	"github.com/loadbalancer/loadbalancer/messages"
)

// stats is the Dispatcher's answer to a StatsRequest: a copy of its view of the backends, the
// budget and the queue.
func (d *Dispatcher) stats() *messages.DispatcherStats {
	s := &messages.DispatcherStats{
		Ready:     d.ready,
		InFlight:  d.inUse,
		N:         d.cfg.n(),
		Queued:    d.waitingN,
		QueueWait: d.queueWait,
		Picks:     d.picks,
		Backends:  make([]messages.BackendState, len(d.backends)),
	}
	for i := range d.backends {
		be, c := &d.backends[i], &d.cands[i]
		b := &s.Backends[i]
		*b = messages.BackendState{Addr: be.addr, Weight: c.Weight, Probed: be.probed, Up: c.Up,
			Ejected: be.ejected, Since: be.since, InFlight: c.InFlight, Ejections: be.ejectedTotal,
			Removed: be.removed, Backup: be.backup, MaxInFlight: be.own, Pending: be.pending}
		switch {
		case !c.Up:
			b.Reason = be.reason
		case be.ejected:
			b.Reason, b.EjectedUntil = be.ejectReason, be.ejectedUntil
		}
		if !be.latAt.IsZero() {
			b.Latency = time.Duration(be.lat)
		}
	}
	return s
}
