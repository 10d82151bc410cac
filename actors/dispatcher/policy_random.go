package dispatcher

import "math/rand/v2"

// Random chooses an available candidate at random, each with probability proportional to its
// effective weight. The zero value is ready to use (seeded at random on its first pick);
// NewRandom gives a reproducible sequence.
type Random struct {
	rng *rand.Rand
}

// NewRandom returns a Random drawing from a PCG source seeded with seed (zero means a random
// seed).
func NewRandom(seed uint64) *Random { return &Random{rng: newRand(seed)} }

// Choose implements Policy.
func (p *Random) Choose(cands []Candidate, _ uint64, _ bool) int {
	if p.rng == nil {
		p.rng = newRand(0)
	}
	total, n, first := availEff(cands)
	if n <= 1 {
		return first
	}
	return pickWeighted(p.rng, cands, total, -1)
}

// newRand returns a random source of its own (a PCG, no lock) seeded with seed, or with a
// random seed when seed is zero.
func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return rand.New(rand.NewPCG(seed, mix64(seed)))
}

// availEff returns the sum of Eff over the available candidates, how many there are, and the
// index of the first (-1 when none is).
func availEff(cands []Candidate) (total float64, n, first int) {
	first = -1
	for i := range cands {
		c := &cands[i]
		if !c.Avail {
			continue
		}
		if first < 0 {
			first = i
		}
		total += c.Eff
		n++
	}
	return total, n, first
}

// pickWeighted draws an available candidate other than skip (-1 for none), each with
// probability proportional to its Eff; total must be the sum of Eff over those candidates, and
// at least one must exist.
func pickWeighted(rng *rand.Rand, cands []Candidate, total float64, skip int) int {
	r := rng.Float64() * total
	last := -1
	for i := range cands {
		c := &cands[i]
		if !c.Avail || i == skip {
			continue
		}
		last = i
		if r -= c.Eff; r < 0 {
			return i
		}
	}
	// Rounding left a sliver of r past the last one.
	return last
}

// pickTwo draws two distinct available candidates, each weighted by Eff, for the policies that
// take the better of two random choices. b is -1 when only one candidate is available (a is
// then that one), and both are -1 when none is.
func pickTwo(rng *rand.Rand, cands []Candidate) (a, b int) {
	total, n, first := availEff(cands)
	if n <= 1 {
		return first, -1
	}
	a = pickWeighted(rng, cands, total, -1)
	b = pickWeighted(rng, cands, total-cands[a].Eff, a)
	return a, b
}

var _ Policy = (*Random)(nil)
