package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/actortest"
	"github.com/loadbalancer/loadbalancer/messages"
)

// fakeControl stands in for main's Control: it keeps a configured list, validates a new one as
// main does (every problem, nothing applied), and records the calls.
type fakeControl struct {
	mu       sync.Mutex
	list     []messages.Backend
	draining map[string]messages.BackendState // removed backends with requests in flight
	inFlight map[string]int                   // requests in flight per address
	calls    []string
	setErr   error // SetBackends fails with it (once)
	reload   ReloadResult
	reloadTo []messages.Backend // what a good reload makes the list
	panicIn  string             // a method that panics (once)
}

func newFakeControl() *fakeControl {
	return &fakeControl{
		list: []messages.Backend{
			{Addr: testBackendNames[0], Weight: 1},
			{Addr: testBackendNames[1], Weight: 2, MaxInFlight: 10},
		},
		draining: map[string]messages.BackendState{},
		inFlight: map[string]int{},
		reload:   ReloadResult{OK: true, Applied: &messages.BackendsApplied{}},
	}
}

var started = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

func (f *fakeControl) record(call string) {
	f.calls = append(f.calls, call)
	if f.panicIn == call {
		f.panicIn = ""
		panic("boom in " + call)
	}
}

func (f *fakeControl) Backends(context.Context) ([]messages.BackendState, []messages.Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Backends")
	var states []messages.BackendState
	for _, b := range f.list {
		states = append(states, messages.BackendState{Addr: b.Addr, Weight: b.Weight, Probed: true, Up: true,
			Since: started, InFlight: f.inFlight[b.Addr], Ejections: 1, Backup: b.Backup, MaxInFlight: b.MaxInFlight})
	}
	for _, s := range f.draining {
		states = append(states, s)
	}
	return states, slices.Clone(f.list), nil
}

func (f *fakeControl) SetBackends(_ context.Context, _, list []messages.Backend) (*messages.BackendsApplied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetBackends")
	if err := f.setErr; err != nil {
		f.setErr = nil
		return nil, err
	}
	var problems []string
	seen := map[string]bool{}
	for _, b := range list {
		if _, port, err := net.SplitHostPort(b.Addr); err != nil {
			problems = append(problems, fmt.Sprintf("backend %q: %v", b.Addr, err))
		} else if _, err := strconv.Atoi(port); err != nil {
			problems = append(problems, fmt.Sprintf("backend %q: bad port", b.Addr))
		}
		if b.Health.Method != "" && b.Health.Method != "GET" && b.Health.Method != "HEAD" {
			problems = append(problems, fmt.Sprintf("backend %s: health: method must be GET or HEAD", b.Addr))
		}
		if seen[b.Addr] {
			problems = append(problems, fmt.Sprintf("backend %s listed twice", b.Addr))
		}
		seen[b.Addr] = true
	}
	if len(list) == 0 {
		problems = append(problems, "at least one backend is needed")
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return f.apply(list), nil
}

// apply makes list the configured one (f.mu held); a removed backend with requests in flight
// drains.
func (f *fakeControl) apply(list []messages.Backend) *messages.BackendsApplied {
	res := &messages.BackendsApplied{Added: []string{}, Removed: []string{}, Changed: []string{}}
	old := map[string]messages.Backend{}
	for _, b := range f.list {
		old[b.Addr] = b
	}
	now := map[string]bool{}
	for _, b := range list {
		now[b.Addr] = true
		delete(f.draining, b.Addr)
		if o, ok := old[b.Addr]; !ok {
			res.Added = append(res.Added, b.Addr)
		} else if o != b {
			res.Changed = append(res.Changed, b.Addr)
		}
	}
	for _, b := range f.list {
		if !now[b.Addr] {
			res.Removed = append(res.Removed, b.Addr)
			if n := f.inFlight[b.Addr]; n > 0 {
				f.draining[b.Addr] = messages.BackendState{Addr: b.Addr, Weight: b.Weight, Probed: true, Up: true,
					Removed: true, Since: time.Now(), InFlight: n}
			}
		}
	}
	f.list = slices.Clone(list)
	return res
}

func (f *fakeControl) Reload(context.Context) ReloadResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Reload")
	if f.reload.OK && f.reloadTo != nil {
		f.apply(f.reloadTo)
	}
	return f.reload
}

