package messages

// ProbePanicked is sent by a HealthMonitor probe goroutine to its HealthMonitor when the probe
// of backend Index in round Round panicked; the HealthMonitor re-panics in Receive so its
// supervisor sees the crash. Value and Stack are the recovered value and the goroutine's stack,
// owned by the receiver after the send.
type ProbePanicked struct {
	Round uint64
	Index int
	Value any
	Stack []byte
}
