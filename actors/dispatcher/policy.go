package dispatcher

// Candidate is what a balancing policy sees of one backend.
type Candidate struct {
	// Up is true when the backend is up or not yet probed.
	Up bool
	// Entries and Errors are the backend's counters from the last health report plus the
	// picks made since.
	Entries, Errors int64
	// InFlight is how many requests this load balancer has on it now.
	InFlight int
}

// Policy chooses a backend for a request.
type Policy interface {
	// Choose returns the index of the chosen candidate, or -1 when none is up.
	Choose(cands []Candidate) int
}

// LeastLoaded is the classic contract's rule: fewest entries, then fewest errors, then listing
// order, among the backends that are up.
type LeastLoaded struct{}

// Choose implements Policy.
func (LeastLoaded) Choose(cands []Candidate) int {
	best := -1
	for i := range cands {
		c := &cands[i]
		if !c.Up {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &cands[best]
		if c.Entries < b.Entries || (c.Entries == b.Entries && c.Errors < b.Errors) {
			best = i
		}
	}
	return best
}

var _ Policy = LeastLoaded{}
