package messages

import "time"

// HealthCheckDue is sent by the Dispatcher to the HealthMonitor after every R picks. The round it
// asks for starts no sooner than the monitor's notice gap after the previous round ended;
// notices that arrive meanwhile (or while a round runs) make that one round, and none is lost.
type HealthCheckDue struct{}

// HealthTick is the HealthMonitor's own timer message (scheduled with SendOnce and re-armed
// when it is handled): time for a periodic round.
type HealthTick struct {
	// Gen is the timer generation; a tick from a cancelled timer is ignored.
	Gen uint64
}

// BackendHealth is what the HealthMonitor knows about one backend. In a ProbeFinished it is what
// one probe found; in a HealthReport, Up is the monitor's verdict after the rise and fall
// thresholds (a backend goes down after Fall failed probes in a row and comes up after Rise
// passed ones; the first probe of a backend decides at once).
type BackendHealth struct {
	// Up is true when the backend answered the health check correctly (in a report: is up).
	Up bool
	// Removed marks a removed backend's line in a report: no verdict at all (the receiver
	// keeps what it knows; a backend revived since the report was built is not judged by it).
	Removed bool
	// Counted is true when Errors and Entries carry the backend's own counters (the classic
	// check, on a passed probe). Other checks leave the load estimate to the Dispatcher.
	Counted bool
	// Errors and Entries are the backend's own counters (valid only when Counted).
	Errors  int64
	Entries int64
	// Reason says why the backend is down, or why the last probe failed while the backend is
	// still up within its fall threshold; empty otherwise. For logs.
	Reason string
}

// ProbeFinished is sent by a probe goroutine to its HealthMonitor with the result of probing
// backend Index in round Round.
type ProbeFinished struct {
	Round  uint64
	Index  int
	Health BackendHealth
	// At is when the probe started, and Took how long it took.
	At   time.Time
	Took time.Duration
}

// HealthReport is sent by the HealthMonitor to the Dispatcher at the end of every round (with
// --health-check none, once at start-up and after each change of the backend table, every
// backend up). Backends is indexed like the backend table (see SetBackends); it may stop short
// of the table's end (a backend added during the round has no verdict yet: no news for it), and
// a removed backend's line says Up false, reason "removed". The Dispatcher must not modify it.
type HealthReport struct {
	Round    uint64
	Backends []BackendHealth
}

// RunHealthRound asks the HealthMonitor for a round now (sent by tests; nothing in the load
// balancer sends it yet): it starts at once, or when the running round ends; the notice gap
// does not hold it back.
type RunHealthRound struct{}

// NoticeGapElapsed is the HealthMonitor's own timer message, sent to itself with the scheduler's
// SendOnce: the notice gap after the last round has passed, and a round asked for by a
// HealthCheckDue may start. Gen is the gap timer's generation; a message from a cancelled timer,
// or from a previous incarnation, is ignored.
type NoticeGapElapsed struct {
	Gen uint64
}