func (f *fakeControl) Reloads(context.Context) (int, int) { return 3, 1 }

func (f *fakeControl) Config(context.Context) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Config")
	return map[string]any{"listen": "127.0.0.1:8080", "policy": "classic", "backends": []map[string]any{{"address": testBackendNames[0]}}}
}

// count is how many times call was made.
func (f *fakeControl) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (f *fakeControl) configured() []messages.Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

// drain ends addr's requests in flight: a removed backend is gone then.
func (f *fakeControl) drain(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, addr)
	delete(f.draining, addr)
}

func (f *fakeControl) setInFlight(addr string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight[addr] = n
}

// startAPI starts the admin listener with the runtime API on ctl (and the stubs for the counts).
func startAPI(t *testing.T, ctl Control, token string) *Server {
	t.Helper()
	s := newStubs(t, true, true)
	srv, err := Start(Config{Addr: "127.0.0.1:0", System: s.sys, Targets: s.targets, Backends: testBackendNames,
		Version: "test", Timeout: actortest.Wait, Control: ctl, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// call makes one request; body is sent as is (a string) or as JSON.
func call(t *testing.T, srv *Server, method, path string, body any, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "http://"+srv.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// callJSON is call, checking the status and decoding the answer.
func callJSON(t *testing.T, srv *Server, method, path string, body any, want int, hdr ...string) map[string]any {
	t.Helper()
	code, h, out := call(t, srv, method, path, body, hdr...)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, out)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s %s: not a JSON object: %v\n%s", method, path, err, out)
	}
	return m
}

// wantError checks an error answer: its status, and a JSON error with problems.
func wantError(t *testing.T, srv *Server, method, path string, body any, want int, hdr ...string) apiErr {
	t.Helper()
	m := callJSON(t, srv, method, path, body, want, hdr...)
	var e apiErr
	j, _ := json.Marshal(m)
	if err := json.Unmarshal(j, &e); err != nil || e.Error == "" || e.Problems == nil {
		t.Fatalf("%s %s: not an API error: %s", method, path, j)
	}
	return e
}

// The keys of a backend in the API's JSON, as API.md documents them (health and ejected_until
// only when set).
var apiRuntimeBackendKeys = []string{"address", "state", "reason", "since", "weight", "max_in_flight", "backup",
	"in_flight", "ejections", "latency_ms", "requests", "failures"}

func TestAPIRuntimeKeysAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(apiRuntimeBackendKeys, "health", "ejected_until", "backends", "backend", "applied",
		"added", "removed", "changed", "error", "problems", "ok", "needs_restart", "errors") {
		if !regexp.MustCompile(`"` + regexp.QuoteMeta(k) + `":`).Match(doc) {
			t.Fatalf("key %q is not in API.md", k)
		}
	}
	for _, route := range []string{"GET /api/backends", "POST /api/backends", "GET /api/backends/{addr}",
		"PATCH /api/backends/{addr}", "DELETE /api/backends/{addr}", "GET /api/config", "POST /api/reload"} {
		if !bytes.Contains(doc, []byte(route)) {
			t.Fatalf("%s is not in API.md", route)
		}
	}
}

func backendAt(t *testing.T, list map[string]any, i int) map[string]any {
	t.Helper()
	bs, _ := list["backends"].([]any)
	if i >= len(bs) {
		t.Fatalf("no backend %d in %v", i, list)
	}
	return bs[i].(map[string]any)
}

func TestAPIListAndShow(t *testing.T) {
	ctl := newFakeControl()
	ctl.setInFlight(testBackendNames[0], 1)
	srv := startAPI(t, ctl, "")
	list := callJSON(t, srv, "GET", "/api/backends", nil, http.StatusOK)
	actortest.Equal(t, "backends", len(list["backends"].([]any)), 2)
	first, second := backendAt(t, list, 0), backendAt(t, list, 1)
	actortest.Equal(t, "keys", keysOf(t, "backend", first), sorted(apiRuntimeBackendKeys))
	actortest.Equal(t, "first", []any{first["address"], first["state"], first["weight"], first["in_flight"], first["ejections"]},
		[]any{testBackendNames[0], "up", 1.0, 1.0, 1.0})
	actortest.Equal(t, "second", []any{second["address"], second["weight"], second["max_in_flight"], second["backup"]},
		[]any{testBackendNames[1], 2.0, 10.0, false})
	// The counts come from the event loops' stub: 9 requests on the first, 2 failed on the second.
	actortest.Equal(t, "counts", []any{first["requests"], first["failures"], second["requests"], second["failures"]},
		[]any{9.0, 0.0, 2.0, 2.0})
	if _, err := time.Parse(time.RFC3339, first["since"].(string)); err != nil {
		t.Fatalf("since: %v", err)
	}

	one := callJSON(t, srv, "GET", "/api/backends/"+testBackendNames[1], nil, http.StatusOK)
	actortest.Equal(t, "one", one["address"], testBackendNames[1])
	// A bare port is 127.0.0.1:PORT, as in the file.
	one = callJSON(t, srv, "GET", "/api/backends/9001", nil, http.StatusOK)
	actortest.Equal(t, "by port", one["address"], testBackendNames[0])
	code, _, _ := call(t, srv, "HEAD", "/api/backends", nil)
	actortest.Equal(t, "HEAD", code, http.StatusOK)

	e := wantError(t, srv, "GET", "/api/backends/127.0.0.1:9999", nil, http.StatusNotFound)
	if !strings.Contains(e.Error, "127.0.0.1:9999") {
		t.Fatalf("404 error %q does not name the backend", e.Error)
	}
	wantError(t, srv, "GET", "/api/nothing", nil, http.StatusNotFound)
}

func TestAPIAddBackend(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	code, hdr, out := call(t, srv, "POST", "/api/backends",
		`{"address": "127.0.0.1:9003", "weight": 3, "max_in_flight": 5, "backup": true, "health": {"path": "/up", "status": "200-299"}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, out)
	}
	actortest.Equal(t, "Location", hdr.Get("Location"), "/api/backends/127.0.0.1:9003")
	var ans struct {
		Backend map[string]any            `json:"backend"`
		Applied *messages.BackendsApplied `json:"applied"`
	}
	if err := json.Unmarshal(out, &ans); err != nil {
		t.Fatal(err)
	}
	actortest.Equal(t, "applied", ans.Applied.Added, []string{"127.0.0.1:9003"})
	actortest.Equal(t, "backend", []any{ans.Backend["address"], ans.Backend["weight"], ans.Backend["max_in_flight"], ans.Backend["backup"]},
		[]any{"127.0.0.1:9003", 3.0, 5.0, true})
	actortest.Equal(t, "health", ans.Backend["health"], map[string]any{"path": "/up", "status": "200-299"})
	want := append(newFakeControl().list, messages.Backend{Addr: "127.0.0.1:9003", Weight: 3, MaxInFlight: 5, Backup: true,
		Health: messages.HealthOverride{Path: "/up", Status: "200-299"}})
	actortest.Equal(t, "configured", ctl.configured(), want)

	// A bare port, without a weight: 127.0.0.1:PORT, weight 1.
	m := callJSON(t, srv, "POST", "/api/backends", `{"address": "9004"}`, http.StatusCreated)
	actortest.Equal(t, "bare port", []any{m["backend"].(map[string]any)["address"], m["backend"].(map[string]any)["weight"]},
		[]any{"127.0.0.1:9004", 1.0})

	sets := ctl.count("SetBackends")
	e := wantError(t, srv, "POST", "/api/backends", `{"address": "127.0.0.1:9001"}`, http.StatusConflict)
	if !strings.Contains(e.Error, "already configured") {
		t.Fatalf("409 error %q", e.Error)
	}
	wantError(t, srv, "POST", "/api/backends", `{"address": "9001"}`, http.StatusConflict) // the same, by port
	actortest.Equal(t, "SetBackends calls after the duplicates", ctl.count("SetBackends"), sets)
	actortest.Equal(t, "backends", len(ctl.configured()), 4)
}

// A change Control refuses is a 400 with every problem, and nothing changes.
func TestAPIValidationError(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	before := ctl.configured()
	e := wantError(t, srv, "POST", "/api/backends", `{"address": "nohost", "health": {"method": "POST"}}`, http.StatusBadRequest)
	actortest.Equal(t, "problems", len(e.Problems), 2)
	actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), 1)
	actortest.Equal(t, "configured", ctl.configured(), before)

	// Checks that need no Control are made before calling it.
	for _, body := range []string{`{"address": "127.0.0.1:9005", "weight": 0}`, `{"address": "127.0.0.1:9005", "weight": 1001}`,
		`{"address": "127.0.0.1:9005", "max_in_flight": -1}`, `{"weight": 2}`} {
		wantError(t, srv, "POST", "/api/backends", body, http.StatusBadRequest)
	}
	e = wantError(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{"weight": 0, "state": "off"}`, http.StatusBadRequest)
	actortest.Equal(t, "PATCH problems", len(e.Problems), 2)
	wantError(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{}`, http.StatusBadRequest)
	wantError(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{"state": "draining", "weight": 2}`, http.StatusBadRequest)
	actortest.Equal(t, "SetBackends calls after local refusals", ctl.count("SetBackends"), 1)

	// Removing the last backend is refused by Control: still there.
	callJSON(t, srv, "DELETE", "/api/backends/"+testBackendNames[0], nil, http.StatusAccepted)
	e = wantError(t, srv, "DELETE", "/api/backends/"+testBackendNames[1], nil, http.StatusBadRequest)
	actortest.Equal(t, "last backend", e.Problems, []string{"at least one backend is needed"})
	actortest.Equal(t, "configured", ctl.configured(), before[1:])

	// Control fails otherwise: 503.
	ctl.mu.Lock()
	ctl.setErr = errors.New("the actors did not answer")
	ctl.mu.Unlock()
	wantError(t, srv, "PATCH", "/api/backends/"+testBackendNames[1], `{"weight": 7}`, http.StatusServiceUnavailable)
	actortest.Equal(t, "configured", ctl.configured(), before[1:])
}

func TestAPIBadJSON(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	for _, tt := range []struct {
		name, body string
		code       int
		says       string
	}{
		{"syntax", `{"address": `, http.StatusBadRequest, "bad JSON"},
		{"unknown field", `{"address": "127.0.0.1:9005", "wieght": 2}`, http.StatusBadRequest, `unknown field "wieght"`},
		{"unknown health field", `{"address": "127.0.0.1:9005", "health": {"paht": "/"}}`, http.StatusBadRequest, `unknown field "paht"`},
		{"two values", `{"address": "127.0.0.1:9005"} {"address": "127.0.0.1:9006"}`, http.StatusBadRequest, "more than one JSON value"},
		{"trailing data", `{"address": "127.0.0.1:9005"} x`, http.StatusBadRequest, "more than one JSON value"},
		{"empty", ``, http.StatusBadRequest, "empty"},
		{"wrong type", `{"address": "127.0.0.1:9005", "weight": "2"}`, http.StatusBadRequest, "weight: got a JSON string, want int"},
		{"not an object", `[1]`, http.StatusBadRequest, "bad JSON"},
		{"too large", `{"address": "` + strings.Repeat("a", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, route := range [][2]string{{"POST", "/api/backends"}, {"PATCH", "/api/backends/" + testBackendNames[0]}} {
				body := tt.body
				if route[0] == "PATCH" {
					body = strings.ReplaceAll(strings.ReplaceAll(body, `"address"`, `"state"`), "127.0.0.1:9005", "enabled")
					if tt.name == "unknown health field" {
						continue
					}
				}
				e := wantError(t, srv, route[0], route[1], body, tt.code)
				if !strings.Contains(e.Error, tt.says) {
					t.Fatalf("%s: error %q does not say %q", route[0], e.Error, tt.says)
				}
			}
		})
	}
	actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), 0)
	actortest.Equal(t, "Control calls", len(ctl.calls), 0)
}

