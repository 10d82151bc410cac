package dispatcher

import "slices"

// Ring sizes for the hash policy.
const (
	// hashPointsPerWeight is how many points a backend has on the ring per unit of Weight:
	// enough that each one's share of the keys is within about a tenth of its weight's share.
	hashPointsPerWeight = 128
	// hashMaxPoints caps the ring; past it every backend gets proportionally fewer points
	// (at least one), keeping a prefix of the ones it would have had.
	hashMaxPoints = 1 << 16
)

// Hash is consistent hashing with bounded loads. Each candidate owns points on a ring, a number
// proportional to its configured Weight, at positions that depend only on its index in the
// listing and the point's number, so every process with the same listing builds the same ring.
// A request's key is looked up clockwise from its own position: the first candidate met that is
// Avail and has fewer requests in flight than its bound takes it, where
//
//	bound = ceil(c × (in flight over the Up candidates + 1) × Eff / Σ Eff over the Avail ones)
//
// with c the balance factor. So a key sticks to one backend while that backend is up and not
// overloaded; when it leaves, its keys (and only its keys) go to the next backends on the ring
// and come back when it returns; a hot key spills to the next backend once its own is at its
// bound. The ring follows the configured weights and is rebuilt when they or the number of
// candidates change; slow start acts through Eff in the bound instead, so a ramping backend
// gets its keys back without reshuffling the others.
//
// A request without a key (hasKey false) is placed as LeastRequest would. The zero value is
// ready to use, with c = 1.25.
type Hash struct {
	// balance is c, at least 1; zero means defaultHashBalance.
	balance float64
	// ring is the candidates' points, sorted by position.
	ring []ringPoint
	// weights is the Weight of each candidate the ring was built for.
	weights []int
	// seen marks, with the walk's generation number gen, the candidates a walk has met.
	seen []uint32
	gen  uint32
	// keyless places requests without a key.
	keyless LeastRequest
}

// ringPoint is one point on the hash ring: a position, and the candidate owning it.
type ringPoint struct {
	pos uint64
	idx int32
}

// NewHash returns a Hash with load bound factor balance (zero means 1.25; otherwise at least
// 1, see PolicyConfig.HashBalance).
func NewHash(balance float64) *Hash { return &Hash{balance: balance} }

// Choose implements Policy.
func (p *Hash) Choose(cands []Candidate, key uint64, hasKey bool) int {
	if !hasKey {
		return p.keyless.Choose(cands, 0, false)
	}
	inFlight, effAvail, nAvail := 0, 0.0, 0
	for i := range cands {
		c := &cands[i]
		if c.Up {
			inFlight += c.InFlight
		}
		if c.Avail {
			effAvail += c.Eff
			nAvail++
		}
	}
	if nAvail == 0 {
		return -1
	}
	p.build(cands)
	balance := p.balance
	if balance == 0 {
		balance = defaultHashBalance
	}
	// share × Eff is a candidate's bound before rounding up; InFlight < ceil(x) is the same as
	// InFlight < x for a whole InFlight.
	share := balance * float64(inFlight+1) / effAvail

	p.gen++
	if p.gen == 0 { // wrapped: old marks could read as this walk's
		clear(p.seen)
		p.gen = 1
	}
	first, met := -1, 0
	j := p.search(keyPos(key))
	for range p.ring {
		idx := int(p.ring[j].idx)
		if j++; j == len(p.ring) {
			j = 0
		}
		if p.seen[idx] == p.gen {
			continue
		}
		p.seen[idx] = p.gen
		c := &cands[idx]
		if !c.Avail {
			continue
		}
		if float64(c.InFlight) < share*c.Eff {
			return idx
		}
		if first < 0 {
			first = idx
		}
		if met++; met == nAvail {
			break
		}
	}
	// Not reached while the bounds hold (they add up to more than what is in flight), but
	// rounding must not leave a request without a backend.
	return first
}

// search returns the index of the first point at or after pos, going round.
func (p *Hash) search(pos uint64) int {
	lo, hi := 0, len(p.ring)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.ring[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(p.ring) {
		return 0
	}
	return lo
}

// build makes the ring for cands unless it was made for their number and weights already.
func (p *Hash) build(cands []Candidate) {
	if len(p.weights) == len(cands) {
		same := true
		for i := range cands {
			if p.weights[i] != ringWeight(&cands[i]) {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	p.weights = resize(p.weights, len(cands))
	p.seen = resize(p.seen, len(cands))
	p.gen = 0
	sum := 0
	for i := range cands {
		p.weights[i] = ringWeight(&cands[i])
		sum += p.weights[i]
	}
	perWeight, scaled := hashPointsPerWeight, sum*hashPointsPerWeight > hashMaxPoints
	p.ring = p.ring[:0]
	for i, w := range p.weights {
		n := w * perWeight
		if scaled {
			n = max(1, w*hashMaxPoints/sum)
		}
		for r := range n {
			pos := mix64(uint64(i)<<32 | uint64(r))
			p.ring = append(p.ring, ringPoint{pos: pos, idx: int32(i)})
		}
	}
	slices.SortFunc(p.ring, func(a, b ringPoint) int {
		switch {
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return int(a.idx - b.idx)
	})
}

// ringWeight is the weight c's points on the ring are for: its configured Weight, at least 1.
func ringWeight(c *Candidate) int { return max(1, c.Weight) }

// keyPos is key's position on the ring. The salt keeps keys out of the points' own domain: keys
// 0, 1, 2, ... must not land exactly on candidate 0's points 0, 1, 2, ...
func keyPos(key uint64) uint64 { return mix64(key ^ 0x6a09e667f3bcc909) }

// mix64 scrambles x into a well spread 64-bit value, the same in every process: the splitmix64
// finalizer (Steele, Lea and Flood), a bijection, so distinct ring points never collide.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var _ Policy = (*Hash)(nil)
