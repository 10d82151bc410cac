package messages

import (
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// What the actors count, and the snapshots they answer with. Every count is the state of the
// actor (or event loop) that owns it, kept as it works; nothing on the hot path takes a lock or
// sends a message to count. The admin listener asks each owner for a snapshot when it needs one
// (a Prometheus scrape, the stats page's once-a-second sample).

// StatsRequest asks for a snapshot of counts. Sent by the admin listener to the Dispatcher
// (answered with *DispatcherStats), the HealthMonitor (*HealthStats), the Acceptor
// (*ConnStats, then one *LoopStats from each event loop) and the access log writer
// (*AccessLogStats), each to ReplyTo. The snapshots are copies the receiver owns.
type StatsRequest struct {
	ReplyTo *actor.PID
	// Brief asks the Acceptor for its ConnStats only (Loops 0), without the loops' counts.
	Brief bool
}

// HistBuckets is how many buckets a Histogram has: one per bound in HistBounds, and one for
// longer durations.
const HistBuckets = 16

// HistBounds are the upper bounds (inclusive) of a Histogram's buckets but the last: fine
// enough below a millisecond for a proxy's own latency, and up to the default timeouts.
var HistBounds = [HistBuckets - 1]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations in the buckets of HistBounds: Counts[i] is how many were at most
// HistBounds[i] and above the bound before (not cumulative); the last bucket has the rest. A
// plain value: observing is a loop over 15 bounds and two additions, no allocation. Sum is in
// seconds, as a float: an integer of nanoseconds would overflow after some 10^10 seconds of
// observed time, which a busy process (or long-lived requests) sums up within months.
type Histogram struct {
	Counts [HistBuckets]uint64
	Sum    float64
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(HistBounds) && d > HistBounds[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += d.Seconds()
}

// SumDuration is Sum as a duration, to the nanosecond.
func (h *Histogram) SumDuration() time.Duration { return time.Duration(math.Round(h.Sum * 1e9)) }

// Add adds o's counts to h.
func (h *Histogram) Add(o *Histogram) {
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
	}
	h.Sum += o.Sum
}

// Sub returns h minus an earlier snapshot of the same histogram: what was observed since.
func (h Histogram) Sub(earlier *Histogram) Histogram {
	for i := range h.Counts {
		h.Counts[i] -= earlier.Counts[i]
	}
	h.Sum -= earlier.Sum
	return h
}

// Count is how many durations were observed.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q < 1), interpolating linearly inside its bucket as
// Prometheus's histogram_quantile does; ok is false when nothing was observed. A quantile in
// the last bucket reports its lower bound.
func (h *Histogram) Quantile(q float64) (d time.Duration, ok bool) {
	total := h.Count()
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			if i == len(HistBounds) {
				return HistBounds[i-1], true
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = HistBounds[i-1]
			}
			frac := (rank - seen) / float64(c)
			return lo + time.Duration(frac*float64(HistBounds[i]-lo)), true
		}
		seen += float64(c)
	}
	return HistBounds[len(HistBounds)-1], true
}

// BackendState is the Dispatcher's view of one backend.
type BackendState struct {
	Addr   string
	Weight int
	// Probed: a health report has covered it (before that it counts as up, unknown).
	Probed bool
	Up     bool
	// Ejected: out of rotation for failing real requests (outlier ejection), until EjectedUntil
	// or a health round ends a stall ejection.
	Ejected      bool
	EjectedUntil time.Time
	// Reason says why it is down or ejected; empty when it is up.
	Reason string
	// Since is when it entered its state (up, down or ejected); the start-up time until then.
	Since time.Time
	// InFlight is how many requests hold a slot on it.
	InFlight int
	// Latency is its peak-EWMA latency estimate; zero before its first answer.
	Latency time.Duration
	// Ejections counts its ejections since start-up.
	Ejections uint64
	// Removed: no longer configured; it drains while InFlight > 0 (Since is when it was
	// removed).
	Removed bool
	// Pending: added at run time and not checked yet (it takes no request until a check
	// passes).
	Pending bool
	// Backup and MaxInFlight are its own settings (MaxInFlight 0: no cap of its own; the global
	// one, if any, applies).
	Backup      bool
	MaxInFlight int
}