func TestAPIPatchSettings(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	m := callJSON(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{"weight": 5, "max_in_flight": 3, "backup": true}`, http.StatusOK)
	b := m["backend"].(map[string]any)
	actortest.Equal(t, "backend", []any{b["weight"], b["max_in_flight"], b["backup"], b["state"]}, []any{5.0, 3.0, true, "up"})
	actortest.Equal(t, "applied", m["applied"], map[string]any{"added": []any{}, "removed": []any{}, "changed": []any{testBackendNames[0]}})
	actortest.Equal(t, "configured", ctl.configured()[0], messages.Backend{Addr: testBackendNames[0], Weight: 5, MaxInFlight: 3, Backup: true})

	// Nothing that changes: no call.
	sets := ctl.count("SetBackends")
	m = callJSON(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{"weight": 5, "state": "enabled"}`, http.StatusOK)
	actortest.Equal(t, "applied", m["applied"], nil)
	actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), sets)

	wantError(t, srv, "PATCH", "/api/backends/127.0.0.1:9999", `{"weight": 2}`, http.StatusNotFound)
	actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), sets)
}

// DELETE answers at once with the drain: in flight left, since when; once drained it is gone.
func TestAPIDeleteDrains(t *testing.T) {
	for _, how := range []string{"DELETE", "PATCH draining"} {
		t.Run(how, func(t *testing.T) {
			ctl := newFakeControl()
			ctl.setInFlight(testBackendNames[0], 3)
			srv := startAPI(t, ctl, "")
			path := "/api/backends/" + testBackendNames[0]
			var m map[string]any
			if how == "DELETE" {
				m = callJSON(t, srv, "DELETE", path, nil, http.StatusAccepted)
			} else {
				m = callJSON(t, srv, "PATCH", path, `{"state": "draining"}`, http.StatusAccepted)
			}
			b := m["backend"].(map[string]any)
			actortest.Equal(t, "drain", []any{b["state"], b["in_flight"]}, []any{"draining", 3.0})
			actortest.Equal(t, "applied", m["applied"].(map[string]any)["removed"], []any{testBackendNames[0]})
			actortest.Equal(t, "configured", ctl.configured(), newFakeControl().list[1:])

			one := callJSON(t, srv, "GET", path, nil, http.StatusOK)
			actortest.Equal(t, "progress", []any{one["state"], one["in_flight"]}, []any{"draining", 3.0})
			since, err := time.Parse(time.RFC3339, one["since"].(string))
			if err != nil || time.Since(since) > time.Minute {
				t.Fatalf("since %v (%v): want when it was removed", one["since"], err)
			}
			// Draining already: the same answer again, without a change.
			sets := ctl.count("SetBackends")
			callJSON(t, srv, "DELETE", path, nil, http.StatusAccepted)
			wantError(t, srv, "PATCH", path, `{"weight": 2}`, http.StatusConflict)
			actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), sets)

			ctl.drain(testBackendNames[0])
			wantError(t, srv, "GET", path, nil, http.StatusNotFound)
			wantError(t, srv, "DELETE", path, nil, http.StatusNotFound)
		})
	}
}

