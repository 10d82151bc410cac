package messages

import (
	"reflect"
	"testing"
	"time"
)

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

// A duration equal to a bound is counted in that bound's bucket; one a nanosecond longer in the
// next; anything past the last bound in the last bucket.
func TestHistogramObserveAtBounds(t *testing.T) {
	for i, b := range HistBounds {
		var h Histogram
		h.Observe(b)
		var want [HistBuckets]uint64
		want[i] = 1
		equal(t, "at bound "+b.String(), h.Counts, want)

		h = Histogram{}
		h.Observe(b + 1)
		want = [HistBuckets]uint64{}
		want[i+1] = 1
		equal(t, "just above bound "+b.String(), h.Counts, want)
	}
	var h Histogram
	h.Observe(0)
	h.Observe(time.Hour)
	equal(t, "zero", h.Counts[0], uint64(1))
	equal(t, "an hour", h.Counts[HistBuckets-1], uint64(1))
}

func TestHistogramBoundsIncrease(t *testing.T) {
	for i := 1; i < len(HistBounds); i++ {
		if HistBounds[i] <= HistBounds[i-1] {
			t.Fatalf("bound %d (%v) not above bound %d (%v)", i, HistBounds[i], i-1, HistBounds[i-1])
		}
	}
}

func TestHistogramCountSumAddSub(t *testing.T) {
	var a Histogram
	for _, d := range []time.Duration{100 * time.Microsecond, 300 * time.Microsecond, 2 * time.Second, 20 * time.Second} {
		a.Observe(d)
	}
	equal(t, "count", a.Count(), uint64(4))
	equal(t, "sum", a.SumDuration(), 100*time.Microsecond+300*time.Microsecond+2*time.Second+20*time.Second)

	var b Histogram
	b.Observe(100 * time.Microsecond)
	b.Observe(7 * time.Millisecond)
	earlier := a
	a.Add(&b)
	equal(t, "count after Add", a.Count(), uint64(6))
	equal(t, "first bucket after Add", a.Counts[0], uint64(2))
	equal(t, "5-10ms bucket after Add", a.Counts[5], uint64(1))
	equal(t, "sum after Add", a.SumDuration(), earlier.SumDuration()+b.SumDuration())

	since := a.Sub(&earlier)
	equal(t, "Sub counts", since.Counts, b.Counts)
	equal(t, "Sub sum", since.SumDuration(), b.SumDuration()) // seconds in a float: to the nanosecond
	equal(t, "Sub leaves its receiver", a.Count(), uint64(6))

	var empty Histogram
	equal(t, "empty count", empty.Count(), uint64(0))
	equal(t, "Sub of itself", a.Sub(&a), empty)
}

