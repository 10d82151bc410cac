package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// TestMain fails the run if a goroutine of this package (the sampler, the HTTP server) outlives
// the tests.
func TestMain(m *testing.M) { os.Exit(actortest.RunCheckingLeaks(m, "/actors/admin.")) }

var testBackendNames = []string{"127.0.0.1:9001", "127.0.0.1:9002"}

func TestReadiness(t *testing.T) {
	up := messages.BackendState{Addr: "a", Probed: true, Up: true}
	down := messages.BackendState{Addr: "b", Probed: true, Reason: "refused"}
	ejected := messages.BackendState{Addr: "c", Probed: true, Up: true, Ejected: true}
	unprobed := messages.BackendState{Addr: "d", Up: true}
	tests := []struct {
		name  string
		snap  Snapshot
		ready bool
		why   string
	}{
		{"no dispatcher", Snapshot{}, false, "the dispatcher did not answer"},
		{"draining", Snapshot{Dispatcher: &messages.DispatcherStats{Ready: true, Backends: []messages.BackendState{up}},
			Conns: &messages.ConnStats{Draining: true}}, false, "draining: the load balancer is stopping"},
		{"before the first round", Snapshot{Dispatcher: &messages.DispatcherStats{Backends: []messages.BackendState{up}}},
			false, "waiting for the first health round"},
		{"all down or ejected", Snapshot{Dispatcher: &messages.DispatcherStats{Ready: true,
			Backends: []messages.BackendState{down, ejected}}}, false, "no backend is up (2 down or ejected)"},
		{"one up", Snapshot{Dispatcher: &messages.DispatcherStats{Ready: true,
			Backends: []messages.BackendState{down, ejected, up}}, Conns: &messages.ConnStats{}}, true, ""},
		{"not probed counts as up once ready", Snapshot{Dispatcher: &messages.DispatcherStats{Ready: true,
			Backends: []messages.BackendState{unprobed}}}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready, why := readiness(&tt.snap)
			actortest.Equal(t, "ready", ready, tt.ready)
			actortest.Equal(t, "why", why, tt.why)
			if strings.Contains(why, "\n") {
				t.Fatalf("reason %q is not one line", why)
			}
		})
	}
}

func TestStateOf(t *testing.T) {
	tests := []struct {
		b    messages.BackendState
		want string
	}{
		{messages.BackendState{Up: true}, "unknown"},
		{messages.BackendState{Probed: true, Up: true}, "up"},
		{messages.BackendState{Probed: true}, "down"},
		{messages.BackendState{}, "down"}, // taken down by a refused connect before any probe
		{messages.BackendState{Probed: true, Up: true, Ejected: true}, "ejected"},
		{messages.BackendState{Probed: true, Ejected: true}, "down"},
		// Ejected before any probe (real requests failed first): ejected, as backend_up says.
		{messages.BackendState{Up: true, Ejected: true}, "ejected"},
	}
	for _, tt := range tests {
		actortest.Equal(t, "stateOf("+show(tt.b)+")", stateOf(&tt.b), tt.want)
		found := false
		for _, n := range stateNames {
			found = found || n == tt.want
		}
		if !found {
			t.Fatalf("state %q is not in stateNames %v", tt.want, stateNames)
		}
	}
}

func show(b messages.BackendState) string {
	s, _ := json.Marshal(map[string]bool{"probed": b.Probed, "up": b.Up, "ejected": b.Ejected})
	return string(s)
}

func TestBucketsAreCumulative(t *testing.T) {
	var h messages.Histogram
	h.Observe(100 * time.Microsecond) // bucket 0
	h.Observe(250 * time.Microsecond) // bucket 0 (a bound is inclusive)
	h.Observe(3 * time.Millisecond)   // bucket 4 (2.5ms, 5ms]
	h.Observe(time.Second)            // bucket 11
	h.Observe(time.Minute)            // past the last bound: only in the count
	m := buckets(&h)
	actortest.Equal(t, "bucket count", len(m), len(messages.HistBounds))
	want := map[float64]uint64{}
	cum := []uint64{2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4}
	for i, b := range messages.HistBounds {
		want[b.Seconds()] = cum[i]
	}
	actortest.Equal(t, "buckets", m, want)
	if h.Count() != 5 {
		t.Fatalf("count %d", h.Count())
	}
}