// A backend with nothing in flight is drained at once: the answer still says draining, with 0.
func TestAPIDeleteIdle(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	m := callJSON(t, srv, "DELETE", "/api/backends/"+testBackendNames[1], nil, http.StatusAccepted)
	b := m["backend"].(map[string]any)
	actortest.Equal(t, "drained", []any{b["address"], b["state"], b["in_flight"], b["weight"]}, []any{testBackendNames[1], "draining", 0.0, 2.0})
	wantError(t, srv, "GET", "/api/backends/"+testBackendNames[1], nil, http.StatusNotFound)
}

func TestAPIDisableEnable(t *testing.T) {
	ctl := newFakeControl()
	ctl.list = append(ctl.list, messages.Backend{Addr: "127.0.0.1:9003", Weight: 1})
	ctl.setInFlight(testBackendNames[0], 2)
	srv := startAPI(t, ctl, "")
	path := "/api/backends/" + testBackendNames[0]
	m := callJSON(t, srv, "PATCH", path, `{"state": "disabled"}`, http.StatusOK)
	b := m["backend"].(map[string]any)
	actortest.Equal(t, "disabled", []any{b["state"], b["in_flight"], b["weight"]}, []any{"disabled", 2.0, 1.0})
	actortest.Equal(t, "configured", len(ctl.configured()), 2)

	// Listed, as disabled, after it has drained too.
	ctl.drain(testBackendNames[0])
	list := callJSON(t, srv, "GET", "/api/backends", nil, http.StatusOK)
	var states []string
	for _, b := range list["backends"].([]any) {
		states = append(states, b.(map[string]any)["address"].(string)+" "+b.(map[string]any)["state"].(string))
	}
	actortest.Equal(t, "list", states, []string{testBackendNames[1] + " up", "127.0.0.1:9003 up", testBackendNames[0] + " disabled"})

	// Its settings can change while disabled, without a call; disabling again changes nothing.
	sets := ctl.count("SetBackends")
	m = callJSON(t, srv, "PATCH", path, `{"weight": 4}`, http.StatusOK)
	actortest.Equal(t, "weight while disabled", []any{m["backend"].(map[string]any)["state"], m["backend"].(map[string]any)["weight"]}, []any{"disabled", 4.0})
	callJSON(t, srv, "PATCH", path, `{"state": "disabled"}`, http.StatusOK)
	actortest.Equal(t, "SetBackends calls", ctl.count("SetBackends"), sets)
	// It cannot be added while disabled.
	wantError(t, srv, "POST", "/api/backends", `{"address": "`+testBackendNames[0]+`"}`, http.StatusConflict)

	// Enabled: back in its place, with its new weight.
	m = callJSON(t, srv, "PATCH", path, `{"state": "enabled"}`, http.StatusOK)
	actortest.Equal(t, "enabled", []any{m["backend"].(map[string]any)["state"], m["backend"].(map[string]any)["weight"]}, []any{"up", 4.0})
	actortest.Equal(t, "applied", m["applied"].(map[string]any)["added"], []any{testBackendNames[0]})
	want := []messages.Backend{{Addr: testBackendNames[0], Weight: 4}, {Addr: testBackendNames[1], Weight: 2, MaxInFlight: 10}, {Addr: "127.0.0.1:9003", Weight: 1}}
	actortest.Equal(t, "configured", ctl.configured(), want)

	// Disabled, then deleted: forgotten.
	callJSON(t, srv, "PATCH", path, `{"state": "disabled"}`, http.StatusOK)
	m = callJSON(t, srv, "DELETE", path, nil, http.StatusAccepted)
	actortest.Equal(t, "deleted", m["backend"].(map[string]any)["state"], "draining")
	wantError(t, srv, "GET", path, nil, http.StatusNotFound)
	wantError(t, srv, "PATCH", path, `{"state": "enabled"}`, http.StatusNotFound)
}

