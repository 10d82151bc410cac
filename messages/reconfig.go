package messages

import (
	"net/netip"

	"github.com/asynkron/protoactor-go/actor"
)

// Changing the backend set at run time (a reload, the runtime API). Backends keep their index
// for the life of the process: the lb supervisor owns the table, appends a backend it has not
// seen before, and marks one that left as removed (its slot is never reused by another
// address, so leases, counts and health results indexed by it stay valid); an address that
// comes back gets its old index again.

// BackendSlot is one index of the backend table.
type BackendSlot struct {
	Backend Backend
	// Dial is the address to connect to (the backend's name resolved by main; for an address
	// given as IP and port, that address).
	Dial netip.AddrPort
	// Removed: the backend is no longer configured. The Dispatcher gives it no new request and
	// lets its requests in flight finish (it drains); the HealthMonitor stops probing it.
	Removed bool
}

// SetBackends is sent by the lb supervisor to the Dispatcher and the HealthMonitor: the whole
// backend table, as it is now (never shorter than the one before). Each applies the difference
// to its own state and answers ReplyTo (when set) with BackendsSet. A backend that is new (or
// back) gets no request before a health report has found it up.
type SetBackends struct {
	Table   []BackendSlot
	ReplyTo *actor.PID
}

// BackendsSet answers SetBackends: the receiver's state follows the table now.
type BackendsSet struct {
	From *actor.PID
}

// GetBackends is sent by the Dispatcher and the HealthMonitor to their parent, the lb
// supervisor, when they start (after a restart too): the supervisor answers with the current
// SetBackends, so a restarted actor does not fall back to the start-up list.
type GetBackends struct {
	ReplyTo *actor.PID
}

// ApplyBackends is sent by main's configuration controller (for a reload, or a call of the
// runtime API) to the lb supervisor: the backends the load balancer should have from now on, in listing order, each
// with its resolved dial address. The supervisor updates its table, sends SetBackends to the
// Dispatcher and the HealthMonitor, and answers ReplyTo with BackendsApplied once both have
// applied it.
type ApplyBackends struct {
	Backends []Backend
	Dial     map[string]netip.AddrPort
	ReplyTo  *actor.PID
}

// BackendsApplied answers ApplyBackends: what changed, by address.
type BackendsApplied struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Reconfigure is sent by the lb supervisor to the Dispatcher and the HealthMonitor (and, as a
// call on the Engine, reaches the event loops) on a reload: Config is the receiver's own
// configuration type (a *dispatcher.Config to the Dispatcher, a *health.Config to the
// HealthMonitor), complete with the PIDs it needs, which the receiver owns from then on. Its
// Backends are ignored (the backend table comes by SetBackends). It applies to what follows:
// requests picked from then on, rounds started from then on; nothing in flight changes.
type Reconfigure struct {
	Config any
}

// ApplySettings is sent by main's reload to the lb supervisor: the new configurations of the
// Dispatcher, the HealthMonitor and the Forwarders (pointers to their own Config types, the
// supervisor fills in the PIDs), and the Acceptor's connection cap. ReplyTo gets
// SettingsApplied once the supervisor has passed them on.
type ApplySettings struct {
	Dispatcher, Health, Forwarder any
	MaxConns                      int
	ReplyTo                       *actor.PID
}

// SettingsApplied answers ApplySettings.
type SettingsApplied struct{}
