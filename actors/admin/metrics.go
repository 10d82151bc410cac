package admin

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loadbalancer/loadbalancer/messages"
)

// collector is the Prometheus collector of the load balancer's own metrics: at each scrape it
// asks the owners for a snapshot (gather) and turns it into constant metrics. It keeps nothing
// between scrapes; the counts live with the actors and event loops that own them.
type collector struct {
	srv *Server
	log *slog.Logger
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("loadbalancer_"+name, help, labels, nil)
}

// The metric families. Every per-backend family has the label backend (the address as
// configured); requests no backend took are under backend="none".
var (
	dRequests = desc("requests_total",
		"Requests finished, by backend, method class and status class (code=\"none\": nothing was sent).",
		"backend", "method", "code")
	dFailures = desc("request_failures_total",
		"Requests that failed: a 5xx answer (the load balancer's own under backend=\"none\"), or a response that broke off or never came.", "backend")
	dLocal = desc("local_responses_total",
		"Answers the load balancer made itself, by reason.", "reason")
	dDuration = desc("request_duration_seconds",
		"Whole request time, from its first byte to the last byte of its answer.", "backend")
	dHead = desc("upstream_header_duration_seconds",
		"Time from the request sent whole to a backend (its head only, with Expect: 100-continue) until the backend's response head arrived.", "backend")
	dRetries = desc("retries_total",
		"Extra tries on another backend that requests needed (a failed connect, a broken or stalled exchange). A resend after a stale pooled connection counts in upstream_connections_stale_total instead.", "backend")
	dBytesIn = desc("request_bytes_total",
		"Bytes received from clients (request heads and bodies).", "backend")
	dBytesOut = desc("response_bytes_total",
		"Bytes sent to clients (response heads and bodies).", "backend")
	dDialled = desc("upstream_connections_opened_total",
		"Connections opened to a backend.", "backend")
	dReused = desc("upstream_connections_reused_total",
		"Requests sent on a pooled (kept-alive) connection to a backend.", "backend")
	dStale = desc("upstream_connections_stale_total",
		"Pooled connections to a backend dropped as stale: closed by the backend while pooled or found closed when used, or idle too long.", "backend")
	dConnectFailures = desc("upstream_connect_failures_total",
		"Connects to a backend that failed (refused, reset or timed out); the request then tried another.", "backend")

	dInFlight        = desc("requests_in_flight", "Requests holding a slot of the -N budget.")
	dBudget          = desc("requests_in_flight_limit", "The -N budget: requests allowed in flight at once.")
	dBackendInFlight = desc("backend_requests_in_flight", "Requests in flight on a backend.", "backend")
	dQueue           = desc("queue_length", "Requests waiting for a slot.")
	dQueueWait       = desc("queue_wait_seconds", "How long requests that queued waited for a slot (or for the answer that none came).")
	dReady           = desc("ready", "1 when the first health round is done and a backend is up (see /readyz).")

	dUp        = desc("backend_up", "1 when the backend is up (health checks) and not ejected.", "backend")
	dState     = desc("backend_state", "The backend's state: 1 for the state it is in, 0 for the others.", "backend", "state")
	dEjections = desc("backend_ejections_total", "Times the backend was ejected for failing real requests.", "backend")
	dWeight    = desc("backend_weight", "The backend's configured weight.", "backend")
	dLatency   = desc("backend_latency_seconds", "The backend's latency estimate (peak EWMA) the policies use.", "backend")

	dChecks        = desc("health_checks_total", "Health checks, by backend and result.", "backend", "result")
	dCheckDuration = desc("health_check_duration_seconds", "How long health checks took.", "backend")
	dRounds        = desc("health_rounds_total", "Health rounds that ended.")

	dConnsOpen     = desc("client_connections_open", "Client connections open.")
	dConnsAccepted = desc("client_connections_accepted_total", "Client connections accepted and served.")
	dConnsRefused  = desc("client_connections_refused_total", "Client connections closed at once (too many open, or draining).")
	dCrashes       = desc("forwarder_crashes_total", "Forwarders that crashed; each crash ends its own connection and nothing else.")

	dLogLines   = desc("access_log_lines_total", "Access log lines written.")
	dLogDropped = desc("access_log_dropped_lines_total", "Access log lines dropped because the writer fell behind (or writes failed).")
	dLogErrors  = desc("access_log_errors_total", "Access log writes and reopens that failed.")
	dLogReopens = desc("access_log_reopens_total", "Times the access log was reopened (SIGUSR1).")

	dBuild = desc("build_info", "The load balancer's version and the Go version it was built with.", "version", "goversion")

	dReloads = desc("config_reloads_total", "Configuration reloads (SIGHUP or POST /api/reload), by result: applied, or refused (the running configuration stayed).", "result")
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dRequests, dFailures, dLocal, dDuration, dHead, dRetries, dBytesIn,
		dBytesOut, dDialled, dReused, dStale, dConnectFailures, dInFlight, dBudget, dBackendInFlight, dQueue, dQueueWait, dReady,
		dUp, dState, dEjections, dWeight, dLatency, dChecks, dCheckDuration, dRounds, dConnsOpen,
		dConnsAccepted, dConnsRefused, dCrashes, dLogLines, dLogDropped, dLogErrors, dLogReopens, dBuild, dReloads} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.srv.snapshot()
	if err != nil {
		c.log.Warn("metrics incomplete", "err", err)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	hist := func(d *prometheus.Desc, h *messages.Histogram, labels ...string) {
		ch <- prometheus.MustNewConstHistogram(d, h.Count(), h.Sum, buckets(h), labels...)
	}
	gauge(dBuild, 1, c.srv.cfg.Version, runtime.Version())
	if ctl := c.srv.cfg.Control; ctl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.srv.timeout())
		applied, refused := ctl.Reloads(ctx)
		cancel()
		if applied >= 0 { // -1: busy; a counter left out beats one that reads as a reset
			counter(dReloads, uint64(applied), "applied")
			counter(dReloads, uint64(refused), "refused")
		}
	}
	names := backendNames(s, c.srv.cfg.Backends)

	if s.Conns != nil {
		t := &s.Traffic
		for i, name := range names {
			if name == "" {
				continue // removed, and drained
			}
			var b messages.BackendTraffic
			if i < len(t.Backends) {
				b = t.Backends[i]
			}
			c.traffic(ch, counter, hist, name, &b, true)
		}
		c.traffic(ch, counter, hist, "none", &t.Unrouted, false)
		for r := messages.LocalReason(1); r < messages.NumLocalReasons; r++ {
			counter(dLocal, t.Local[r], r.String())
		}
		gauge(dConnsOpen, float64(s.Conns.Open))
		counter(dConnsAccepted, s.Conns.Accepted)
		counter(dConnsRefused, s.Conns.Refused)
		counter(dCrashes, s.Conns.Crashes)
	}
	if d := s.Dispatcher; d != nil {
		gauge(dInFlight, float64(d.InFlight))
		gauge(dBudget, float64(d.N))
		gauge(dQueue, float64(d.Queued))
		hist(dQueueWait, &d.QueueWait)
		ready, _ := readiness(s)
		gauge(dReady, b2f(ready))
		for i := range d.Backends {
			b := &d.Backends[i]
			if gone(b) {
				continue
			}
			gauge(dBackendInFlight, float64(b.InFlight), b.Addr)
			gauge(dUp, b2f(b.Up && !b.Ejected), b.Addr)
			st := stateOf(b)
			for _, name := range stateNames {
				gauge(dState, b2f(name == st), b.Addr, name)
			}
			counter(dEjections, b.Ejections, b.Addr)
			gauge(dWeight, float64(b.Weight), b.Addr)
			gauge(dLatency, b.Latency.Seconds(), b.Addr)
		}
	}
	if h := s.Health; h != nil {
		counter(dRounds, h.Rounds)
		for i := range h.Backends {
			if i >= len(names) {
				break
			}
			if names[i] == "" {
				continue
			}
			b := &h.Backends[i]
			counter(dChecks, b.Passed, names[i], "pass")
			counter(dChecks, b.Failed, names[i], "fail")
			hist(dCheckDuration, &b.Duration, names[i])
		}
	}
	if l := s.AccessLg; l != nil {
		counter(dLogLines, l.Lines)
		counter(dLogDropped, l.Dropped)
		counter(dLogErrors, l.Errors)
		counter(dLogReopens, l.Reopens)
	}
}

