package admin

import (
	"context"
	"encoding/json"
	"time"

	"github.com/loadbalancer/loadbalancer/messages"
)

// The stats page's numbers: a goroutine (the sampler) asks the actors for a snapshot every
// second, keeps the last historyLen seconds of totals and the last windowLen of per-backend
// counts, and encodes the answer of /api/stats once per sample. It owns all of that; the HTTP
// handlers ask it for the latest encoding over a channel.

const (
	historyLen = 300 // seconds of history on the chart
	windowLen  = 10  // seconds over which a backend's rate, error rate and p99 are taken
)

type point struct {
	T     int64    `json:"t"`
	RPS   float64  `json:"rps"`
	EPS   float64  `json:"eps"`
	P50ms *float64 `json:"p50_ms"`
	P99ms *float64 `json:"p99_ms"`
}

// totals is the running sum of every backend's counts, and one backend's, at one sample.
type totals struct {
	at       time.Time
	requests uint64
	failed   uint64
	dur      messages.Histogram
}

func (t *totals) add(b *messages.BackendTraffic) {
	t.requests += b.Total()
	t.failed += b.Failed
	t.dur.Add(&b.Duration)
}

type sampler struct {
	srv     *Server
	asks    chan chan []byte
	done    chan struct{}
	stopped chan struct{}

	history  []point
	prev     *totals
	window   [][]totals  // per sample (oldest first), per backend
	windowAt []time.Time // when each of window's samples was taken
	latestJ  []byte
}

func newSampler(s *Server) *sampler {
	return &sampler{srv: s, asks: make(chan chan []byte), done: make(chan struct{}), stopped: make(chan struct{})}
}

func (p *sampler) run() {
	defer close(p.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	p.safeSample()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
			p.safeSample()
		case ask := <-p.asks:
			ask <- p.latestJ
		}
	}
}

func (p *sampler) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}

