package health

import "github.com/loadbalancer/loadbalancer/messages"

// verdict is the monitor's view of whether a backend is up.
type verdict uint8

const (
	unknown verdict = iota // not probed yet by this incarnation
	isUp
	isDown
)

func verdictOf(up bool) verdict {
	if up {
		return isUp
	}
	return isDown
}

// backendState is what the monitor knows of one backend across rounds. Owned by Receive.
type backendState struct {
	verdict verdict
	// streak counts the latest probes in a row that disagree with verdict (failed ones while
	// up, passed ones while down); it is zero after a probe that agrees, and after a change.
	streak int
	// lastFailed is true when the latest probe failed.
	lastFailed bool
	// reason is the latest failed probe's reason (empty while none has failed).
	reason string
	// passed is the latest passed probe's result: its counters, when Counted.
	passed messages.BackendHealth
}

// observe takes one probe's result into account with the thresholds rise and fall (each at
// least 1), and reports whether the verdict changed. The first result decides at once.
func (b *backendState) observe(h messages.BackendHealth, rise, fall int) (changed bool) {
	b.lastFailed = !h.Up
	if h.Up {
		b.passed = h
	} else {
		b.reason = h.Reason
		if b.reason == "" {
			b.reason = "probe failed" // results come from this package's probes, which always say why
		}
	}
	now := verdictOf(h.Up)
	switch {
	case b.verdict == unknown:
		b.verdict, b.streak = now, 0
		return true
	case now == b.verdict:
		b.streak = 0
		return false
	}
	b.streak++
	need := fall
	if b.verdict == isDown {
		need = rise
	}
	if b.streak < need {
		return false
	}
	b.verdict, b.streak = now, 0
	return true
}

// report is the backend's line in a HealthReport: the verdict, the latest passed probe's
// counters when it counted them, and the latest failure's reason while the backend is down or
// its latest probe failed.
func (b *backendState) report() messages.BackendHealth {
	h := messages.BackendHealth{Up: b.verdict == isUp}
	if b.passed.Counted {
		h.Counted, h.Errors, h.Entries = true, b.passed.Errors, b.passed.Entries
	}
	if !h.Up || b.lastFailed {
		h.Reason = b.reason
	}
	return h
}
