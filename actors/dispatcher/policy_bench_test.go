package dispatcher

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkChoose measures one pick per policy over a ladder of backend counts, with uneven
// weights and loads, one backend unavailable, and a fresh key each time (one in four without a
// key). The pick adjusts the chosen backend's in-flight count so stateful policies do not sit
// on one answer.
func BenchmarkChoose(b *testing.B) {
	for _, name := range PolicyNames {
		for _, n := range []int{3, 50} {
			b.Run(name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				p := mustPolicy(b, name)
				cands := make([]Candidate, n)
				for i := range cands {
					w := 1 + i%3
					cands[i] = Candidate{
						Avail: i != 1, Up: true, Weight: w, Eff: float64(w),
						InFlight: i % 5, Entries: int64(i % 7),
						Latency: time.Duration(1+i%4) * time.Millisecond,
					}
				}
				p.Choose(cands, 1, true) // builds whatever state the policy keeps
				b.ReportAllocs()
				key := uint64(0)
				for b.Loop() {
					key++
					if c := p.Choose(cands, key*0x9e3779b97f4a7c15, key%4 != 0); c >= 0 {
						cands[c].InFlight = (cands[c].InFlight + 1) % 8
					}
				}
			})
		}
	}
}