// latest returns the latest encoding of /api/stats.
func (p *sampler) latest(ctx context.Context) ([]byte, error) {
	ask := make(chan []byte, 1)
	select {
	case p.asks <- ask:
	case <-p.stopped:
		return nil, errStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case b := <-ask:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// safeSample is sample, with a panic (a bug in the page's arithmetic) logged and the page's
// history started again: it must not take the proxy down, nor the page for good.
func (p *sampler) safeSample() {
	defer func() {
		if v := recover(); v != nil {
			p.srv.log.Error("stats sampler panicked; the stats page's history starts again", "panic", v)
			p.history, p.window, p.windowAt, p.prev, p.latestJ = nil, nil, nil, nil, nil
		}
	}()
	p.sample()
}

// sample takes a snapshot, adds a point to the history, and encodes the answer.
func (p *sampler) sample() {
	snap, _ := p.srv.snapshot()
	out := apiStats{
		Version: p.srv.cfg.Version, Started: p.srv.started.UTC(), Now: snap.At.UTC(),
		Listen: p.srv.cfg.Listen, Policy: p.srv.cfg.Policy, HealthCheck: p.srv.cfg.HealthCheck,
		HealthIntervalSeconds: p.srv.cfg.HealthInterval.Seconds(),
	}
	out.Ready, out.ReadyReason = readiness(snap)
	names := backendNames(snap, p.srv.cfg.Backends)
	var cur *totals
	var perBackend []totals
	if snap.Conns != nil {
		cur = &totals{at: snap.At}
		perBackend = make([]totals, len(names))
		for i := range perBackend {
			perBackend[i].at = snap.At // a backend no loop has served yet is at zero now
		}
		for i := range snap.Traffic.Backends {
			cur.add(&snap.Traffic.Backends[i])
			if i < len(perBackend) {
				perBackend[i].add(&snap.Traffic.Backends[i])
			}
		}
		cur.add(&snap.Traffic.Unrouted)
		for _, n := range snap.Traffic.Local {
			out.Totals.LocalResponses += n
		}
		for i := range snap.Traffic.Backends {
			out.Totals.BytesIn += snap.Traffic.Backends[i].BytesIn
			out.Totals.BytesOut += snap.Traffic.Backends[i].BytesOut
		}
		out.Totals.BytesIn += snap.Traffic.Unrouted.BytesIn
		out.Totals.BytesOut += snap.Traffic.Unrouted.BytesOut
		out.Totals.Requests = cur.requests
		out.Totals.ConnectionsOpen = snap.Conns.Open
		if prev := p.prev; prev != nil && cur.requests >= prev.requests && cur.at.After(prev.at) {
			dt := cur.at.Sub(prev.at).Seconds()
			d := cur.dur.Sub(&prev.dur)
			pt := point{T: cur.at.Unix(), RPS: float64(cur.requests-prev.requests) / dt,
				EPS: float64(cur.failed-prev.failed) / dt}
			pt.P50ms = msOrNil(d.Quantile(0.5))
			pt.P99ms = msOrNil(d.Quantile(0.99))
			if len(p.history) == historyLen {
				copy(p.history, p.history[1:])
				p.history = p.history[:historyLen-1]
			}
			p.history = append(p.history, pt)
		}
		p.prev = cur
		if len(p.window) == windowLen+1 {
			copy(p.window, p.window[1:])
			p.window = p.window[:windowLen]
			copy(p.windowAt, p.windowAt[1:])
			p.windowAt = p.windowAt[:windowLen]
		}
		p.window = append(p.window, perBackend)
		p.windowAt = append(p.windowAt, snap.At)
	}
	if n := len(p.history); n > 0 {
		last := p.history[n-1]
		out.Totals.RPS, out.Totals.EPS, out.Totals.P50ms, out.Totals.P99ms = last.RPS, last.EPS, last.P50ms, last.P99ms
	}
	out.History = append([]point{}, p.history...)
	if d := snap.Dispatcher; d != nil {
		out.Totals.InFlight, out.Totals.Queue = d.InFlight, d.Queued
	}
	out.Backends = p.backends(snap, names)
	b, err := json.Marshal(&out)
	if err != nil {
		p.srv.log.Error("cannot encode /api/stats", "err", err)
		p.latestJ = nil // the handler answers 500
		return
	}
	p.latestJ = b
}

// backends builds the per-backend rows.
func (p *sampler) backends(snap *Snapshot, names []string) []apiBackend {
	rows := make([]apiBackend, 0, len(names))
	for i, name := range names {
		if name == "" {
			continue // removed, and drained
		}
		rows = append(rows, apiBackend{})
		r := &rows[len(rows)-1]
		r.Address, r.State, r.Health = name, "unknown", []apiCheck{}
		if d := snap.Dispatcher; d != nil && i < len(d.Backends) {
			b := &d.Backends[i]
			r.State, r.Reason, r.Weight, r.InFlight = stateOf(b), b.Reason, b.Weight, b.InFlight
			since := b.Since.UTC()
			r.Since = &since
			r.LatencyMs = msOrNil(b.Latency, b.Latency > 0)
		}
		if n := len(p.window); n > 0 && i < len(p.window[n-1]) {
			last := &p.window[n-1][i]
			first := &totals{at: p.windowAt[0]} // a backend added since the oldest sample: from zero
			if i < len(p.window[0]) {
				first = &p.window[0][i]
			}
			r.Requests = last.requests
			if n > 1 && last.requests >= first.requests && last.at.After(first.at) {
				dt := last.at.Sub(first.at).Seconds()
				reqs := last.requests - first.requests
				r.RPS = float64(reqs) / dt
				if reqs > 0 {
					r.ErrorRate = float64(last.failed-first.failed) / float64(reqs)
				}
				d := last.dur.Sub(&first.dur)
				r.P99ms = msOrNil(d.Quantile(0.99))
			}
		}
		if h := snap.Health; h != nil && i < len(h.Backends) {
			for _, c := range h.Backends[i].History {
				ms := float64(c.Took.Microseconds()) / 1000
				r.Health = append(r.Health, apiCheck{T: c.At.UTC(), OK: c.OK, Ms: ms, Reason: c.Reason})
			}
		}
	}
	return rows
}

// The JSON of /api/stats (see API.md).
type apiStats struct {
	Version               string       `json:"version"`
	Started               time.Time    `json:"started"`
	Now                   time.Time    `json:"now"`
	Listen                string       `json:"listen"`
	Policy                string       `json:"policy"`
	HealthCheck           string       `json:"health_check"`
	HealthIntervalSeconds float64      `json:"health_interval_seconds"`
	Ready                 bool         `json:"ready"`
	ReadyReason           string       `json:"ready_reason"`
	Totals                apiTotals    `json:"totals"`
	History               []point      `json:"history"`
	Backends              []apiBackend `json:"backends"`
}

type apiTotals struct {
	Requests        uint64   `json:"requests"`
	RPS             float64  `json:"requests_per_second"`
	EPS             float64  `json:"errors_per_second"`
	P50ms           *float64 `json:"p50_ms"`
	P99ms           *float64 `json:"p99_ms"`
	InFlight        int      `json:"in_flight"`
	Queue           int      `json:"queue"`
	ConnectionsOpen int      `json:"connections_open"`
	LocalResponses  uint64   `json:"local_responses"`
	BytesIn         uint64   `json:"bytes_in"`
	BytesOut        uint64   `json:"bytes_out"`
}

type apiBackend struct {
	Address   string     `json:"address"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	Since     *time.Time `json:"since"`
	Weight    int        `json:"weight"`
	InFlight  int        `json:"in_flight"`
	Requests  uint64     `json:"requests"`
	RPS       float64    `json:"requests_per_second"`
	ErrorRate float64    `json:"error_rate"`
	P99ms     *float64   `json:"p99_ms"`
	LatencyMs *float64   `json:"latency_ms"`
	Health    []apiCheck `json:"health"`
}

type apiCheck struct {
	T      time.Time `json:"t"`
	OK     bool      `json:"ok"`
	Ms     float64   `json:"ms"`
	Reason string    `json:"reason"`
}