// A reload re-applies the file: a disabled backend the file lists comes back, and the API's
// disabled backends are forgotten.
func TestAPIReloadForgetsDisabled(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	callJSON(t, srv, "PATCH", "/api/backends/"+testBackendNames[0], `{"state": "disabled"}`, http.StatusOK)
	callJSON(t, srv, "POST", "/api/backends", `{"address": "127.0.0.1:9003"}`, http.StatusCreated)
	callJSON(t, srv, "PATCH", "/api/backends/127.0.0.1:9003", `{"state": "disabled"}`, http.StatusOK)
	ctl.mu.Lock()
	ctl.reloadTo = newFakeControl().list
	ctl.mu.Unlock()
	m := callJSON(t, srv, "POST", "/api/reload", nil, http.StatusOK)
	actortest.Equal(t, "ok", m["ok"], true)
	list := callJSON(t, srv, "GET", "/api/backends", nil, http.StatusOK)
	var states []string
	for _, b := range list["backends"].([]any) {
		states = append(states, b.(map[string]any)["address"].(string)+" "+b.(map[string]any)["state"].(string))
	}
	actortest.Equal(t, "after the reload", states, []string{testBackendNames[0] + " up", testBackendNames[1] + " up"})

	// A SIGHUP (a reload the API does not see) that changes the list: the same.
	callJSON(t, srv, "PATCH", "/api/backends/"+testBackendNames[1], `{"state": "disabled"}`, http.StatusOK)
	ctl.mu.Lock()
	ctl.apply(newFakeControl().list)
	ctl.mu.Unlock()
	one := callJSON(t, srv, "GET", "/api/backends/"+testBackendNames[1], nil, http.StatusOK)
	actortest.Equal(t, "after SIGHUP", one["state"], "up")
	sets := ctl.count("SetBackends")
	callJSON(t, srv, "PATCH", "/api/backends/"+testBackendNames[1], `{"state": "enabled"}`, http.StatusOK)
	actortest.Equal(t, "enabling an enabled backend calls nothing", ctl.count("SetBackends"), sets)
}

