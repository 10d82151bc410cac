package dispatcher

// RoundRobin is smooth weighted round robin: every pick, each available candidate's current
// weight grows by its effective weight, the one with the highest current weight (the first
// listed among equals) is chosen, and its current weight drops by the total effective weight of
// the available candidates. Picks interleave in proportion to Eff (weights 5, 1, 1 give
// a a b a c a a), and equal weights rotate strictly in listing order.
//
// A candidate that is not Avail keeps its current weight untouched while it is out, so the
// others' sequence goes on as if it were not listed and it rejoins where it left. Credit a
// candidate had built up when the others' set changed is honoured first, so right after a change
// it may get a few picks in a row. The zero value is ready to use.
type RoundRobin struct {
	// cur is each candidate's current weight in units of 1/rrScale of weight, parallel to the
	// candidates; reset when their number changes. Whole numbers keep the arithmetic exact, so
	// equal fractional weights still tie and rotate.
	cur []int64
}

// rrScale is the fixed-point scale of RoundRobin's weights: Eff is rounded to a multiple of
// 1/rrScale (at least that).
const rrScale = 1 << 20

// Choose implements Policy.
func (p *RoundRobin) Choose(cands []Candidate, _ uint64, _ bool) int {
	if len(p.cur) != len(cands) {
		p.cur = resize(p.cur, len(cands))
	}
	best, total := -1, int64(0)
	for i := range cands {
		c := &cands[i]
		if !c.Avail {
			continue
		}
		w := max(1, int64(c.Eff*rrScale+0.5))
		p.cur[i] += w
		total += w
		if best < 0 || p.cur[i] > p.cur[best] {
			best = i
		}
	}
	if best >= 0 {
		p.cur[best] -= total
	}
	return best
}

// resize returns s with length n and every element zero, reusing its array when it is large
// enough.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

var _ Policy = (*RoundRobin)(nil)
