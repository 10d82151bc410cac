package messages

// HealthCheckDue is sent by the Dispatcher to the HealthMonitor after every R picks. Notices
// that arrive while a round is running start at most one more round when it ends.
type HealthCheckDue struct{}

// HealthTick is the HealthMonitor's own timer message (scheduled with SendOnce and re-armed
// when it is handled): time for a periodic round.
type HealthTick struct {
	// Gen is the timer generation; a tick from a cancelled timer is ignored.
	Gen uint64
}

// BackendHealth is what one probe found about one backend.
type BackendHealth struct {
	// Up is true when the backend answered the health check correctly.
	Up bool
	// Errors and Entries are the backend's own counters (valid only when Up).
	Errors  int64
	Entries int64
	// Reason says why the backend is down (empty when Up), for logs.
	Reason string
}

// ProbeFinished is sent by a probe goroutine to its HealthMonitor with the result of probing
// backend Index in round Round.
type ProbeFinished struct {
	Round  uint64
	Index  int
	Health BackendHealth
}

// HealthReport is sent by the HealthMonitor to the Dispatcher at the end of every round. Backends
// is indexed like the configured backend list; the Dispatcher must not modify it.
type HealthReport struct {
	Round    uint64
	Backends []BackendHealth
}

// RunHealthRound asks the HealthMonitor for a round now (sent by tests and operators; treated
// like an R notice).
type RunHealthRound struct{}