func TestAPIConfigAndReload(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	m := callJSON(t, srv, "GET", "/api/config", nil, http.StatusOK)
	actortest.Equal(t, "config", []any{m["listen"], m["policy"]}, []any{"127.0.0.1:8080", "classic"})

	ctl.mu.Lock()
	ctl.reload = ReloadResult{OK: true, Applied: &messages.BackendsApplied{Added: []string{"127.0.0.1:9003"}}, NeedsRestart: []string{"listen"}}
	ctl.mu.Unlock()
	m = callJSON(t, srv, "POST", "/api/reload", nil, http.StatusOK)
	actortest.Equal(t, "reload", []any{m["ok"], m["needs_restart"], m["applied"].(map[string]any)["added"]},
		[]any{true, []any{"listen"}, []any{"127.0.0.1:9003"}})

	ctl.mu.Lock()
	ctl.reload = ReloadResult{Errors: []string{`lb.yaml:3:18: health_interval: "3x" must be a duration like "30s" or "5m"`}}
	ctl.mu.Unlock()
	m = callJSON(t, srv, "POST", "/api/reload", nil, http.StatusUnprocessableEntity)
	actortest.Equal(t, "refused", []any{m["ok"], len(m["errors"].([]any))}, []any{false, 1})
	if !strings.Contains(m["error"].(string), "refused") {
		t.Fatalf("error %q", m["error"])
	}
	actortest.Equal(t, "Reload calls", ctl.count("Reload"), 2)
}

