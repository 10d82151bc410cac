package dispatcher

import "math/rand/v2"

// P2C is the power of two choices: it draws two distinct available candidates at random, each
// weighted by its effective weight, and takes the one with fewer requests in flight per unit of
// effective weight, (InFlight+1)/Eff (the first drawn on a tie). With a single available
// candidate it takes that one. Checking two instead of all keeps a burst of picks made on the
// same view of the load from all landing on the one least loaded backend.
//
// The zero value is ready to use (seeded at random on its first pick); NewP2C gives a
// reproducible sequence.
type P2C struct {
	two twoChoices
}

// NewP2C returns a P2C drawing from a PCG source seeded with seed (zero means a random seed).
func NewP2C(seed uint64) *P2C { return &P2C{two: twoChoices{rng: newRand(seed)}} }

// Choose implements Policy.
func (p *P2C) Choose(cands []Candidate, _ uint64, _ bool) int {
	a, b := p.two.draw(cands)
	if b < 0 {
		return a
	}
	ca, cb := &cands[a], &cands[b]
	// (cb.InFlight+1)/cb.Eff < (ca.InFlight+1)/ca.Eff, without dividing.
	if float64(cb.InFlight+1)*ca.Eff < float64(ca.InFlight+1)*cb.Eff {
		return b
	}
	return a
}

// twoChoices draws the two candidates of the power-of-two-choices policies (P2C, PeakEWMA).
type twoChoices struct {
	rng *rand.Rand // nil until the first draw when the policy is a zero value
}

// draw returns two distinct available candidates drawn by effective weight, or the only one and
// -1, or -1 and -1 when none is available.
func (t *twoChoices) draw(cands []Candidate) (a, b int) {
	if t.rng == nil {
		t.rng = newRand(0)
	}
	return pickTwo(t.rng, cands)
}

var _ Policy = (*P2C)(nil)
