package dispatcher

// LeastRequest chooses the available candidate with the fewest requests in flight per unit of
// effective weight, (InFlight+1)/Eff; the +1 counts the request being placed, so that with
// nothing in flight the heavier backend still wins. Among equals it rotates: the first one at or
// after the candidate after its previous choice, so light load still spreads over every
// backend instead of piling onto the first listed. The zero value is ready to use.
type LeastRequest struct {
	// next is where the search for a tie's winner starts: one past the previous choice.
	next int
}

// Choose implements Policy.
func (p *LeastRequest) Choose(cands []Candidate, _ uint64, _ bool) int {
	n := len(cands)
	if p.next >= n {
		p.next = 0
	}
	best, bestDist := -1, 0
	for i := range cands {
		c := &cands[i]
		if !c.Avail {
			continue
		}
		// dist is how far i comes after next, going round.
		dist := i - p.next
		if dist < 0 {
			dist += n
		}
		if best < 0 {
			best, bestDist = i, dist
			continue
		}
		b := &cands[best]
		// (c.InFlight+1)/c.Eff against (b.InFlight+1)/b.Eff, without dividing.
		l, r := float64(c.InFlight+1)*b.Eff, float64(b.InFlight+1)*c.Eff
		if l < r || (l == r && dist < bestDist) {
			best, bestDist = i, dist
		}
	}
	if best >= 0 {
		p.next = best + 1
	}
	return best
}

var _ Policy = (*LeastRequest)(nil)
