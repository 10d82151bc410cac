package dispatcher

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// testSeed seeds every random policy in these tests, so a failure reproduces.
const testSeed = 42

// weighted returns available, up candidates with the given weights (Eff = Weight).
func weighted(weights ...int) []Candidate {
	cands := make([]Candidate, len(weights))
	for i, w := range weights {
		cands[i] = Candidate{Avail: true, Up: true, Weight: w, Eff: float64(w)}
	}
	return cands
}

// mustPolicy returns NewPolicy's policy for name, seeded with testSeed.
func mustPolicy(t testing.TB, name string) Policy {
	t.Helper()
	p, err := NewPolicy(PolicyConfig{Name: name, Seed: testSeed})
	if err != nil {
		t.Fatalf("NewPolicy(%q): %v", name, err)
	}
	return p
}

// picks returns how many of n picks p gives each candidate (the key, when hasKey, varies).
func picks(p Policy, cands []Candidate, n int, hasKey bool) []int {
	counts := make([]int, len(cands))
	for k := range n {
		if b := p.Choose(cands, uint64(k), hasKey); b >= 0 {
			counts[b]++
		}
	}
	return counts
}

// checkShares fails unless each candidate's share of counts is within tol (relative) of its
// share of want.
func checkShares(t *testing.T, counts []int, want []float64, tol float64) {
	t.Helper()
	var n, sum float64
	for i := range counts {
		n += float64(counts[i])
		sum += want[i]
	}
	for i := range counts {
		got, exp := float64(counts[i])/n, want[i]/sum
		if math.Abs(got-exp) > tol*exp {
			t.Errorf("candidate %d: got share %.4f, want %.4f ± %.0f%% (counts %v)", i, got, exp, tol*100, counts)
		}
	}
}

func TestPolicyNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     PolicyConfig
		wantErr string // "" for none
	}{
		// The zero config must work: Config's zero value is the classic rule.
		{name: "zero value", cfg: PolicyConfig{}},
		{name: "classic", cfg: PolicyConfig{Name: "classic"}},
		{name: "round-robin", cfg: PolicyConfig{Name: "round-robin"}},
		{name: "least-request", cfg: PolicyConfig{Name: "least-request"}},
		{name: "random", cfg: PolicyConfig{Name: "random", Seed: 7}},
		{name: "p2c", cfg: PolicyConfig{Name: "p2c"}},
		{name: "peak-ewma", cfg: PolicyConfig{Name: "peak-ewma"}},
		{name: "hash", cfg: PolicyConfig{Name: "hash", HashBalance: 2}},
		// 1 is the tightest bound allowed: exactly the fair share, rounded up.
		{name: "hash balance 1", cfg: PolicyConfig{Name: "hash", HashBalance: 1}},
		// Names are exact, so a typo is caught at start-up, not silently defaulted.
		{name: "unknown name", cfg: PolicyConfig{Name: "Round-Robin"}, wantErr: `unknown policy "Round-Robin"`},
		// Below 1 the bounds add up to less than what is in flight: keys would bounce.
		{name: "hash balance below 1", cfg: PolicyConfig{Name: "hash", HashBalance: 0.5}, wantErr: "hash balance"},
		// NaN compares false with everything, so it must be caught explicitly.
		{name: "hash balance NaN", cfg: PolicyConfig{Name: "hash", HashBalance: math.NaN()}, wantErr: "hash balance"},
		// An infinite bound would never spill: that is "no bound", which is not what hash promises.
		{name: "hash balance +Inf", cfg: PolicyConfig{Name: "hash", HashBalance: math.Inf(1)}, wantErr: "hash balance"},
		// A negative value is not "zero means the default".
		{name: "hash balance negative", cfg: PolicyConfig{Name: "hash", HashBalance: -1.25}, wantErr: "hash balance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("got %v, %v; want a policy and no error", p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %T and no error, want an error containing %q", p, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "dispatcher: ") {
				t.Errorf("got error %q, want one starting with %q and containing %q", err, "dispatcher: ", tt.wantErr)
			}
		})
	}
}

func TestPolicyNewUnknownListsNames(t *testing.T) {
	_, err := NewPolicy(PolicyConfig{Name: "fastest"})
	if err == nil {
		t.Fatal("got no error for an unknown policy, want one")
	}
	for _, name := range PolicyNames {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("got error %q, want it to list %q", err, name)
		}
	}
}

