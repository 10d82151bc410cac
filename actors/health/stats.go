package health

import (
	"github.com/loadbalancer/loadbalancer/messages"
)

// count takes one probe's result into the backend's counts and its recent history.
func (m *Monitor) count(f *messages.ProbeFinished) {
	c := &m.checks[f.Index]
	if f.Health.Up {
		c.Passed++
	} else {
		c.Failed++
	}
	c.Duration.Observe(f.Took)
	if len(c.History) == messages.HealthHistory {
		copy(c.History, c.History[1:])
		c.History = c.History[:len(c.History)-1]
	}
	c.History = append(c.History, messages.CheckResult{At: f.At, OK: f.Health.Up, Took: f.Took, Reason: f.Health.Reason})
}

// stats is the HealthMonitor's answer to a StatsRequest: a copy of its counts.
func (m *Monitor) stats() *messages.HealthStats {
	s := &messages.HealthStats{Rounds: m.rounds, Kind: m.cfg.Check.Kind.String(), Interval: m.cfg.interval(),
		Backends: make([]messages.BackendChecks, len(m.checks))}
	for i, c := range m.checks {
		c.History = append([]messages.CheckResult(nil), c.History...)
		s.Backends[i] = c
	}
	return s
}
