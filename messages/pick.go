package messages

import (
	"net/netip"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Outcome says how an exchange with a backend ended; the Dispatcher uses it to keep its view of
// the backends honest between health rounds.
type Outcome uint8

const (
	// OutcomeNone means there is no lease to release (zero value).
	OutcomeNone Outcome = iota
	// OutcomeOK: the response was relayed (whatever its status).
	OutcomeOK
	// OutcomeConnectFailed: the dial was refused, reset or timed out; nothing was sent. With
	// the classic check the backend is taken out of rotation until a health round finds it up;
	// otherwise it counts toward ejection.
	OutcomeConnectFailed
	// OutcomeTimeout: the backend accepted the request but sent no response head within the
	// response timeout. Judged like OutcomeConnectFailed.
	OutcomeTimeout
	// OutcomeBackendFailed: the backend broke the exchange after the connect (reset, malformed
	// or truncated response). The backend stays in rotation (the health rounds judge it), but
	// when 5xx ejection is on it counts toward it like a 5xx answer.
	OutcomeBackendFailed
	// OutcomeClientFailed: the client went away or sent a broken body; the backend is not to blame.
	OutcomeClientFailed
	// OutcomeAbandoned: the Dispatcher answered a CheckLease with Abandon (the backend stalled,
	// was ejected or went down while the request waited for its response head); nothing of a
	// response had arrived, and the request went to another backend. Not held against the
	// backend beyond what made it abandoned.
	OutcomeAbandoned
)

// String names the outcome for logs.
func (o Outcome) String() string {
	switch o {
	case OutcomeNone:
		return "none"
	case OutcomeOK:
		return "ok"
	case OutcomeConnectFailed:
		return "connect_failed"
	case OutcomeTimeout:
		return "timeout"
	case OutcomeBackendFailed:
		return "backend_failed"
	case OutcomeClientFailed:
		return "client_failed"
	case OutcomeAbandoned:
		return "abandoned"
	}
	return "unknown"
}

// Lease identifies one slot of the N budget held on one backend. The zero Lease holds nothing.
type Lease struct {
	// ID is unique per Dispatcher incarnation; zero means no lease.
	ID uint64
	// Backend is the index of the backend in the configured list.
	Backend int
}

// Release gives a lease back. It travels inside PickBackend (folded into the next pick on a
// keep-alive connection) or on its own as ReleaseLease.
type Release struct {
	Lease   Lease
	Outcome Outcome
	// Status is the status code of the backend's final response head, when one arrived (0
	// otherwise). 5xx answers in a row count toward outlier ejection.
	Status uint16
	// Latency is the time from sending the request to its response head (0 when none
	// arrived): the Dispatcher's latency sample, which a long body or a tunnel does not skew.
	Latency time.Duration
}

// PickBackend is sent by a Forwarder to the Dispatcher to get a slot of the N
// budget and a backend for one request. The Dispatcher answers ReplyTo with exactly one
// BackendPicked or NoBackend, now or (when N slots are in use) once a slot frees or the queue
// deadline passes.
//
// The Dispatcher copies what it keeps; the sender owns the message again once the reply has
// arrived and may reuse it for its next pick (no allocation per request).
type PickBackend struct {
	// Holder is the Forwarder the lease belongs to. The Dispatcher does not watch it: the lease
	// comes back with a release, or with a ForgetHolder for the holder (from the Acceptor when
	// the Forwarder's connection ends, or for a grant nobody used; see ForgetHolder).
	Holder *actor.PID
	// ReplyTo receives the answer: the Forwarder itself (its PID posts to its event loop).
	ReplyTo *actor.PID
	// Release, when Release.Lease.ID is not zero, gives back the holder's previous lease first.
	Release Release
	// Retry marks the same request trying again (after OutcomeConnectFailed, OutcomeAbandoned,
	// or OutcomeBackendFailed before any answer): it keeps the slot of Release.Lease instead of
	// queueing behind waiting requests, and is never given a backend it has tried already. When
	// every other usable backend is at its cap it waits in the queue; when none is left, the
	// answer is NoBackend.
	Retry bool
	// Key is the request's hash key (a header, a cookie or the client address, as the hash
	// policy is configured), valid when HasKey; the hash policy sends equal keys to the same
	// backend. Other policies ignore it.
	Key    uint64
	HasKey bool
}

// BackendPicked answers PickBackend: the holder now holds Lease and should send its request to
// Addr. Sent by the Dispatcher to PickBackend.ReplyTo. The Dispatcher
// reuses one BackendPicked per holder: the receiver reads it before its next PickBackend and
// keeps no pointer to it.
type BackendPicked struct {
	Lease Lease
	// Holder is the PickBackend's Holder, whose lease this is. A receiver that drops the answer
	// (its pick gave up waiting) sends ForgetHolder for it, which gives the lease back.
	Holder *actor.PID
	Addr   string
	// Dial, when valid, is the address to connect to (Addr resolved); otherwise the receiver
	// resolves Addr itself (from what main resolved at start-up).
	Dial netip.AddrPort
	// CheckAfter, when not zero, is how long the request may wait for its response head before
	// the receiver asks the Dispatcher (CheckLease) whether to go on waiting: far longer than
	// the backend's usual latency. Zero means never ask (only the response timeout applies).
	CheckAfter time.Duration
}

// NoBackendReason says why the Dispatcher could not give a backend.
type NoBackendReason uint8

const (
	// NoBackendDown: no backend is up.
	NoBackendDown NoBackendReason = iota + 1
	// NoBackendQueueTimeout: N slots stayed in use until the queue deadline passed.
	NoBackendQueueTimeout
	// NoBackendQueueFull: too many requests were already waiting for a slot.
	NoBackendQueueFull
	// NoBackendStopping: the Dispatcher is stopping.
	NoBackendStopping
)

// String names the reason for logs and error bodies.
func (r NoBackendReason) String() string {
	switch r {
	case NoBackendDown:
		return "no backend is up"
	case NoBackendQueueTimeout:
		return "timed out waiting for a free slot"
	case NoBackendQueueFull:
		return "too many requests waiting"
	case NoBackendStopping:
		return "load balancer is stopping"
	}
	return "no backend"
}

// NoBackend answers PickBackend when no backend can take the request; the client gets the
// load balancer's own error. Sent by the Dispatcher to PickBackend.ReplyTo. Any lease named in
// the PickBackend's Release has been released.
type NoBackend struct {
	Reason NoBackendReason
}

// ReleaseLease gives a lease back without asking for a new one: sent by a Forwarder to the
// Dispatcher when its connection ends or goes idle after a request. The Dispatcher keeps no
// pointer to it; the sender may reuse it once the answer to a PickBackend it sent after it has
// arrived (the Dispatcher handles one sender's messages in order), and sends a fresh one before
// that (the Forwarder keeps that protocol in conn.rel; TestReleaseReuseProtocol breaks it on
// purpose).
type ReleaseLease struct {
	Holder  *actor.PID
	Release Release
}

// QueueDeadline is the Dispatcher's own timer message (SendOnce, re-armed while picks wait):
// time to answer waiting picks whose queue deadline has passed. Gen tells a stale timer apart.
type QueueDeadline struct {
	Gen uint64
}

// ForgetHolder is sent to the Dispatcher by the Acceptor when a Forwarder's connection has ended
// (for any reason, crashes included: ConnEnded), and for a BackendPicked nobody will use (by the
// Forwarder that dropped it, having ended or given up on the pick, or by the Dispatcher itself
// when it went to dead letters): forget Holder, and take back a lease it still holds
// (OutcomeClientFailed). The Acceptor's may come before a last pick of the same Forwarder,
// which then creates the holder again; the one for the dropped answer to that pick settles it.
// The Dispatcher does not Watch holders: the Acceptor hears of every end, and a watch would cost
// every connection an extra system message and a watcher set it keeps for life.
type ForgetHolder struct {
	Holder *actor.PID
}

// CheckLease is sent by a Forwarder to the Dispatcher when the response head of
// the request holding Lease is overdue (BackendPicked.CheckAfter has passed and nothing of a
// response has arrived). The Dispatcher answers ReplyTo with one *LeaseVerdict. It keeps no
// pointer to the message. A backend that has answered nothing for the stall time, and holds
// another request overdue (or this one very long), is stalled: it is ejected while another
// backend is usable.
type CheckLease struct {
	Holder  *actor.PID
	ReplyTo *actor.PID
	Lease   Lease
	// Waited is how long the request has waited for its answer since it went out (the
	// Forwarder keeps that time anyway; the Dispatcher takes no clock reading per grant).
	Waited time.Duration
}

// LeaseVerdict answers CheckLease, from the Dispatcher to CheckLease.ReplyTo. With Abandon the
// backend is stalled, ejected or down and another backend can take the request: a request that
// can be sent again gives up this exchange (OutcomeAbandoned, with PickBackend.Retry) and goes
// elsewhere; one that cannot keeps waiting. Without it, the request waits, and asks again after
// CheckAfter (zero: never again). A verdict with a CheckAfter is sent fresh (a rare path); the
// two without one (Abandon, and keep waiting without asking again) are shared values, immutable
// like every message.
type LeaseVerdict struct {
	Abandon    bool
	CheckAfter time.Duration
}

// EjectionDue is the Dispatcher's own timer message (SendOnce, re-armed while backends are
// ejected): time to return backends whose ejection has ended. Gen tells a stale timer apart.
type EjectionDue struct {
	Gen uint64
}

// StartupDue is the Dispatcher's own timer message: the wait for the first health report is
// over (capped by the health timeout), so picks waiting for it are served with what is known.
// Gen tells a timer of a previous incarnation apart.
type StartupDue struct {
	Gen uint64
}