// traffic emits one backend's request families.
func (c *collector) traffic(ch chan<- prometheus.Metric, counter func(*prometheus.Desc, uint64, ...string),
	hist func(*prometheus.Desc, *messages.Histogram, ...string), name string, b *messages.BackendTraffic, routed bool) {
	for m := range b.Requests {
		for code := range b.Requests[m] {
			// Every series of a backend exists from the start (at zero) for the common
			// methods and classes, so rate() sees the first request; rarer ones appear when
			// counted.
			v := b.Requests[m][code]
			if v == 0 && (m > messages.MethodPOST || code == messages.Code1xx || code == messages.CodeNone) {
				continue
			}
			counter(dRequests, v, name, messages.MethodNames[m], messages.CodeNames[code])
		}
	}
	counter(dFailures, b.Failed, name)
	hist(dDuration, &b.Duration, name)
	counter(dBytesIn, b.BytesIn, name)
	counter(dBytesOut, b.BytesOut, name)
	if !routed {
		return
	}
	hist(dHead, &b.Head, name)
	counter(dRetries, b.Retries, name)
	counter(dDialled, b.Dialled, name)
	counter(dReused, b.Reused, name)
	counter(dStale, b.Stale, name)
	counter(dConnectFailures, b.ConnectFailures, name)
}

// gone reports a backend that was removed and has drained: it is left out.
func gone(b *messages.BackendState) bool { return b.Removed && b.InFlight == 0 }

// backendNames are the backends' addresses by index, from the Dispatcher's answer (the table
// changes at run time) or else the start-up list; "" for one that is gone.
func backendNames(s *Snapshot, startup []string) []string {
	if s.Dispatcher == nil {
		return startup
	}
	names := make([]string, len(s.Dispatcher.Backends))
	for i := range s.Dispatcher.Backends {
		if b := &s.Dispatcher.Backends[i]; !gone(b) {
			names[i] = b.Addr
		}
	}
	return names
}

// buckets turns a Histogram into Prometheus's cumulative buckets, keyed by upper bound in
// seconds.
func buckets(h *messages.Histogram) map[float64]uint64 {
	m := make(map[float64]uint64, len(messages.HistBounds))
	var cum uint64
	for i, b := range messages.HistBounds {
		cum += h.Counts[i]
		m[b.Seconds()] = cum
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The states a backend is shown in.
var stateNames = []string{"up", "down", "ejected", "unknown", "draining"}

// stateOf names a backend's state.
func stateOf(b *messages.BackendState) string {
	switch {
	case b.Removed:
		return "draining"
	case b.Pending:
		return "unknown"
	case !b.Up:
		return "down"
	case b.Ejected:
		return "ejected"
	case !b.Probed:
		return "unknown"
	}
	return "up"
}

// durationOrNil is d in milliseconds, or nil when ok is false (JSON null).
func msOrNil(d time.Duration, ok bool) *float64 {
	if !ok {
		return nil
	}
	v := float64(d.Microseconds()) / 1000
	return &v
}