func TestPolicyNamesAllWork(t *testing.T) {
	for _, name := range PolicyNames {
		if b := mustPolicy(t, name).Choose(weighted(1, 1), 1, true); b < 0 {
			t.Errorf("%s: got %d with two candidates available, want one of them", name, b)
		}
	}
	if _, ok := mustPolicy(t, "").(LeastLoaded); !ok {
		t.Errorf("got %T for the empty name, want LeastLoaded", mustPolicy(t, ""))
	}
}

func TestPolicyNoneAvailable(t *testing.T) {
	down := weighted(1, 2, 3)
	full := weighted(1, 2, 3)
	for i := range down {
		down[i].Avail, down[i].Up = false, false
		full[i].Avail = false
		full[i].InFlight = 5
	}
	tests := []struct {
		name  string
		cands []Candidate
	}{
		// No backends configured at all.
		{name: "nil", cands: nil},
		// All down: nothing to choose, and the hash ring must not be walked forever.
		{name: "all down", cands: down},
		// Up but unavailable (full, ejected, tried): Up alone must not make a candidate eligible.
		{name: "all up but unavailable", cands: full},
	}
	for _, name := range PolicyNames {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				p := mustPolicy(t, name)
				for _, hasKey := range []bool{false, true} {
					if got := p.Choose(tt.cands, 99, hasKey); got != -1 {
						t.Errorf("hasKey %v: got %d, want -1", hasKey, got)
					}
				}
			})
		}
	}
}

// TestPolicyOnlyAvailable throws random candidate sets at every policy: it must choose an
// available candidate whenever there is one, and -1 only when there is none.
func TestPolicyOnlyAvailable(t *testing.T) {
	for _, name := range PolicyNames {
		t.Run(name, func(t *testing.T) {
			p := mustPolicy(t, name)
			rng := rand.New(rand.NewPCG(1, 2))
			for round := range 5000 {
				n := 1 + rng.IntN(8)
				if round%500 == 0 {
					n = 1 + rng.IntN(60) // now and then a different size: rings and states resize
				}
				cands := make([]Candidate, n)
				avail := 0
				for i := range cands {
					c := &cands[i]
					c.Up = rng.IntN(5) > 0
					c.Avail = c.Up && rng.IntN(3) > 0
					c.Weight = 1 + rng.IntN(4)
					c.Eff = float64(c.Weight) * (0.05 + 0.95*rng.Float64())
					c.InFlight = rng.IntN(10)
					c.Latency = time.Duration(rng.IntN(3)) * time.Millisecond
					c.Entries, c.Errors = int64(rng.IntN(20)), int64(rng.IntN(3))
					if c.Avail {
						avail++
					}
				}
				got := p.Choose(cands, rng.Uint64(), rng.IntN(2) == 0)
				switch {
				case avail == 0 && got != -1:
					t.Fatalf("round %d: got %d with none available, want -1", round, got)
				case avail > 0 && (got < 0 || got >= n):
					t.Fatalf("round %d: got %d with %d available, want an index in [0,%d)", round, got, avail, n)
				case avail > 0 && !cands[got].Avail:
					t.Fatalf("round %d: got %d, which is not Avail", round, got)
				}
			}
		})
	}
}

// TestPolicySingleAvailable: every policy must take the one available candidate, wherever it
// is listed and however loaded or slow it is.
func TestPolicySingleAvailable(t *testing.T) {
	for _, name := range PolicyNames {
		for want := range 4 {
			cands := weighted(1, 2, 3, 4)
			for i := range cands {
				cands[i].Avail = i == want
			}
			cands[want].InFlight = 1000
			cands[want].Latency = time.Second
			p := mustPolicy(t, name)
			for k := range 20 {
				if got := p.Choose(cands, uint64(k), k%2 == 0); got != want {
					t.Fatalf("%s: got %d, want %d, the only one available", name, got, want)
				}
			}
		}
	}
}

func TestPolicyRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []float64 // Eff of each candidate
		avail   []bool    // nil means all available
		want    string    // candidates as letters, a = 0
	}{
		// The textbook smooth interleaving: the heavy one is spread out, not five in a row.
		{name: "5,1,1", weights: []float64{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		// Equal weights are plain rotation in listing order.
		{name: "equal", weights: []float64{1, 1, 1, 1}, want: "abcd" + "abcd" + "abcd"},
		// Equal weights that are not 1 (slow start can give any Eff) still rotate strictly.
		{name: "equal fractional", weights: []float64{0.3, 0.3, 0.3}, want: "abc" + "abc" + "abc"},
		{name: "2,1", weights: []float64{2, 1}, want: "aba" + "aba"},
		{name: "1,2,3", weights: []float64{1, 2, 3}, want: "cbacbc" + "cbacbc"},
		// An unavailable candidate drops out; the others rotate among themselves.
		{name: "middle unavailable", weights: []float64{1, 1, 1}, avail: []bool{true, false, true}, want: "acacac"},
		{name: "heavy unavailable", weights: []float64{5, 1, 1}, avail: []bool{false, true, true}, want: "bcbcbc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := make([]Candidate, len(tt.weights))
			for i, w := range tt.weights {
				cands[i] = Candidate{Avail: tt.avail == nil || tt.avail[i], Up: true, Weight: 1, Eff: w}
			}
			p := mustPolicy(t, "round-robin")
			var got strings.Builder
			for range len(tt.want) {
				got.WriteByte(byte('a' + p.Choose(cands, 0, false)))
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got.String(), tt.want)
			}
		})
	}
}

// TestPolicyRoundRobinRejoin: a candidate that leaves and comes back does not upset the
// proportions afterwards, and while it is out the others keep their own proportions.
func TestPolicyRoundRobinRejoin(t *testing.T) {
	cands := weighted(5, 1, 1)
	p := mustPolicy(t, "round-robin")
	for range 3 { // leave mid-cycle
		p.Choose(cands, 0, false)
	}
	cands[0].Avail = false
	// c is owed the picks it was due in a's cycle and catches up first, then b and c alternate.
	if got := picks(p, cands, 100, false); got[0] != 0 || got[1] < 46 || got[1] > 54 {
		t.Errorf("while a is out: got %v, want [0 50 50] ± 4", got)
	}
	cands[0].Avail = true
	got := picks(p, cands, 700, false)
	for i, want := range []int{500, 100, 100} {
		if d := got[i] - want; d < -2 || d > 2 {
			t.Errorf("after a is back: got %v picks of %d, want %d ± 2 (%v)", got[i], i, want, got)
		}
	}
}

// TestPolicyRoundRobinChurn: under random churn of availability and effective weights (slow
// start, retries), the current weights stay bounded instead of drifting away.
func TestPolicyRoundRobinChurn(t *testing.T) {
	weights := []float64{3, 0.2, 7, 1, 1}
	cands := make([]Candidate, len(weights))
	total := 0.0
	for i, w := range weights {
		cands[i] = Candidate{Avail: true, Up: true, Weight: 1, Eff: w}
		total += w
	}
	p := &RoundRobin{}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		for i := range cands {
			if rng.IntN(4) == 0 {
				cands[i].Avail = !cands[i].Avail
			}
			if rng.IntN(4) == 0 {
				cands[i].Eff = weights[i] * (0.01 + rng.Float64())
			}
		}
		if b := p.Choose(cands, 0, false); b >= 0 && rng.IntN(2) == 0 {
			cands[b].Avail = false // tried: a retry must go elsewhere
		}
		for i, c := range p.cur {
			if w := float64(c) / rrScale; math.Abs(w) > total {
				t.Fatalf("current weight of %d: got %v, want within ±%v", i, w, total)
			}
		}
	}
}