// DispatcherStats answers StatsRequest, from the Dispatcher.
type DispatcherStats struct {
	// Ready: the first health report has come (or the wait for it ended).
	Ready bool
	// InFlight is the slots of the N budget in use, and N the budget.
	InFlight, N int
	// Queued is how many picks wait for a slot.
	Queued int
	// QueueWait is how long picks that waited for a slot waited, until they got one, or their
	// answer that none would come.
	QueueWait Histogram
	// Picks is how many slots were granted since start-up.
	Picks    uint64
	Backends []BackendState
}

// CheckResult is one health check of one backend.
type CheckResult struct {
	At     time.Time
	OK     bool
	Took   time.Duration
	Reason string // why it failed; empty when it passed
}

// HealthHistory is how many of each backend's last checks HealthStats keeps.
const HealthHistory = 20

// BackendChecks is what the HealthMonitor counted for one backend.
type BackendChecks struct {
	Passed, Failed uint64
	// Duration is how long its checks took.
	Duration Histogram
	// History is its last checks, oldest first, at most HealthHistory.
	History []CheckResult
}

// HealthStats answers StatsRequest, from the HealthMonitor.
type HealthStats struct {
	// Rounds is how many health rounds have ended.
	Rounds uint64
	// Kind names the check ("classic", "http", "tcp", "none") and Interval is the tick.
	Kind     string
	Interval time.Duration
	Backends []BackendChecks // indexed like the configured backends
}

// ConnStats answers StatsRequest, from the Acceptor: the client connections. One LoopStats from
// each of its Loops event loops follows, to the same ReplyTo.
type ConnStats struct {
	Open     int
	Accepted uint64
	// Refused counts connections closed at once: too many open, or the load balancer draining.
	Refused uint64
	// Crashes counts the Forwarders that ended in a panic (each cost its own connection only).
	Crashes uint64
	// Draining: the load balancer has begun to drain and takes no new connection.
	Draining bool
	Loops    int
}

// Method classes of TrafficStats.Requests.
const (
	MethodGET = iota
	MethodHEAD
	MethodPOST
	MethodPUT
	MethodDELETE
	MethodPATCH
	MethodOPTIONS
	MethodOther
	NumMethods
)

// MethodNames names the method classes, for labels.
var MethodNames = [NumMethods]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}

// Status classes of TrafficStats.Requests: 1xx to 5xx by the status sent to the client, and
// CodeNone for a request that ended with nothing sent (the client left, or the connection broke
// before an answer).
const (
	Code1xx = iota
	Code2xx
	Code3xx
	Code4xx
	Code5xx
	CodeNone
	NumCodes
)

// CodeNames names the status classes, for labels.
var CodeNames = [NumCodes]string{"1xx", "2xx", "3xx", "4xx", "5xx", "none"}

// LocalReason says why the load balancer answered a request itself.
type LocalReason uint8

// The reasons, in LocalReasonNames' order.
const (
	LocalNone            LocalReason = iota
	LocalNoBackend                   // no backend up (or every connect failed)
	LocalQueueFull                   // too many requests waiting for a slot
	LocalQueueTimeout                // the wait for a slot timed out
	LocalUpstreamTimeout             // the backend sent no response head in time
	LocalBadGateway                  // the backend's response failed or was malformed
	LocalStopping                    // the load balancer is stopping
	LocalInternal                    // a crash in the load balancer
	LocalBadRequest                  // 400: malformed request
	LocalRequestTimeout              // 408: the request head did not arrive in time
	LocalURITooLong                  // 414
	LocalHeaderTooLarge              // 431
	LocalNotImplemented              // 501: CONNECT, or an unknown transfer coding
	LocalVersion                     // 505: HTTP version not supported
	NumLocalReasons
)

// LocalReasonNames names the reasons, for labels and the access log.
var LocalReasonNames = [NumLocalReasons]string{"", "no_backend", "queue_full", "queue_timeout",
	"upstream_timeout", "bad_gateway", "stopping", "internal", "bad_request", "request_timeout",
	"uri_too_long", "header_too_large", "not_implemented", "version_not_supported"}

// String names the reason.
func (r LocalReason) String() string {
	if r < NumLocalReasons {
		return LocalReasonNames[r]
	}
	return "unknown"
}

