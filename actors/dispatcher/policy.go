package dispatcher

import "time"

// Candidate is what a balancing policy sees of one backend. The Dispatcher keeps one per
// configured backend, in listing order, as its own state, and updates it as picks, releases,
// health reports and ejections happen; a policy reads it and never changes it.
type Candidate struct {
	// Avail is true when the backend may take this request: up (or not yet probed), not
	// ejected (a stall ejects), below its in-flight limit, and not already tried by this request. A
	// policy must never choose a candidate that is not Avail.
	Avail bool
	// Up is true when the backend is up or not yet probed (Avail implies Up). The hash policy
	// uses it to tell a backend that left (its keys move) from one that is only full.
	Up bool
	// Entries and Errors are the backend's counters from the last classic health report plus
	// the picks made since (the classic rule's load estimate).
	Entries, Errors int64
	// InFlight is how many requests this load balancer has on the backend now.
	InFlight int
	// Weight is the configured weight (at least 1).
	Weight int
	// Eff is the effective weight: Weight scaled down by slow start while the backend ramps up
	// after coming back (Weight itself otherwise). Always > 0.
	Eff float64
	// Latency is the peak-EWMA of the backend's request latency (0 before the first sample).
	Latency time.Duration
}

// Policy chooses a backend for a request. A policy is owned by its Dispatcher (one goroutine at a
// time, no locks) and may keep state between calls (a round-robin position, a hash ring, a random
// source).
type Policy interface {
	// Choose returns the index of the chosen candidate, which must be Avail, or -1 when none
	// is. key is the request's hash key, valid when hasKey (see messages.PickBackend.Key).
	Choose(cands []Candidate, key uint64, hasKey bool) int
}

// LeastLoaded is the classic contract's rule: fewest entries, then fewest errors, then listing
// order, among the candidates available. With weights, entries are compared per unit of
// effective weight (with the default weight of 1 everywhere, exactly the classic rule).
type LeastLoaded struct{}

// Choose implements Policy.
func (LeastLoaded) Choose(cands []Candidate, _ uint64, _ bool) int {
	best := -1
	for i := range cands {
		c := &cands[i]
		if !c.Avail {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &cands[best]
		// c.Entries/c.Eff < b.Entries/b.Eff, without dividing.
		l, r := float64(c.Entries)*b.Eff, float64(b.Entries)*c.Eff
		if l < r || (l == r && c.Errors < b.Errors) {
			best = i
		}
	}
	return best
}

var _ Policy = LeastLoaded{}