// stub is an actor standing in for one owner of counts: it answers every StatsRequest with
// what answer gives (nothing when it returns nil).
func stub(sys *actor.ActorSystem, answer func() []any) *actor.PID {
	return sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.StatsRequest); ok {
			for _, a := range answer() {
				ctx.Send(m.ReplyTo, a)
			}
		}
	}))
}

func hist(ds ...time.Duration) messages.Histogram {
	var h messages.Histogram
	for _, d := range ds {
		h.Observe(d)
	}
	return h
}

// loops are the two event loops' counts the Acceptor stub sends.
func loops() (*messages.LoopStats, *messages.LoopStats) {
	l0 := &messages.LoopStats{Loop: 0, Traffic: messages.TrafficStats{Backends: make([]messages.BackendTraffic, 2)}}
	l0.Traffic.Backends[0].Requests[messages.MethodGET][messages.Code2xx] = 5
	l0.Traffic.Backends[0].Duration = hist(time.Millisecond, time.Millisecond, 2*time.Millisecond, 3*time.Millisecond, time.Second)
	l0.Traffic.Backends[0].BytesIn = 500
	l0.Traffic.Backends[1].Requests[messages.MethodPOST][messages.Code5xx] = 2
	l0.Traffic.Backends[1].Failed = 2
	l0.Traffic.Unrouted.Requests[messages.MethodGET][messages.Code5xx] = 1
	l0.Traffic.Unrouted.BytesIn = 50
	l0.Traffic.Local[messages.LocalNoBackend] = 1
	l1 := &messages.LoopStats{Loop: 1, Traffic: messages.TrafficStats{Backends: make([]messages.BackendTraffic, 1)}}
	l1.Traffic.Backends[0].Requests[messages.MethodGET][messages.Code2xx] = 3
	l1.Traffic.Backends[0].Requests[messages.MethodGET][messages.Code4xx] = 1
	l1.Traffic.Backends[0].Duration = hist(time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond)
	l1.Traffic.Backends[0].BytesIn = 400
	return l0, l1
}

// stubs are the stand-ins for the owners; what the Dispatcher stub says can change.
type stubs struct {
	sys     *actor.ActorSystem
	targets Targets
	disp    atomic.Pointer[messages.DispatcherStats]
}

func readyStats() *messages.DispatcherStats {
	now := time.Now()
	return &messages.DispatcherStats{Ready: true, InFlight: 1, N: 4, Picks: 12, QueueWait: hist(time.Millisecond),
		Backends: []messages.BackendState{
			{Addr: testBackendNames[0], Weight: 1, Probed: true, Up: true, Since: now, InFlight: 1, Latency: 2 * time.Millisecond},
			{Addr: testBackendNames[1], Weight: 2, Probed: true, Reason: "connection refused", Since: now},
		}}
}

func newStubs(t *testing.T, acceptorFirst bool, healthAnswers bool) *stubs {
	sys := actortest.NewSystem(t)
	s := &stubs{sys: sys}
	s.disp.Store(readyStats())
	s.targets.Dispatcher = stub(sys, func() []any { return []any{s.disp.Load()} })
	s.targets.Health = stub(sys, func() []any {
		if !healthAnswers {
			return nil
		}
		at := time.Now()
		return []any{&messages.HealthStats{Rounds: 3, Kind: "classic", Interval: 3 * time.Second,
			Backends: []messages.BackendChecks{
				{Passed: 3, Duration: hist(time.Millisecond, time.Millisecond, time.Millisecond),
					History: []messages.CheckResult{{At: at, OK: true, Took: time.Millisecond}}},
				{Passed: 1, Failed: 2, Duration: hist(time.Millisecond, time.Second, time.Second),
					History: []messages.CheckResult{{At: at, Took: time.Second, Reason: "connection refused"}}},
			}}}
	})
	s.targets.Acceptor = stub(sys, func() []any {
		l0, l1 := loops()
		c := &messages.ConnStats{Open: 3, Accepted: 10, Refused: 1, Loops: 2}
		if acceptorFirst {
			return []any{c, l0, l1}
		}
		return []any{l0, l1, c} // the loops may answer before the Acceptor's own reply arrives
	})
	s.targets.AccessLog = stub(sys, func() []any {
		return []any{&messages.AccessLogStats{Lines: 11, Dropped: 1, Bytes: 999, Reopens: 1}}
	})
	return s
}

func TestGatherSumsTheLoops(t *testing.T) {
	s := newStubs(t, true, true)
	snap, err := gather(s.sys, &s.targets, actortest.Wait, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap)
}