func TestHistogramQuantile(t *testing.T) {
	var empty Histogram
	if d, ok := empty.Quantile(0.5); ok || d != 0 {
		t.Fatalf("empty: got %v, %v; want 0, false", d, ok)
	}

	// All in (500µs, 1ms]: every quantile is inside that bucket.
	var one Histogram
	for range 4 {
		one.Observe(600 * time.Microsecond)
	}
	for _, q := range []float64{0.01, 0.25, 0.5, 0.75, 0.99} {
		d, ok := one.Quantile(q)
		if !ok || d < 500*time.Microsecond || d > time.Millisecond {
			t.Fatalf("one bucket, q=%v: got %v, %v; want within (500µs, 1ms]", q, d, ok)
		}
	}
	if d, _ := one.Quantile(0.5); d != 750*time.Microsecond {
		t.Fatalf("one bucket, median: got %v, want 750µs (halfway, linearly)", d)
	}

	// Ten in [0, 250µs], ten in (250µs, 500µs]: interpolated linearly inside each bucket.
	var two Histogram
	for range 10 {
		two.Observe(100 * time.Microsecond)
		two.Observe(400 * time.Microsecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{
		{0.25, 125 * time.Microsecond},
		{0.5, 250 * time.Microsecond},
		{0.75, 375 * time.Microsecond},
		{0.99, 495 * time.Microsecond},
	} {
		d, ok := two.Quantile(tt.q)
		if !ok || absDiff(d, tt.want) > time.Microsecond {
			t.Fatalf("two buckets, q=%v: got %v, %v; want %v", tt.q, d, ok, tt.want)
		}
	}

	// Past the last bound: the last bound is all that is known.
	var slow Histogram
	slow.Observe(time.Minute)
	if d, ok := slow.Quantile(0.99); !ok || d != HistBounds[len(HistBounds)-1] {
		t.Fatalf("last bucket: got %v, %v; want %v", d, ok, HistBounds[len(HistBounds)-1])
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func traffic(reqs, failed, bytesIn uint64, d time.Duration) BackendTraffic {
	var b BackendTraffic
	b.Requests[MethodGET][Code2xx] = reqs
	b.Failed, b.BytesIn, b.BytesOut = failed, bytesIn, 2*bytesIn
	b.Retries, b.Dialled, b.Reused, b.Stale = 1, 2, 3, 4
	b.Duration.Observe(d)
	b.Head.Observe(d / 2)
	return b
}

func TestBackendTrafficAddAndTotal(t *testing.T) {
	a := traffic(3, 1, 100, time.Millisecond)
	a.Requests[MethodPOST][Code5xx] = 2
	b := traffic(4, 2, 50, time.Second)
	a.Add(&b)
	equal(t, "GET 2xx", a.Requests[MethodGET][Code2xx], uint64(7))
	equal(t, "POST 5xx", a.Requests[MethodPOST][Code5xx], uint64(2))
	equal(t, "total", a.Total(), uint64(9))
	equal(t, "failed", a.Failed, uint64(3))
	equal(t, "bytes", []uint64{a.BytesIn, a.BytesOut}, []uint64{150, 300})
	equal(t, "connections", []uint64{a.Retries, a.Dialled, a.Reused, a.Stale}, []uint64{2, 4, 6, 8})
	equal(t, "duration count", a.Duration.Count(), uint64(2))
	equal(t, "head sum", a.Head.SumDuration(), 500*time.Microsecond+500*time.Millisecond)
}

func TestTrafficStatsAddGrowsBackends(t *testing.T) {
	var sum TrafficStats
	short := TrafficStats{Backends: []BackendTraffic{traffic(1, 0, 10, time.Millisecond)}}
	short.Local[LocalNoBackend] = 1
	short.Unrouted = traffic(5, 5, 1, time.Millisecond)
	long := TrafficStats{Backends: []BackendTraffic{traffic(2, 0, 20, time.Millisecond), {},
		traffic(3, 1, 30, time.Millisecond)}}
	long.Local[LocalNoBackend], long.Local[LocalBadRequest] = 2, 1
	long.Unrouted = traffic(1, 0, 1, time.Millisecond)

	sum.Add(&short)
	sum.Add(&long)
	sum.Add(&short) // shorter than the sum now: the tail stays
	equal(t, "backends", len(sum.Backends), 3)
	totals := []uint64{sum.Backends[0].Total(), sum.Backends[1].Total(), sum.Backends[2].Total()}
	equal(t, "requests per backend", totals, []uint64{4, 0, 3})
	equal(t, "bytes in per backend", []uint64{sum.Backends[0].BytesIn, sum.Backends[1].BytesIn, sum.Backends[2].BytesIn},
		[]uint64{40, 0, 30})
	equal(t, "unrouted", sum.Unrouted.Total(), uint64(11))
	equal(t, "unrouted failed", sum.Unrouted.Failed, uint64(10))
	var wantLocal [NumLocalReasons]uint64
	wantLocal[LocalNoBackend], wantLocal[LocalBadRequest] = 4, 1
	equal(t, "local", sum.Local, wantLocal)

	// The sum is the receiver's own: changing an addend later does not change it.
	long.Backends[2].Requests[MethodGET][Code2xx] = 1000
	equal(t, "after the addend changed", sum.Backends[2].Total(), uint64(3))
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for r := LocalReason(0); r < NumLocalReasons; r++ {
		name := r.String()
		if r != LocalNone && name == "" || seen[name] {
			t.Fatalf("reason %d: name %q empty or repeated", r, name)
		}
		seen[name] = true
	}
	equal(t, "LocalNone", LocalNone.String(), "")
	equal(t, "no_backend", LocalNoBackend.String(), "no_backend")
	equal(t, "version", LocalVersion.String(), "version_not_supported")
	equal(t, "out of range", LocalReason(200).String(), "unknown")
	equal(t, "method names", MethodNames[MethodGET]+","+MethodNames[MethodOther], "GET,other")
	equal(t, "code names", CodeNames[Code2xx]+","+CodeNames[CodeNone], "2xx,none")
}