func TestPolicyLeastRequest(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
		eff      []float64 // nil means 1 each
		avail    []bool    // nil means all available
		want     []int     // successive picks (the load does not change between them)
	}{
		// The plain case: the one with fewest in flight, every time.
		{name: "least loaded", inFlight: []int{3, 1, 2}, want: []int{1, 1, 1}},
		// In flight counts per unit of weight: 3+1 over 4 beats 1+1 over 1.
		{name: "per unit of weight", inFlight: []int{3, 1}, eff: []float64{4, 1}, want: []int{0, 0}},
		// Idle backends: (0+1)/Eff favours the heavier one, not the first listed.
		{name: "idle heavier wins", inFlight: []int{0, 0}, eff: []float64{1, 2}, want: []int{1, 1}},
		// Light load must still spread: equal loads rotate instead of all going to a.
		{name: "all tied rotate", inFlight: []int{0, 0, 0}, want: []int{0, 1, 2, 0, 1, 2}},
		// Rotation among the tied ones only: b is busier and is never taken.
		{name: "tied subset rotate", inFlight: []int{2, 5, 2}, want: []int{0, 2, 0, 2}},
		// The least loaded, but unavailable, is skipped; the tie behind it rotates.
		{name: "least loaded unavailable", inFlight: []int{4, 0, 4, 4}, avail: []bool{true, false, true, true}, want: []int{0, 2, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := make([]Candidate, len(tt.inFlight))
			for i := range cands {
				cands[i] = Candidate{Avail: tt.avail == nil || tt.avail[i], Up: true, Weight: 1, Eff: 1, InFlight: tt.inFlight[i]}
				if tt.eff != nil {
					cands[i].Eff = tt.eff[i]
				}
			}
			p := mustPolicy(t, "least-request")
			got := make([]int, len(tt.want))
			for i := range got {
				got[i] = p.Choose(cands, 0, false)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPolicyLeastRequestBalances: placing requests one after another onto idle backends with
// weights 1, 2, 3 fills them in that proportion.
func TestPolicyLeastRequestBalances(t *testing.T) {
	cands := weighted(1, 2, 3)
	p := mustPolicy(t, "least-request")
	for range 60 {
		cands[p.Choose(cands, 0, false)].InFlight++
	}
	got := []int{cands[0].InFlight, cands[1].InFlight, cands[2].InFlight}
	for i, want := range []int{10, 20, 30} {
		if d := got[i] - want; d < -1 || d > 1 {
			t.Errorf("got %v in flight, want about [10 20 30]", got)
			break
		}
	}
}

func TestPolicyRandomDistribution(t *testing.T) {
	tests := []struct {
		name  string
		eff   []float64
		avail []bool // nil means all available
		want  []float64
	}{
		// Uniform when the weights are equal.
		{name: "equal", eff: []float64{1, 1, 1, 1}, want: []float64{1, 1, 1, 1}},
		// Proportional to Eff, including a fractional one (slow start).
		{name: "weighted", eff: []float64{1, 2, 3, 0.5}, want: []float64{1, 2, 3, 0.5}},
		// An unavailable candidate's weight is not handed to its neighbour in the listing.
		{name: "one unavailable", eff: []float64{1, 5, 1, 1}, avail: []bool{true, false, true, true}, want: []float64{1, 0, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := make([]Candidate, len(tt.eff))
			for i, e := range tt.eff {
				cands[i] = Candidate{Avail: tt.avail == nil || tt.avail[i], Up: true, Weight: 1, Eff: e}
			}
			checkShares(t, picks(mustPolicy(t, "random"), cands, 100000, false), tt.want, 0.05)
		})
	}
}

// TestPolicyRandomSeed: the same seed gives the same picks; that is what Seed is for.
func TestPolicyRandomSeed(t *testing.T) {
	for _, name := range []string{"random", "p2c", "peak-ewma"} {
		cands := weighted(1, 2, 3, 4, 5)
		a, b := mustPolicy(t, name), mustPolicy(t, name)
		for k := range 1000 {
			if x, y := a.Choose(cands, 0, false), b.Choose(cands, 0, false); x != y {
				t.Fatalf("%s: pick %d: got %d and %d from the same seed, want equal", name, k, x, y)
			}
		}
	}
}

// simulate runs a closed loop of conc requests over cands for ticks steps: each tick, a request
// on candidate i finishes with probability done[i] (so its mean latency is 1/done[i] ticks) and
// is replaced at once by a new one placed by p. It returns the picks per candidate.
func simulate(p Policy, cands []Candidate, done []float64, conc, ticks int) []int {
	rng := rand.New(rand.NewPCG(5, 6))
	counts := make([]int, len(cands))
	var reqs []int // the candidate of each request in flight
	for range ticks {
		kept := reqs[:0]
		for _, i := range reqs {
			if rng.Float64() < done[i] {
				cands[i].InFlight--
			} else {
				kept = append(kept, i)
			}
		}
		reqs = kept
		for len(reqs) < conc {
			i := p.Choose(cands, 0, false)
			cands[i].InFlight++
			counts[i]++
			reqs = append(reqs, i)
		}
	}
	return counts
}

func TestPolicyP2CDistribution(t *testing.T) {
	// Equal weights and no load: both of a pair tie, so every candidate gets an equal share.
	checkShares(t, picks(mustPolicy(t, "p2c"), weighted(1, 1, 1, 1), 100000, false), []float64{1, 1, 1, 1}, 0.05)

	// Under a steady load with equal latencies, throughput follows the weights.
	cands := weighted(1, 2, 3)
	counts := simulate(mustPolicy(t, "p2c"), cands, []float64{0.1, 0.1, 0.1}, 60, 20000)
	checkShares(t, counts, []float64{1, 2, 3}, 0.15)
}

func TestPolicyP2CPrefersLessLoaded(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
		eff      []float64
		want     int // with two candidates every draw is the pair, so the answer is certain
	}{
		{name: "fewer in flight", inFlight: []int{5, 2}, eff: []float64{1, 1}, want: 1},
		// Per unit of weight: (7+1)/4 = 2 beats (2+1)/1 = 3.
		{name: "per unit of weight", inFlight: []int{7, 2}, eff: []float64{4, 1}, want: 0},
		// A ramping backend (slow start) counts as more loaded than its in-flight alone says.
		{name: "slow start", inFlight: []int{1, 1}, eff: []float64{1, 0.25}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := []Candidate{
				{Avail: true, Up: true, Weight: 1, Eff: tt.eff[0], InFlight: tt.inFlight[0]},
				{Avail: true, Up: true, Weight: 1, Eff: tt.eff[1], InFlight: tt.inFlight[1]},
			}
			p := mustPolicy(t, "p2c")
			for range 100 {
				if got := p.Choose(cands, 0, false); got != tt.want {
					t.Fatalf("got %d, want %d", got, tt.want)
				}
			}
		})
	}

	// With more candidates, the most loaded one loses every pair it is drawn into.
	cands := weighted(1, 1, 1, 1)
	cands[2].InFlight = 50
	if got := picks(mustPolicy(t, "p2c"), cands, 10000, false); got[2] != 0 {
		t.Errorf("got %d picks of the most loaded, want 0 (%v)", got[2], got)
	}
}

func TestPolicyPeakEWMA(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		latency  []time.Duration
		inFlight []int
		eff      []float64 // nil means 1 each
		want     int       // with two candidates every draw is the pair, so the answer is certain
	}{
		// Equal load: the faster wins.
		{name: "faster", latency: []time.Duration{10 * ms, ms}, inFlight: []int{0, 0}, want: 1},
		// Cost is latency × (in flight + 1): 1ms × 21 = 21ms loses to 10ms × 1.
		{name: "fast but queued", latency: []time.Duration{ms, 10 * ms}, inFlight: []int{20, 0}, want: 1},
		// ... and 1ms × 5 = 5ms beats 10ms × 1.
		{name: "fast and lightly queued", latency: []time.Duration{ms, 10 * ms}, inFlight: []int{4, 0}, want: 0},
		// Per unit of weight: 2ms × 1 / 4 = 0.5ms beats 1ms × 1 / 1.
		{name: "per unit of weight", latency: []time.Duration{2 * ms, ms}, inFlight: []int{0, 0}, eff: []float64{4, 1}, want: 0},
		// No sample yet counts as cheapest, so a new backend gets probed even when busier.
		{name: "unsampled is cheapest", latency: []time.Duration{ms, 0}, inFlight: []int{0, 3}, want: 1},
		// Equal costs: the one with fewer in flight (here both unsampled).
		{name: "tie fewer in flight", latency: []time.Duration{0, 0}, inFlight: []int{2, 1}, want: 1},
		// Equal costs with different loads: 2ms × 2 = 1ms × 4, fewer in flight wins.
		{name: "tie on cost", latency: []time.Duration{2 * ms, ms}, inFlight: []int{1, 3}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := make([]Candidate, 2)
			for i := range cands {
				cands[i] = Candidate{Avail: true, Up: true, Weight: 1, Eff: 1, InFlight: tt.inFlight[i], Latency: tt.latency[i]}
				if tt.eff != nil {
					cands[i].Eff = tt.eff[i]
				}
			}
			p := mustPolicy(t, "peak-ewma")
			for range 100 {
				if got := p.Choose(cands, 0, false); got != tt.want {
					t.Fatalf("got %d, want %d", got, tt.want)
				}
			}
		})
	}
}

