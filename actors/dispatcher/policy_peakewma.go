package dispatcher

// PeakEWMA is the power of two choices on expected cost, as Finagle and Linkerd balance: it draws
// two distinct available candidates at random, each weighted by its effective weight, and takes
// the cheaper, where cost = Latency × (InFlight+1) / Eff, the time the request is expected to
// wait behind the ones already there. A candidate with no latency sample yet costs nothing, so
// a new or returning backend is probed at once; equal costs go to the one with fewer in flight
// (then the first drawn). With a single available candidate it takes that one.
//
// The zero value is ready to use (seeded at random on its first pick); NewPeakEWMA gives a
// reproducible sequence.
type PeakEWMA struct {
	two twoChoices
}

// NewPeakEWMA returns a PeakEWMA drawing from a PCG source seeded with seed (zero means a random
// seed).
func NewPeakEWMA(seed uint64) *PeakEWMA { return &PeakEWMA{two: twoChoices{rng: newRand(seed)}} }

// Choose implements Policy.
func (p *PeakEWMA) Choose(cands []Candidate, _ uint64, _ bool) int {
	a, b := p.two.draw(cands)
	if b < 0 {
		return a
	}
	ca, cb := &cands[a], &cands[b]
	costA, costB := ewmaCost(ca), ewmaCost(cb)
	if costB < costA || (costB == costA && cb.InFlight < ca.InFlight) {
		return b
	}
	return a
}

// ewmaCost is c's expected cost in nanoseconds: its peak-EWMA latency times the requests it
// would have in flight with this one, per unit of effective weight. Zero without a sample.
func ewmaCost(c *Candidate) float64 {
	return float64(c.Latency) * float64(c.InFlight+1) / c.Eff
}

var _ Policy = (*PeakEWMA)(nil)