// BackendTraffic is what an event loop counted of the requests that went to one backend (or,
// in TrafficStats.Unrouted, of those that reached none).
type BackendTraffic struct {
	// Requests counts finished requests by method class and status class.
	Requests [NumMethods][NumCodes]uint64
	// Failed counts those that failed there: a 5xx, or a response that broke or never came.
	Failed uint64
	// Duration is the whole request, from its first byte to the last of its answer.
	Duration Histogram
	// Head is the time from sending the request to the backend's response head.
	Head Histogram
	// Retries counts the extra tries requests needed (another backend, or a resend).
	Retries uint64
	// BytesIn and BytesOut are the client's bytes: the request as received, the answer as sent.
	BytesIn, BytesOut uint64
	// Dialled, Reused and Stale count upstream connections: opened, taken from the idle pool,
	// and closed in the pool because the backend closed them (or they idled too long);
	// ConnectFailures the connects that failed (the request then tried another backend).
	Dialled, Reused, Stale, ConnectFailures uint64
}

// Add adds o's counts to t.
func (t *BackendTraffic) Add(o *BackendTraffic) {
	for m := range t.Requests {
		for c := range t.Requests[m] {
			t.Requests[m][c] += o.Requests[m][c]
		}
	}
	t.Failed += o.Failed
	t.Duration.Add(&o.Duration)
	t.Head.Add(&o.Head)
	t.Retries += o.Retries
	t.BytesIn += o.BytesIn
	t.BytesOut += o.BytesOut
	t.Dialled += o.Dialled
	t.Reused += o.Reused
	t.Stale += o.Stale
	t.ConnectFailures += o.ConnectFailures
}

// Total is how many requests finished.
func (t *BackendTraffic) Total() uint64 {
	var n uint64
	for m := range t.Requests {
		for c := range t.Requests[m] {
			n += t.Requests[m][c]
		}
	}
	return n
}

// TrafficStats is what event loops counted of the requests they served.
type TrafficStats struct {
	// Backends is indexed like the configured backends (a loop's may be shorter: it has seen
	// no request for those past its end).
	Backends []BackendTraffic
	// Unrouted counts the requests no backend took (answered by the load balancer, or left by
	// the client before a backend was picked).
	Unrouted BackendTraffic
	// Local counts the answers the load balancer made itself, by reason.
	Local [NumLocalReasons]uint64
}

// Add adds o's counts to t.
func (t *TrafficStats) Add(o *TrafficStats) {
	for len(t.Backends) < len(o.Backends) {
		t.Backends = append(t.Backends, BackendTraffic{})
	}
	for i := range o.Backends {
		t.Backends[i].Add(&o.Backends[i])
	}
	t.Unrouted.Add(&o.Unrouted)
	for i := range t.Local {
		t.Local[i] += o.Local[i]
	}
}

// LoopStats follows ConnStats: one event loop's counts, sent from the loop to the
// StatsRequest's ReplyTo.
type LoopStats struct {
	Loop    int
	Traffic TrafficStats
}

// AccessLogStats answers StatsRequest, from the access log writer.
type AccessLogStats struct {
	// Lines were written; Dropped were not, because the writer fell behind (or the file
	// failed).
	Lines, Dropped uint64
	Bytes          uint64
	// Errors counts failed writes and reopens.
	Errors  uint64
	Reopens uint64
}

// AccessLogBatch carries access log lines from an event loop to the access log writer: Buf
// holds Lines whole lines. Ownership of Buf moves with the message; the writer gives it back
// for reuse through the free list it shares with the loops.
type AccessLogBatch struct {
	Buf   []byte
	Lines int
}

// ReopenAccessLog is sent by main to the access log writer on SIGUSR1 (logrotate): close the
// file and open its path again. Lines sent before it go to the old file, lines after to the new.
type ReopenAccessLog struct{}

// AccessLogWritten is sent by the access log writer's file goroutine to the writer: a batch
// was written (Err empty) or failed.
type AccessLogWritten struct {
	Lines, Bytes int
	Err          string
}

// AccessLogReopened is sent by the access log writer's file goroutine to the writer after a
// reopen; Err is empty when it worked.
type AccessLogReopened struct {
	Err string
}

// PanicReport is sent by a goroutine an actor started to that actor when it panicked (the
// access log writer's file goroutine): the actor re-panics in Receive, so its supervisor sees
// the crash. Value and Stack are the recovered value and the goroutine's stack.
type PanicReport struct {
	Value any
	Stack []byte
}