func TestAPIMethods(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	for _, tt := range []struct{ method, path, allow string }{
		{"PUT", "/api/backends", "GET, HEAD, POST"},
		{"DELETE", "/api/backends", "GET, HEAD, POST"},
		{"POST", "/api/backends/" + testBackendNames[0], "GET, HEAD, PATCH, DELETE"},
		{"PUT", "/api/backends/" + testBackendNames[0], "GET, HEAD, PATCH, DELETE"},
		{"POST", "/api/config", "GET, HEAD"},
		{"GET", "/api/reload", "POST"},
		{"POST", "/api/stats", "GET, HEAD"},
	} {
		code, hdr, out := call(t, srv, tt.method, tt.path, nil)
		if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != tt.allow || !json.Valid(out) {
			t.Fatalf("%s %s: %d Allow %q %s; want 405 Allow %q with JSON", tt.method, tt.path, code, hdr.Get("Allow"), out, tt.allow)
		}
	}
	actortest.Equal(t, "Control calls", len(ctl.calls), 0)
}

func TestAPIToken(t *testing.T) {
	const token = "s3cret-token"
	ctl := newFakeControl()
	var compared [][2]int
	var mu sync.Mutex
	orig := compareTokens
	compareTokens = func(x, y []byte) int {
		mu.Lock()
		compared = append(compared, [2]int{len(x), len(y)})
		mu.Unlock()
		return orig(x, y)
	}
	t.Cleanup(func() { compareTokens = orig })
	srv := startAPI(t, ctl, token+"\n") // as read from a file: the newline is not part of it

	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer " + token + "x"},
		{"Authorization", "Basic " + token}, {"Authorization", token}, {"Authorization", "Bearer"}} {
		for _, route := range [][3]string{{"GET", "/api/backends", ""}, {"POST", "/api/backends", `{"address": "9003"}`},
			{"PATCH", "/api/backends/9001", `{"weight": 9}`}, {"DELETE", "/api/backends/9001", ""},
			{"GET", "/api/config", ""}, {"POST", "/api/reload", ""}, {"PUT", "/api/backends", ""}, {"GET", "/api/nothing", ""}} {
			var body any
			if route[2] != "" {
				body = route[2]
			}
			code, h, out := call(t, srv, route[0], route[1], body, hdr...)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || !json.Valid(out) {
				t.Fatalf("%s %s with %q: %d %q %s, want 401 with WWW-Authenticate: Bearer", route[0], route[1], hdr, code, h.Get("WWW-Authenticate"), out)
			}
		}
	}
	actortest.Equal(t, "Control calls without the token", len(ctl.calls), 0)
	actortest.Equal(t, "configured", ctl.configured(), newFakeControl().list)

	auth := []string{"Authorization", "Bearer " + token}
	callJSON(t, srv, "GET", "/api/backends", nil, http.StatusOK, auth...)
	callJSON(t, srv, "PATCH", "/api/backends/9001", `{"weight": 9}`, http.StatusOK, "Authorization", "bearer  "+token)
	actortest.Equal(t, "weight", ctl.configured()[0].Weight, 9)
	mu.Lock()
	for _, c := range compared {
		if c != [2]int{sha256.Size, sha256.Size} {
			t.Fatalf("compared %d and %d bytes: want two SHA-256 sums", c[0], c[1])
		}
	}
	if len(compared) == 0 {
		t.Fatal("the token was not compared with compareTokens")
	}
	mu.Unlock()

	// What the stats page and the scrapers read stays open.
	for _, path := range []string{"/api/stats", "/metrics", "/healthz", "/"} {
		if code, _, out := call(t, srv, "GET", path, nil); code != http.StatusOK {
			t.Fatalf("GET %s without a token: %d %s", path, code, out)
		}
	}
}