func checkSnapshot(t *testing.T, snap *Snapshot) {
	t.Helper()
	if snap.Dispatcher == nil || snap.Health == nil || snap.Conns == nil || snap.AccessLg == nil {
		t.Fatalf("snapshot incomplete: %+v", snap)
	}
	actortest.Equal(t, "loops", snap.Conns.Loops, 2)
	tr := &snap.Traffic
	actortest.Equal(t, "backends", len(tr.Backends), 2)
	actortest.Equal(t, "backend 0 requests", tr.Backends[0].Total(), uint64(9))
	actortest.Equal(t, "backend 0 bytes in", tr.Backends[0].BytesIn, uint64(900))
	actortest.Equal(t, "backend 0 durations", tr.Backends[0].Duration.Count(), uint64(9))
	actortest.Equal(t, "backend 1 requests", tr.Backends[1].Total(), uint64(2))
	actortest.Equal(t, "unrouted", tr.Unrouted.Total(), uint64(1))
	if snap.At.IsZero() {
		t.Fatal("snapshot without its time")
	}
}

// The Acceptor posts the StatsRequest to its loops before it sends its own ConnStats, so the
// loops' answers may come first: the snapshot must still wait for everything.
func TestGatherWithLoopsAnsweringFirst(t *testing.T) {
	s := newStubs(t, false, true)
	snap, err := gather(s.sys, &s.targets, actortest.Wait, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap)
}

func TestGatherTimesOutWithoutAnAnswer(t *testing.T) {
	s := newStubs(t, true, false)
	start := time.Now()
	snap, err := gather(s.sys, &s.targets, 200*time.Millisecond, 0)
	took := time.Since(start)
	if !errors.Is(err, errIncomplete) {
		t.Fatalf("err %v, want errIncomplete", err)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("gather took %v with a timeout of 200ms", took)
	}
	if snap.Health != nil || snap.Dispatcher == nil || snap.Conns == nil || snap.AccessLg == nil {
		t.Fatalf("snapshot: %+v, want everything but the health stats", snap)
	}
}

// A stub that answers only the first loop: the sum would be partial, so the connection and
// traffic counts are left out rather than going backwards.
func TestGatherDropsPartialLoopSums(t *testing.T) {
	sys := actortest.NewSystem(t)
	s := &stubs{sys: sys}
	s.targets.Dispatcher = stub(sys, func() []any { return []any{readyStats()} })
	s.targets.Health = stub(sys, func() []any { return []any{&messages.HealthStats{}} })
	s.targets.Acceptor = stub(sys, func() []any {
		l0, _ := loops()
		return []any{&messages.ConnStats{Loops: 2}, l0}
	})
	snap, err := gather(sys, &s.targets, 200*time.Millisecond, 0)
	if !errors.Is(err, errIncomplete) {
		t.Fatalf("err %v, want errIncomplete", err)
	}
	if snap.Conns != nil || snap.Dispatcher == nil || snap.Health == nil {
		t.Fatalf("snapshot %+v: want no connection counts, the rest", snap)
	}
}