// TestPolicySlowBackend: with one backend ten times slower than the others, the load-aware
// policies send it far fewer requests; peak-ewma, which sees latency, fewest of all.
func TestPolicySlowBackend(t *testing.T) {
	tests := []struct {
		name     string
		maxShare float64 // of the slow backend's picks; a blind policy would give it 1/4
	}{
		// p2c only sees the slow one's requests pile up in flight.
		{name: "p2c", maxShare: 0.08},
		// peak-ewma sees its latency too.
		{name: "peak-ewma", maxShare: 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := weighted(1, 1, 1, 1)
			done := []float64{0.5, 0.5, 0.05, 0.5}
			for i := range cands {
				cands[i].Latency = time.Duration(float64(time.Millisecond) / done[i])
			}
			counts := simulate(mustPolicy(t, tt.name), cands, done, 20, 20000)
			total := counts[0] + counts[1] + counts[2] + counts[3]
			if share := float64(counts[2]) / float64(total); share > tt.maxShare {
				t.Errorf("got slow share %.4f, want at most %.2f (%v)", share, tt.maxShare, counts)
			}
		})
	}
}

// hashOwners returns the candidate the hash policy p gives each of keys 0..n-1.
func hashOwners(p Policy, cands []Candidate, n int) []int {
	owners := make([]int, n)
	for k := range owners {
		owners[k] = p.Choose(cands, uint64(k), true)
	}
	return owners
}