func TestAPITokenOnlyWhiteSpace(t *testing.T) {
	_, err := Start(Config{Addr: "127.0.0.1:0", Control: newFakeControl(), Token: " \n"})
	if err == nil {
		t.Fatal("Start took a token of white space")
	}
}

func TestAPIWithoutControl(t *testing.T) {
	s := newStubs(t, true, true)
	srv := startServer(t, s, actortest.Wait)
	for _, path := range []string{"/api/backends", "/api/config"} {
		if code, _, _ := call(t, srv, "GET", path, nil); code != http.StatusNotFound {
			t.Fatalf("GET %s without a Control: %d, want 404", path, code)
		}
	}
}

// A panic in Control is a 500; the API goes on.
func TestAPIPanicInControl(t *testing.T) {
	ctl := newFakeControl()
	ctl.panicIn = "Config"
	srv := startAPI(t, ctl, "")
	wantError(t, srv, "GET", "/api/config", nil, http.StatusInternalServerError)
	callJSON(t, srv, "GET", "/api/config", nil, http.StatusOK)
}

// Changes made at once are made one after the other: none is lost.
func TestAPIConcurrentChanges(t *testing.T) {
	ctl := newFakeControl()
	srv := startAPI(t, ctl, "")
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://"+srv.Addr()+"/api/backends",
				strings.NewReader(fmt.Sprintf(`{"address": "127.0.0.1:%d"}`, 9100+i)))
			resp, err := httpClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	actortest.Equal(t, "backends", len(ctl.configured()), 22)
}