// startServer starts the admin listener on the stubs.
func startServer(t *testing.T, s *stubs, timeout time.Duration) *Server {
	t.Helper()
	srv, err := Start(Config{Addr: "127.0.0.1:0", System: s.sys, Targets: s.targets, Backends: testBackendNames,
		Version: "test", Listen: "127.0.0.1:8080", Policy: "classic", HealthCheck: "classic",
		HealthInterval: 3 * time.Second, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

var httpClient = &http.Client{Timeout: actortest.Wait, Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, srv *Server, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := httpClient.Get("http://" + srv.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sumBy sums a family's samples by the value of one label.
func sumBy(t *testing.T, fams map[string]*dto.MetricFamily, name, by string) map[string]float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	sums := map[string]float64{}
	for _, m := range f.GetMetric() {
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		sums[label(m, by)] += v
	}
	return sums
}

func TestMetrics(t *testing.T) {
	s := newStubs(t, true, true)
	srv := startServer(t, s, actortest.Wait)
	code, hdr, body := get(t, srv, "/metrics")
	actortest.Equal(t, "status", code, http.StatusOK)
	if !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("Content-Type %q", hdr.Get("Content-Type"))
	}
	fams := parseMetrics(t, body)

	actortest.Equal(t, "requests by backend", sumBy(t, fams, "loadbalancer_requests_total", "backend"),
		map[string]float64{testBackendNames[0]: 9, testBackendNames[1]: 2, "none": 1})
	if f := fams["loadbalancer_requests_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("loadbalancer_requests_total is a %v", f.GetType())
	}
	series := map[string]float64{}
	for _, m := range fams["loadbalancer_requests_total"].GetMetric() {
		series[label(m, "backend")+" "+label(m, "method")+" "+label(m, "code")] = m.GetCounter().GetValue()
	}
	for k, want := range map[string]float64{
		testBackendNames[0] + " GET 2xx": 8, testBackendNames[0] + " GET 4xx": 1, testBackendNames[1] + " POST 5xx": 2,
		"none GET 5xx": 1, testBackendNames[1] + " GET 2xx": 0, // common series exist at zero
	} {
		got, ok := series[k]
		if !ok || got != want {
			t.Fatalf("requests_total{%s}: got %v (present %v), want %v", k, got, ok, want)
		}
	}
	actortest.Equal(t, "failures", sumBy(t, fams, "loadbalancer_request_failures_total", "backend"),
		map[string]float64{testBackendNames[0]: 0, testBackendNames[1]: 2, "none": 0})
	actortest.Equal(t, "local responses", sumBy(t, fams, "loadbalancer_local_responses_total", "reason")["no_backend"], 1.0)
	actortest.Equal(t, "bytes in", sumBy(t, fams, "loadbalancer_request_bytes_total", "backend")[testBackendNames[0]], 900.0)

	var durCount uint64
	for _, m := range fams["loadbalancer_request_duration_seconds"].GetMetric() {
		if label(m, "backend") != testBackendNames[0] {
			continue
		}
		h := m.GetHistogram()
		durCount = h.GetSampleCount()
		prev := uint64(0)
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() < prev {
				t.Fatalf("buckets not cumulative: %v", h.GetBucket())
			}
			prev = b.GetCumulativeCount()
		}
		if prev != 9 { // every request took at most a second: all are in the 10s bucket
			t.Fatalf("last bucket (10s) %d, want 9", prev)
		}
	}
	actortest.Equal(t, "duration count", durCount, uint64(9))

	gauges := map[string]float64{}
	for name, f := range fams {
		if len(f.GetMetric()) == 1 && len(f.GetMetric()[0].GetLabel()) == 0 {
			gauges[name] = f.GetMetric()[0].GetGauge().GetValue() + f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"loadbalancer_ready": 1, "loadbalancer_requests_in_flight": 1, "loadbalancer_requests_in_flight_limit": 4,
		"loadbalancer_client_connections_open": 3, "loadbalancer_client_connections_accepted_total": 10,
		"loadbalancer_client_connections_refused_total": 1, "loadbalancer_health_rounds_total": 3,
		"loadbalancer_access_log_lines_total": 11, "loadbalancer_access_log_dropped_lines_total": 1,
		"loadbalancer_access_log_reopens_total": 1,
	} {
		actortest.Equal(t, name, gauges[name], want)
	}
	actortest.Equal(t, "backend up", sumBy(t, fams, "loadbalancer_backend_up", "backend"),
		map[string]float64{testBackendNames[0]: 1, testBackendNames[1]: 0})
	states := map[string]float64{}
	for _, m := range fams["loadbalancer_backend_state"].GetMetric() {
		states[label(m, "backend")+" "+label(m, "state")] = m.GetGauge().GetValue()
	}
	actortest.Equal(t, "states", states, map[string]float64{
		testBackendNames[0] + " up": 1, testBackendNames[0] + " down": 0, testBackendNames[0] + " ejected": 0, testBackendNames[0] + " unknown": 0, testBackendNames[0] + " draining": 0,
		testBackendNames[1] + " up": 0, testBackendNames[1] + " down": 1, testBackendNames[1] + " ejected": 0, testBackendNames[1] + " unknown": 0, testBackendNames[1] + " draining": 0,
	})
	checks := map[string]float64{}
	for _, m := range fams["loadbalancer_health_checks_total"].GetMetric() {
		checks[label(m, "backend")+" "+label(m, "result")] = m.GetCounter().GetValue()
	}
	actortest.Equal(t, "health checks", checks, map[string]float64{
		testBackendNames[0] + " pass": 3, testBackendNames[0] + " fail": 0, testBackendNames[1] + " pass": 1, testBackendNames[1] + " fail": 2,
	})
	if fams["go_goroutines"] == nil || fams["loadbalancer_build_info"] == nil {
		t.Fatal("the Go collector or build_info is missing")
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool is not on PATH")
			}
			t.Skip("promtool is not on PATH")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

// An owner that does not answer leaves its families out; the scrape still succeeds.
func TestMetricsWithoutAnAnswer(t *testing.T) {
	s := newStubs(t, true, false)
	srv := startServer(t, s, 200*time.Millisecond)
	start := time.Now()
	code, _, body := get(t, srv, "/metrics")
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("scrape took %v with a timeout of 200ms", took)
	}
	actortest.Equal(t, "status", code, http.StatusOK)
	fams := parseMetrics(t, body)
	for _, name := range []string{"loadbalancer_health_rounds_total", "loadbalancer_health_checks_total",
		"loadbalancer_health_check_duration_seconds"} {
		if fams[name] != nil {
			t.Fatalf("%s present though the HealthMonitor did not answer", name)
		}
	}
	for _, name := range []string{"loadbalancer_requests_total", "loadbalancer_ready", "loadbalancer_backend_up"} {
		if fams[name] == nil {
			t.Fatalf("%s missing though its owner answered", name)
		}
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	s := newStubs(t, true, true)
	srv := startServer(t, s, actortest.Wait)
	code, _, body := get(t, srv, "/healthz")
	actortest.Equal(t, "/healthz", []any{code, string(body)}, []any{http.StatusOK, "ok\n"})

	code, _, body = get(t, srv, "/readyz")
	actortest.Equal(t, "/readyz ready", []any{code, string(body)}, []any{http.StatusOK, "ready\n"})

	notReady := readyStats()
	notReady.Ready = false
	s.disp.Store(notReady)
	code, _, body = get(t, srv, "/readyz")
	actortest.Equal(t, "/readyz before the first round", []any{code, string(body)},
		[]any{http.StatusServiceUnavailable, "waiting for the first health round\n"})

	allDown := readyStats()
	allDown.Backends[0].Up = false
	s.disp.Store(allDown)
	code, _, body = get(t, srv, "/readyz")
	actortest.Equal(t, "/readyz with every backend down", []any{code, string(body)},
		[]any{http.StatusServiceUnavailable, "no backend is up (2 down or ejected)\n"})
}

func TestReadyzWhenTheDispatcherIsSilent(t *testing.T) {
	sys := actortest.NewSystem(t)
	s := &stubs{sys: sys}
	silent := func() []any { return nil }
	s.targets = Targets{Dispatcher: stub(sys, silent), Health: stub(sys, silent), Acceptor: stub(sys, silent)}
	srv := startServer(t, s, 200*time.Millisecond)
	code, _, body := get(t, srv, "/readyz")
	actortest.Equal(t, "/readyz", []any{code, string(body)},
		[]any{http.StatusServiceUnavailable, "the actors did not answer in time\n"})
}

// The keys /api/stats has, at each level, as API.md documents them.
var (
	apiTopKeys = []string{"version", "started", "now", "listen", "policy", "health_check",
		"health_interval_seconds", "ready", "ready_reason", "totals", "history", "backends"}
	apiTotalsKeys = []string{"requests", "requests_per_second", "errors_per_second", "p50_ms", "p99_ms",
		"in_flight", "queue", "connections_open", "local_responses", "bytes_in", "bytes_out"}
	apiPointKeys   = []string{"t", "rps", "eps", "p50_ms", "p99_ms"}
	apiBackendKeys = []string{"address", "state", "reason", "since", "weight", "in_flight", "requests",
		"requests_per_second", "error_rate", "p99_ms", "latency_ms", "health"}
	apiCheckKeys = []string{"t", "ok", "ms", "reason"}
)

func keysOf(t *testing.T, what string, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: got %T, want an object", what, v)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sorted(ks []string) []string {
	c := append([]string(nil), ks...)
	sort.Strings(c)
	return c
}

// Every key the test expects is in API.md, so the test and the document agree.
func TestAPIKeysAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{apiTopKeys, apiTotalsKeys, apiPointKeys, apiBackendKeys, apiCheckKeys} {
		for _, k := range keys {
			if !regexp.MustCompile(`"` + regexp.QuoteMeta(k) + `":`).Match(doc) {
				t.Fatalf("key %q is not in API.md", k)
			}
		}
	}
}

func TestAPIStats(t *testing.T) {
	s := newStubs(t, true, true)
	srv := startServer(t, s, actortest.Wait)
	// The sampler takes a sample at start and one a second: wait for a point of history.
	var stats map[string]any
	deadline := time.Now().Add(actortest.Wait)
	for {
		code, hdr, body := get(t, srv, "/api/stats")
		actortest.Equal(t, "status", code, http.StatusOK)
		actortest.Equal(t, "Content-Type", hdr.Get("Content-Type"), "application/json")
		stats = nil
		if err := json.Unmarshal(body, &stats); err != nil {
			t.Fatalf("/api/stats is not JSON: %v\n%s", err, body)
		}
		if h, _ := stats["history"].([]any); len(h) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no history after %v: %s", actortest.Wait, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	actortest.Equal(t, "top-level keys", keysOf(t, "stats", stats), sorted(apiTopKeys))
	actortest.Equal(t, "totals keys", keysOf(t, "totals", stats["totals"]), sorted(apiTotalsKeys))
	point := stats["history"].([]any)[0]
	actortest.Equal(t, "history point keys", keysOf(t, "point", point), sorted(apiPointKeys))
	backends, _ := stats["backends"].([]any)
	actortest.Equal(t, "backends", len(backends), 2)
	for i, b := range backends {
		actortest.Equal(t, "backend keys", keysOf(t, "backend", b), sorted(apiBackendKeys))
		row := b.(map[string]any)
		actortest.Equal(t, "address", row["address"], testBackendNames[i])
		checks, _ := row["health"].([]any)
		actortest.Equal(t, "checks", len(checks), 1)
		actortest.Equal(t, "check keys", keysOf(t, "check", checks[0]), sorted(apiCheckKeys))
	}

	actortest.Equal(t, "version", stats["version"], "test")
	actortest.Equal(t, "ready", stats["ready"], true)
	actortest.Equal(t, "ready_reason", stats["ready_reason"], "")
	actortest.Equal(t, "health interval", stats["health_interval_seconds"], 3.0)
	for _, k := range []string{"started", "now"} {
		if _, err := time.Parse(time.RFC3339, stats[k].(string)); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	totals := stats["totals"].(map[string]any)
	for k, want := range map[string]float64{"requests": 12, "in_flight": 1, "connections_open": 3,
		"local_responses": 1, "bytes_in": 950, "requests_per_second": 0} {
		actortest.Equal(t, "totals "+k, totals[k], want)
	}
	rows := backends
	first, second := rows[0].(map[string]any), rows[1].(map[string]any)
	actortest.Equal(t, "first state", []any{first["state"], first["reason"], first["weight"], first["requests"]},
		[]any{"up", "", 1.0, 9.0})
	actortest.Equal(t, "second state", []any{second["state"], second["reason"], second["weight"], second["requests"]},
		[]any{"down", "connection refused", 2.0, 2.0})
	if ms, ok := first["latency_ms"].(float64); !ok || math.Abs(ms-2) > 1e-9 {
		t.Fatalf("latency_ms %v, want 2", first["latency_ms"])
	}
	if second["latency_ms"] != nil {
		t.Fatalf("latency_ms %v for a backend without an estimate, want null", second["latency_ms"])
	}
}

// A backend past the end of every loop's table (no loop has served it yet: an idle load
// balancer, or a backend down since start) is at zero, not a division by zero: /api/stats stays
// JSON, once the window has two samples too.
func TestAPIStatsWithAnUnservedBackend(t *testing.T) {
	s := newStubs(t, true, true)
	third := readyStats()
	third.Backends = append(third.Backends, messages.BackendState{Addr: "127.0.0.1:9003", Weight: 1, Up: true, Since: time.Now()})
	s.disp.Store(third)
	srv, err := Start(Config{Addr: "127.0.0.1:0", System: s.sys, Targets: s.targets,
		Backends: append(append([]string(nil), testBackendNames...), "127.0.0.1:9003"),
		Version:  "test", Timeout: actortest.Wait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	deadline := time.Now().Add(actortest.Wait)
	for {
		code, _, body := get(t, srv, "/api/stats")
		var stats struct {
			History  []any `json:"history"`
			Backends []struct {
				Address string  `json:"address"`
				RPS     float64 `json:"requests_per_second"`
			} `json:"backends"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &stats) != nil || len(stats.Backends) != 3 {
			t.Fatalf("/api/stats: %d %s", code, body)
		}
		if len(stats.History) > 0 {
			actortest.Equal(t, "unserved backend's rate", stats.Backends[2].RPS, 0.0)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no history after %v: %s", actortest.Wait, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