func TestPolicyHashSticky(t *testing.T) {
	cands := weighted(1, 1, 1, 1, 1)
	p := mustPolicy(t, "hash")
	want := hashOwners(p, cands, 1000)
	// The same key goes to the same backend every time while the load stays even: r in flight
	// each is under every bound, ceil(1.25 × (5r + 1) / 5) > r.
	for round := range 5 {
		for i := range cands {
			cands[i].InFlight = round
		}
		if got := hashOwners(p, cands, 1000); !slices.Equal(got, want) {
			t.Fatalf("round %d: keys moved with no backend leaving or overloaded", round)
		}
	}
	// And a fresh policy (another process) puts them in the same places.
	if got := hashOwners(mustPolicy(t, "hash"), cands, 1000); !slices.Equal(got, want) {
		t.Error("got a different placement from a second policy, want the same")
	}
}

// TestPolicyHashGolden pins ring positions: a change to the hash or the ring layout would move
// every key on every load balancer when it is deployed, so it must be deliberate.
func TestPolicyHashGolden(t *testing.T) {
	cands := weighted(1, 1, 1)
	keys := []uint64{0, 1, 2, 3, 42, 1 << 32, math.MaxUint64, 0xdeadbeef}
	want := []int{0, 1, 0, 1, 2, 1, 0, 0}
	got := make([]int, len(keys))
	p := mustPolicy(t, "hash")
	for i, k := range keys {
		got[i] = p.Choose(cands, k, true)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got owners %v, want %v", got, want)
	}
}

func TestPolicyHashSpreadsByWeight(t *testing.T) {
	cands := weighted(1, 2, 1, 4)
	counts := make([]int, len(cands))
	for _, b := range hashOwners(mustPolicy(t, "hash"), cands, 40000) {
		counts[b]++
	}
	// 128 points per unit of weight: shares within a generous 25% of the weights'.
	checkShares(t, counts, []float64{1, 2, 1, 4}, 0.25)
}

func TestPolicyHashBackendLeaves(t *testing.T) {
	const keys = 5000
	tests := []struct {
		name string
		// leave makes candidate 2 leave; it comes back by being reset to available and up.
		leave func(c *Candidate)
	}{
		// Down (health check or ejection): its keys move.
		{name: "down", leave: func(c *Candidate) { c.Up, c.Avail = false, false }},
		// Up but unavailable (at its in-flight limit, or already tried by this request): the
		// request goes on along the ring in the same way.
		{name: "unavailable", leave: func(c *Candidate) { c.Avail = false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := weighted(1, 1, 1, 1, 1)
			p := mustPolicy(t, "hash")
			before := hashOwners(p, cands, keys)
			tt.leave(&cands[2])
			during := hashOwners(p, cands, keys)
			moved, movedTo := 0, make([]int, len(cands))
			for k := range keys {
				switch {
				case before[k] == 2 && during[k] == 2:
					t.Fatalf("key %d: got 2, which left", k)
				case before[k] == 2:
					moved++
					movedTo[during[k]]++
				case during[k] != before[k]:
					t.Fatalf("key %d: got %d, want %d: only the keys of the backend that left may move", k, during[k], before[k])
				}
			}
			if moved == 0 {
				t.Fatal("got no keys on backend 2 to begin with, want some")
			}
			// Its keys scatter over the others instead of all landing on one neighbour.
			for i, n := range movedTo {
				if i != 2 && n == 0 {
					t.Errorf("got none of the moved keys on %d, want them spread (%v)", i, movedTo)
				}
			}
			cands[2] = weighted(1)[0]
			if after := hashOwners(p, cands, keys); !slices.Equal(after, before) {
				t.Error("got keys elsewhere after backend 2 came back, want every key home again")
			}
		})
	}
}

// TestPolicyHashWeightChange: raising one backend's weight rebuilds the ring, and keys only move
// onto that backend, never between the others.
func TestPolicyHashWeightChange(t *testing.T) {
	const keys = 5000
	cands := weighted(1, 1, 1, 1)
	p := mustPolicy(t, "hash")
	before := hashOwners(p, cands, keys)
	cands[1].Weight, cands[1].Eff = 3, 3
	after := hashOwners(p, cands, keys)
	gained := 0
	for k := range keys {
		switch {
		case after[k] == before[k]:
		case after[k] == 1:
			gained++
		default:
			t.Fatalf("key %d: got %d, want %d or 1", k, after[k], before[k])
		}
	}
	// It now has 3 of 6 weights, up from 1 of 4: it gains about a quarter of all keys.
	if gained < keys/8 || gained > keys*3/8 {
		t.Errorf("got %d keys moved onto the heavier backend, want about %d", gained, keys/4)
	}
}

func TestPolicyHashBoundedLoad(t *testing.T) {
	const hot = 12345
	tests := []struct {
		name     string
		balance  float64
		weights  []int
		home     int // in flight on the hot key's backend
		others   int // in flight on each of the others
		eff      float64
		wantHome bool
	}{
		// Idle: the bound is ceil(1.25 × 1 / 4) = 1, and 0 < 1.
		{name: "idle", balance: 1.25, weights: []int{1, 1, 1, 1}, wantHome: true},
		// 4 at home: ceil(1.25 × 5 / 4) = 2, and 4 is past it: the key spills.
		{name: "hot key over bound", balance: 1.25, weights: []int{1, 1, 1, 1}, home: 4, wantHome: false},
		// 1 at home and 1 each elsewhere: ceil(1.25 × 5 / 4) = 2, and 1 < 2: stays.
		{name: "even load below bound", balance: 1.25, weights: []int{1, 1, 1, 1}, home: 1, others: 1, wantHome: true},
		// 2 at home and 2 each elsewhere: ceil(1.25 × 9 / 4) = 3, and 2 < 3: stays.
		{name: "even load stays", balance: 1.25, weights: []int{1, 1, 1, 1}, home: 2, others: 2, wantHome: true},
		// Exactly at the bound spills: 2 at home and 1 on each other is 5 in flight, and
		// ceil(1.25 × 6 / 4) = 2.
		{name: "at bound", balance: 1.25, weights: []int{1, 1, 1, 1}, home: 2, others: 1, wantHome: false},
		// A looser balance keeps it home longer: ceil(3 × 6 / 4) = 5 > 2.
		{name: "loose balance", balance: 3, weights: []int{1, 1, 1, 1}, home: 2, others: 1, wantHome: true},
		// A heavier home gets a bound to match: ceil(1.25 × 7 × 4 / 7) = 5 > 3.
		{name: "heavy home", balance: 1.25, weights: []int{4, 1, 1, 1}, home: 3, others: 1, wantHome: true},
		// Slow start shrinks the bound through Eff: the load of "even load below bound", but
		// ceil(1.25 × 5 × 0.1 / 3.1) = 1, and 1 is not below it.
		{name: "ramping home", balance: 1.25, weights: []int{1, 1, 1, 1}, home: 1, others: 1, eff: 0.1, wantHome: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Put the hot key's home first in listing order whatever the ring says, by
			// finding it and then rotating the weights onto the right candidates.
			cands := weighted(tt.weights...)
			p := NewHash(tt.balance)
			homeIdx := p.Choose(weighted(1, 1, 1, 1), hot, true)
			order := make([]int, len(tt.weights)) // candidate index -> position in tt.weights
			for i := range order {
				order[i] = (i - homeIdx + len(order)) % len(order)
			}
			for i := range cands {
				cands[i] = weighted(tt.weights[order[i]])[0]
			}
			// Where the key goes when its home is away: the next on the ring.
			cands[homeIdx].Avail, cands[homeIdx].Up = false, false
			next := p.Choose(cands, hot, true)
			cands[homeIdx].Avail, cands[homeIdx].Up = true, true

			for i := range cands {
				cands[i].InFlight = tt.others
			}
			cands[homeIdx].InFlight = tt.home
			if tt.eff != 0 {
				cands[homeIdx].Eff = tt.eff
			}
			want := next
			if tt.wantHome {
				want = homeIdx
			}
			if got := p.Choose(cands, hot, true); got != want {
				t.Errorf("got %d, want %d (home %d, next on the ring %d)", got, want, homeIdx, next)
			}
		})
	}
}

// TestPolicyHashSpillOrder: a hot key arriving many times at once fills its home to the bound,
// then the next backend on the ring, and so on: it does not scatter at random.
func TestPolicyHashSpillOrder(t *testing.T) {
	cands := weighted(1, 1, 1, 1)
	p := mustPolicy(t, "hash")
	const hot = 777
	home := p.Choose(cands, hot, true)
	for range 40 {
		cands[p.Choose(cands, hot, true)].InFlight++
	}
	// 40 in flight over 4 equal backends: each is bounded by ceil(1.25 × 40 / 4) = 13 at the
	// last pick, so the home holds about that and nothing goes past the bound.
	for i := range cands {
		if cands[i].InFlight > 13 {
			t.Errorf("candidate %d: got %d in flight, want at most 13 (%v)", i, cands[i].InFlight, cands)
		}
	}
	if cands[home].InFlight < 10 {
		t.Errorf("home %d: got %d in flight, want it filled first", home, cands[home].InFlight)
	}
}

// TestPolicyHashKeyless: a request without a key is placed as least-request places it.
func TestPolicyHashKeyless(t *testing.T) {
	cands := weighted(1, 1, 1)
	cands[1].InFlight = 3
	p, lr := mustPolicy(t, "hash"), &LeastRequest{}
	for i := range 10 {
		if got, want := p.Choose(cands, uint64(i), false), lr.Choose(cands, 0, false); got != want {
			t.Fatalf("pick %d: got %d, want %d as least-request", i, got, want)
		}
	}
}

// TestPolicyChooseAllocs pins the hot path at zero allocations per pick, for every policy,
// once its state (rings, weight tables) exists.
func TestPolicyChooseAllocs(t *testing.T) {
	for _, name := range PolicyNames {
		t.Run(name, func(t *testing.T) {
			p := mustPolicy(t, name)
			cands := weighted(1, 2, 3, 1, 1, 5, 1, 1)
			for i := range cands {
				cands[i].InFlight = i % 3
				cands[i].Latency = time.Duration(i) * time.Millisecond
			}
			cands[4].Avail = false
			key := uint64(0)
			choose := func() {
				key++
				if b := p.Choose(cands, key, key%4 != 0); b >= 0 {
					cands[b].InFlight = (cands[b].InFlight + 1) % 7
				}
			}
			choose() // builds whatever state the policy keeps
			if got := testing.AllocsPerRun(1000, choose); got != 0 {
				t.Errorf("got %v allocations per Choose, want 0", got)
			}
		})
	}
}
