package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loadbalancer/loadbalancer/messages"
)

// The runtime API (API.md): JSON over HTTP on the admin listener, to list, add, change, disable
// and remove backends, show the running configuration and reload it.
//
// Every call that reads or changes the backends, and every reload, runs on one goroutine (run),
// one at a time and in order: a change reads the configured list, builds the new one and has
// Control apply it, with no other API call in between, so two calls never lose each other's
// change. That goroutine also owns the API's own state, the backends disabled through it (the
// configured list has no "disabled" flag: a disabled backend is taken out of it, and kept here so
// that enabling it puts it back with its settings). The handlers parse and check the request
// first, then hand the goroutine a job and wait for its answer; nothing else touches that state.

const (
	// maxBody is the largest request body the API reads.
	maxBody = 64 << 10
	// controlTimeout bounds one API call's wait for Control (a reload resolves names).
	controlTimeout = 30 * time.Second
)

// compareTokens compares the sums of the presented and the configured token, in constant time
// (a variable, so that a test can see it used).
var compareTokens = subtle.ConstantTimeCompare

// api serves /api/backends, /api/config and /api/reload.
type api struct {
	srv      *Server
	ctl      Control
	hasToken bool
	token    [sha256.Size]byte // the token's SHA-256: equal lengths for the comparison

	jobs    chan apiJob
	ctx     context.Context // cancelled by stop: the jobs' contexts derive from it
	cancel  context.CancelFunc
	done    chan struct{}
	stopped chan struct{}
}

// apiJob is one call's work, run on the API's goroutine with the state it owns; out (buffered)
// gets the answer.
type apiJob struct {
	run func(ctx context.Context, st *apiState) apiAnswer
	out chan apiAnswer
}

// apiAnswer is what a call answers: the status, the JSON body, a Location, and the backends in
// the body, whose request counts the handler fills in (outside the API's goroutine).
type apiAnswer struct {
	code     int
	body     any
	location string
	views    []*backendView
}

// apiState is owned by the API's goroutine.
type apiState struct {
	ctl Control
	// disabled are the backends disabled through the API, by address.
	disabled map[string]*disabledBackend
	// last is the configured list as the API last saw it (or left it): when the list differs at
	// the next call, a reload has happened in between, and the disabled set is forgotten.
	last []messages.Backend
	seen bool
}

// disabledBackend is a backend taken out of the configured list by "state": "disabled".
type disabledBackend struct {
	b     messages.Backend
	pos   int       // its index in the list when it was disabled: enabling puts it back there
	since time.Time // when it was disabled
}

func newAPI(s *Server, ctl Control, token string) (*api, error) {
	a := &api{srv: s, ctl: ctl, jobs: make(chan apiJob), done: make(chan struct{}), stopped: make(chan struct{})}
	if token != "" {
		t := strings.TrimSpace(token)
		if t == "" {
			return nil, errors.New("admin: the API token is empty (only white space)")
		}
		a.hasToken, a.token = true, sha256.Sum256([]byte(t))
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// register adds the API's routes to mux.
func (a *api) register(mux *http.ServeMux) {
	mux.HandleFunc("/api/backends", a.guard(a.handleBackends))
	mux.HandleFunc("/api/backends/{addr}", a.guard(a.handleBackend))
	mux.HandleFunc("/api/config", a.guard(a.handleConfig))
	mux.HandleFunc("/api/reload", a.guard(a.handleReload))
	mux.HandleFunc("/api/", a.guard(a.handleUnknown))
}

// run is the API's goroutine: it runs the jobs one at a time, until stop.
func (a *api) run() {
	defer close(a.stopped)
	st := &apiState{ctl: a.ctl, disabled: map[string]*disabledBackend{}}
	for {
		select {
		case <-a.done:
			return
		case j := <-a.jobs:
			j.out <- a.safeRun(j, st)
		}
	}
}

// safeRun runs a job; a panic (in Control, or a bug here) is logged and answered with a 500,
// and the goroutine goes on.
func (a *api) safeRun(j apiJob, st *apiState) (ans apiAnswer) {
	defer func() {
		if v := recover(); v != nil {
			a.srv.log.Error("runtime API call panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ans = errorAnswer(http.StatusInternalServerError, "internal error (see the log); the change may be partly applied: GET /api/backends to see")
		}
	}()
	ctx, cancel := context.WithTimeout(a.ctx, controlTimeout)
	defer cancel()
	return j.run(ctx, st)
}

// stop ends the goroutine, after the job it is running (whose context is cancelled).
func (a *api) stop() {
	a.cancel()
	select {
	case <-a.done:
	default:
		close(a.done)
	}
	<-a.stopped
}

// do runs job on the API's goroutine and writes its answer. A client that leaves before the
// job starts cancels it; once started, a job runs to its end (a change is never left halfway
// because the client went away).
func (a *api) do(w http.ResponseWriter, r *http.Request, job func(ctx context.Context, st *apiState) apiAnswer) {
	j := apiJob{run: job, out: make(chan apiAnswer, 1)}
	select {
	case a.jobs <- j:
	case <-a.stopped:
		writeError(w, http.StatusServiceUnavailable, "the admin listener is stopping", nil)
		return
	case <-r.Context().Done():
		return
	}
	ans := <-j.out // the goroutine answers every job it takes
	if len(ans.views) > 0 {
		a.srv.fillCounts(ans.views)
	}
	if ans.location != "" {
		w.Header().Set("Location", ans.location)
	}
	writeJSON(w, ans.code, ans.body)
}

// guard answers 401 unless the request has the token (when there is one).
func (a *api) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			a.srv.log.Warn("runtime API: bad or missing token", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="loadbalancer admin"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is needed (Authorization: Bearer TOKEN)", nil)
			return
		}
		h(w, r)
	}
}

// authorized says whether r carries the token: "Authorization: Bearer TOKEN". The comparison
// is of the two SHA-256 sums, in constant time, so it takes the same time whatever the length
// or the content of what was presented.
func (a *api) authorized(r *http.Request) bool {
	if !a.hasToken {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return compareTokens(sum[:], a.token[:]) == 1 && ok
}

func (a *api) handleUnknown(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/stats" { // GET is routed to handleStats
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	writeError(w, http.StatusNotFound, "no such API path: "+r.URL.Path, nil)
}

func (a *api) handleBackends(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer {
			cur, ans := st.load(ctx)
			if cur == nil {
				return ans
			}
			views := cur.views()
			return apiAnswer{code: http.StatusOK, body: apiBackendList{Backends: views}, views: views}
		})
	case http.MethodPost:
		var in apiBackendIn
		if !readJSON(w, r, &in) {
			return
		}
		b, problems := in.backend()
		if len(problems) > 0 {
			writeError(w, http.StatusBadRequest, "the backend is not valid", problems)
			return
		}
		a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer { return a.add(ctx, st, b) })
	default:
		methodNotAllowed(w, "GET, HEAD, POST")
	}
}

func (a *api) handleBackend(w http.ResponseWriter, r *http.Request) {
	addr := normalizeAddr(r.PathValue("addr"))
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer {
			cur, ans := st.load(ctx)
			if cur == nil {
				return ans
			}
			v := cur.view(addr)
			if v == nil {
				return notFound(addr)
			}
			return apiAnswer{code: http.StatusOK, body: v, views: []*backendView{v}}
		})
	case http.MethodPatch:
		var p apiPatch
		if !readJSON(w, r, &p) {
			return
		}
		if problems := p.check(addr); len(problems) > 0 {
			writeError(w, http.StatusBadRequest, "the change is not valid", problems)
			return
		}
		a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer { return a.patch(ctx, st, addr, &p) })
	case http.MethodDelete:
		a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer { return a.remove(ctx, st, addr, "removed") })
	default:
		methodNotAllowed(w, "GET, HEAD, PATCH, DELETE")
	}
}

func (a *api) handleConfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer {
		return apiAnswer{code: http.StatusOK, body: st.ctl.Config(ctx)}
	})
}

func (a *api) handleReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	a.do(w, r, func(ctx context.Context, st *apiState) apiAnswer {
		res := st.ctl.Reload(ctx)
		if res.OK { // the file is re-applied: the API's disabled backends are forgotten
			clear(st.disabled)
			st.seen = false
		}
		if !res.OK {
			a.srv.log.Warn("runtime API: reload refused", "errors", res.Errors)
			msg := "the reload was refused; nothing changed"
			if len(res.Errors) > 0 {
				msg += ": " + strings.Join(res.Errors, "; ")
			}
			return apiAnswer{code: http.StatusUnprocessableEntity, body: apiReload{ReloadResult: res, Error: msg}}
		}
		a.srv.log.Info("runtime API: reloaded", "needs_restart", res.NeedsRestart)
		return apiAnswer{code: http.StatusOK, body: apiReload{ReloadResult: res}}
	})
}

// add is POST /api/backends.
func (a *api) add(ctx context.Context, st *apiState, b messages.Backend) apiAnswer {
	cur, ans := st.load(ctx)
	if cur == nil {
		return ans
	}
	if cur.configuredAt(b.Addr) >= 0 {
		return errorAnswer(http.StatusConflict, "backend "+b.Addr+" is already configured: PATCH /api/backends/"+b.Addr+" changes it")
	}
	if st.disabled[b.Addr] != nil {
		return errorAnswer(http.StatusConflict, "backend "+b.Addr+` is disabled: PATCH it with {"state": "enabled"} to bring it back, or DELETE it first`)
	}
	list := append(slices.Clone(cur.configured), b)
	applied, ans := st.set(ctx, list)
	if applied == nil {
		return ans
	}
	a.srv.log.Info("runtime API: backend added", "backend", b.Addr, "weight", b.Weight)
	v := st.fetch(ctx, b.Addr, func() *backendView { return configuredView(&b, nil) })
	return apiAnswer{code: http.StatusCreated, body: apiChange{Backend: v, Applied: applied.res},
		location: "/api/backends/" + url.PathEscape(b.Addr), views: []*backendView{v}}
}

// patch is PATCH /api/backends/{addr}.
func (a *api) patch(ctx context.Context, st *apiState, addr string, p *apiPatch) apiAnswer {
	if p.State == "draining" {
		return a.remove(ctx, st, addr, "draining")
	}
	cur, ans := st.load(ctx)
	if cur == nil {
		return ans
	}
	if i := cur.configuredAt(addr); i >= 0 {
		b := p.apply(cur.configured[i])
		list := slices.Clone(cur.configured)
		switch {
		case p.State == "disabled":
			list = slices.Delete(list, i, i+1)
		case b == cur.configured[i]: // nothing changes: no call
			v := cur.view(addr)
			return apiAnswer{code: http.StatusOK, body: apiChange{Backend: v}, views: []*backendView{v}}
		default:
			list[i] = b
		}
		applied, ans := st.set(ctx, list)
		if applied == nil {
			return ans
		}
		if p.State == "disabled" {
			st.disabled[addr] = &disabledBackend{b: b, pos: i, since: time.Now()}
			a.srv.log.Info("runtime API: backend disabled", "backend", addr)
		} else {
			a.srv.log.Info("runtime API: backend changed", "backend", addr, "weight", b.Weight, "max_in_flight", b.MaxInFlight, "backup", b.Backup)
		}
		v := st.fetch(ctx, addr, func() *backendView { return configuredView(&b, nil) })
		return apiAnswer{code: http.StatusOK, body: apiChange{Backend: v, Applied: applied.res}, views: []*backendView{v}}
	}
	if d := st.disabled[addr]; d != nil {
		b := p.apply(d.b)
		if p.State != "enabled" { // settings only: kept for when it is enabled
			d.b = b
			v := cur.view(addr)
			return apiAnswer{code: http.StatusOK, body: apiChange{Backend: v}, views: []*backendView{v}}
		}
		list := slices.Insert(slices.Clone(cur.configured), min(d.pos, len(cur.configured)), b)
		applied, ans := st.set(ctx, list)
		if applied == nil {
			return ans
		}
		delete(st.disabled, addr)
		a.srv.log.Info("runtime API: backend enabled", "backend", addr)
		v := st.fetch(ctx, addr, func() *backendView { return configuredView(&b, nil) })
		return apiAnswer{code: http.StatusOK, body: apiChange{Backend: v, Applied: applied.res}, views: []*backendView{v}}
	}
	if cur.stateOf(addr) != nil {
		return errorAnswer(http.StatusConflict, "backend "+addr+" was removed and is draining: POST /api/backends adds it again")
	}
	return notFound(addr)
}

// remove is DELETE /api/backends/{addr} and PATCH with "state": "draining": the backend leaves
// the configured list (or the disabled set), the Dispatcher drains it, and the answer (202)
// shows it draining, with its requests in flight.
func (a *api) remove(ctx context.Context, st *apiState, addr, how string) apiAnswer {
	cur, ans := st.load(ctx)
	if cur == nil {
		return ans
	}
	var applied *messages.BackendsApplied
	var was *backendView
	switch i := cur.configuredAt(addr); {
	case i >= 0:
		was = cur.view(addr)
		res, ans := st.set(ctx, slices.Delete(slices.Clone(cur.configured), i, i+1))
		if res == nil {
			return ans
		}
		applied = res.res
		a.srv.log.Info("runtime API: backend "+how, "backend", addr)
	case st.disabled[addr] != nil: // already out of the list: forget it
		was = cur.view(addr)
		delete(st.disabled, addr)
		a.srv.log.Info("runtime API: disabled backend "+how, "backend", addr)
	case cur.stateOf(addr) != nil: // already draining: the same answer again
		was = cur.view(addr)
	default:
		return notFound(addr)
	}
	v := st.fetch(ctx, addr, func() *backendView {
		// Nothing was in flight: it is drained and gone already.
		now := time.Now().UTC()
		was.State, was.Reason, was.Since, was.InFlight = "draining", reasonDraining, &now, 0
		return was
	})
	return apiAnswer{code: http.StatusAccepted, body: apiChange{Backend: v, Applied: applied}, views: []*backendView{v}}
}

// current is the backends as one call saw them.
type current struct {
	states     []messages.BackendState // the Dispatcher's table, drained ones left out
	configured []messages.Backend
	disabled   map[string]*disabledBackend
	// statesErr: the states could not be had (they show as unknown).
	statesErr error
}

// load asks Control for the backends. A list that differs from the one the API last saw was
// changed by a reload (SIGHUP, or one through the API), which re-applies the file: the disabled
// set is forgotten then. A disabled backend that is configured again is no longer disabled.
// On failure it returns nil and the answer.
func (st *apiState) load(ctx context.Context) (*current, apiAnswer) {
	states, configured, err := st.ctl.Backends(ctx)
	if err != nil && len(configured) == 0 {
		return nil, errorAnswer(http.StatusServiceUnavailable, "cannot read the backends: "+err.Error())
	}
	if st.seen && !slices.Equal(configured, st.last) {
		clear(st.disabled)
	}
	st.last, st.seen = slices.Clone(configured), true
	for _, b := range configured {
		delete(st.disabled, b.Addr)
	}
	cur := &current{configured: configured, disabled: st.disabled, statesErr: err}
	for _, s := range states {
		if !gone(&s) {
			cur.states = append(cur.states, s)
		}
	}
	return cur, apiAnswer{}
}

// applied wraps SetBackends' answer (which may be nil when the actors did not confirm in time):
// a nil *applied means the change was refused.
type applied struct{ res *messages.BackendsApplied }

// set has Control apply list. A *ValidationError is a 400 with its problems; any other error a
// 503 (Control did not answer: the change may or may not be in effect).
func (st *apiState) set(ctx context.Context, list []messages.Backend) (*applied, apiAnswer) {
	res, err := st.ctl.SetBackends(ctx, st.last, list)
	var verr *ValidationError
	switch {
	case errors.Is(err, ErrConflict):
		st.seen = false
		return nil, errorAnswer(http.StatusConflict, err.Error())
	case errors.As(err, &verr):
		return nil, errorWith(http.StatusBadRequest, "the change was refused; nothing changed", verr.Problems)
	case err != nil:
		return nil, errorAnswer(http.StatusServiceUnavailable, "the change could not be confirmed ("+err.Error()+"): GET /api/backends to see whether it is in effect")
	}
	st.seen = false // the list is the API's own now: the next load takes it as it is
	return &applied{res}, apiAnswer{}
}

// fetch reads the backends again and returns addr's view, or else's when it is not there.
func (st *apiState) fetch(ctx context.Context, addr string, orElse func() *backendView) *backendView {
	if cur, _ := st.load(ctx); cur != nil {
		if v := cur.view(addr); v != nil {
			return v
		}
	}
	return orElse()
}

func (c *current) configuredAt(addr string) int {
	return slices.IndexFunc(c.configured, func(b messages.Backend) bool { return b.Addr == addr })
}

func (c *current) stateOf(addr string) *messages.BackendState {
	for i := range c.states {
		if c.states[i].Addr == addr {
			return &c.states[i]
		}
	}
	return nil
}

// views are every backend: in the Dispatcher's table order, then the configured ones it does
// not show (yet), then the disabled ones that have drained.
func (c *current) views() []*backendView {
	out := []*backendView{}
	seen := map[string]bool{}
	add := func(addr string) {
		if !seen[addr] {
			seen[addr] = true
			if v := c.view(addr); v != nil {
				out = append(out, v)
			}
		}
	}
	for i := range c.states {
		add(c.states[i].Addr)
	}
	for i := range c.configured {
		add(c.configured[i].Addr)
	}
	disabled := make([]string, 0, len(c.disabled))
	for addr := range c.disabled {
		disabled = append(disabled, addr)
	}
	slices.Sort(disabled)
	for _, addr := range disabled {
		add(addr)
	}
	return out
}

// view is one backend's JSON, or nil when there is no such backend.
func (c *current) view(addr string) *backendView {
	s := c.stateOf(addr)
	if i := c.configuredAt(addr); i >= 0 {
		return configuredView(&c.configured[i], s)
	}
	if d := c.disabled[addr]; d != nil {
		v := configuredView(&d.b, s) // in_flight: what it has left to drain
		since := d.since.UTC()
		v.State, v.Reason, v.Since, v.EjectedUntil = "disabled", reasonDisabled, &since, nil
		return v
	}
	if s != nil {
		v := stateView(s)
		if s.Removed {
			v.Reason = reasonDraining
		}
		return v
	}
	return nil
}

const (
	reasonDraining = "removed: takes no new request; its requests in flight finish, then it is gone"
	reasonDisabled = "disabled through the runtime API: takes no new request until enabled"
)

// configuredView is a configured backend's JSON: its settings, and its state when the
// Dispatcher knows it (else unknown).
func configuredView(b *messages.Backend, s *messages.BackendState) *backendView {
	v := &backendView{Address: b.Addr, State: "unknown", Weight: max(b.Weight, 1), MaxInFlight: b.MaxInFlight, Backup: b.Backup}
	if h := b.Health; h != (messages.HealthOverride{}) {
		v.Health = &apiHealth{Path: h.Path, Method: h.Method, Status: h.Status, Body: h.Body, Host: h.Host}
	}
	if s != nil {
		sv := stateView(s)
		v.State, v.Reason, v.Since, v.InFlight, v.Ejections, v.EjectedUntil, v.LatencyMs =
			sv.State, sv.Reason, sv.Since, sv.InFlight, sv.Ejections, sv.EjectedUntil, sv.LatencyMs
		if s.Removed {
			v.Reason = reasonDraining
		}
	}
	return v
}

// stateView is the JSON of a backend the Dispatcher knows, from its state alone.
func stateView(s *messages.BackendState) *backendView {
	since := s.Since.UTC()
	v := &backendView{Address: s.Addr, State: stateOf(s), Reason: s.Reason, Since: &since, Weight: max(s.Weight, 1),
		MaxInFlight: s.MaxInFlight, Backup: s.Backup, InFlight: s.InFlight, Ejections: s.Ejections,
		LatencyMs: msOrNil(s.Latency, s.Latency > 0)}
	if s.Ejected && !s.EjectedUntil.IsZero() {
		until := s.EjectedUntil.UTC()
		v.EjectedUntil = &until
	}
	return v
}

// fillCounts adds each backend's request and failure counts since start-up, from a snapshot of
// the Dispatcher and the event loops; they stay null when the snapshot is incomplete.
func (s *Server) fillCounts(views []*backendView) {
	if s.cfg.System == nil || s.cfg.Targets.Dispatcher == nil || s.cfg.Targets.Acceptor == nil {
		return
	}
	t := Targets{Dispatcher: s.cfg.Targets.Dispatcher, Acceptor: s.cfg.Targets.Acceptor}
	snap, _ := gather(s.cfg.System, &t, s.timeout(), s.cfg.Loops)
	if snap.Dispatcher == nil || snap.Conns == nil {
		return
	}
	index := make(map[string]int, len(snap.Dispatcher.Backends))
	for i := range snap.Dispatcher.Backends {
		index[snap.Dispatcher.Backends[i].Addr] = i
	}
	for _, v := range views {
		var req, fail uint64
		if i, ok := index[v.Address]; ok && i < len(snap.Traffic.Backends) {
			req, fail = snap.Traffic.Backends[i].Total(), snap.Traffic.Backends[i].Failed
		}
		v.Requests, v.Failures = &req, &fail
	}
}

// backendView is a backend in the API's JSON (API.md).
type backendView struct {
	Address      string     `json:"address"`
	State        string     `json:"state"`
	Reason       string     `json:"reason"`
	Since        *time.Time `json:"since"`
	Weight       int        `json:"weight"`
	MaxInFlight  int        `json:"max_in_flight"`
	Backup       bool       `json:"backup"`
	Health       *apiHealth `json:"health,omitempty"`
	InFlight     int        `json:"in_flight"`
	Ejections    uint64     `json:"ejections"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	LatencyMs    *float64   `json:"latency_ms"`
	Requests     *uint64    `json:"requests"`
	Failures     *uint64    `json:"failures"`
}

type apiBackendList struct {
	Backends []*backendView `json:"backends"`
}

// apiChange answers a change: the backend as it is now, and what the change did (null when
// nothing was applied).
type apiChange struct {
	Backend *backendView              `json:"backend"`
	Applied *messages.BackendsApplied `json:"applied"`
}

type apiReload struct {
	ReloadResult
	Error string `json:"error,omitempty"`
}

// apiHealth is a backend's health check overrides, as in the config file.
type apiHealth struct {
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
	Status string `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
	Host   string `json:"host,omitempty"`
}

// apiBackendIn is POST /api/backends' body: a backend as in the config file.
type apiBackendIn struct {
	Address     string     `json:"address"`
	Weight      *int       `json:"weight"`
	MaxInFlight *int       `json:"max_in_flight"`
	Backup      bool       `json:"backup"`
	Health      *apiHealth `json:"health"`
}

// backend is the backend in, with the checks that need no Control (the rest, the address's and
// the health overrides', are SetBackends').
func (in *apiBackendIn) backend() (messages.Backend, []string) {
	b := messages.Backend{Addr: normalizeAddr(in.Address), Weight: 1, Backup: in.Backup}
	var problems []string
	if in.Address == "" {
		problems = append(problems, "address: required (HOST:PORT, or a bare port for 127.0.0.1:PORT)")
	}
	if in.Weight != nil {
		b.Weight = *in.Weight
	}
	if in.MaxInFlight != nil {
		b.MaxInFlight = *in.MaxInFlight
	}
	problems = append(problems, checkSettings(b.Addr, in.Weight, in.MaxInFlight)...)
	if h := in.Health; h != nil {
		b.Health = messages.HealthOverride{Path: h.Path, Method: h.Method, Status: h.Status, Body: h.Body, Host: h.Host}
	}
	return b, problems
}

// apiPatch is PATCH /api/backends/{addr}'s body: what changes.
type apiPatch struct {
	Weight      *int   `json:"weight"`
	MaxInFlight *int   `json:"max_in_flight"`
	Backup      *bool  `json:"backup"`
	State       string `json:"state"`
}

func (p *apiPatch) check(addr string) []string {
	var problems []string
	switch p.State {
	case "", "enabled", "disabled":
	case "draining":
		if p.Weight != nil || p.MaxInFlight != nil || p.Backup != nil {
			problems = append(problems, `state: "draining" removes the backend; it takes no other change`)
		}
	default:
		problems = append(problems, fmt.Sprintf("state: want enabled, disabled or draining, got %q", p.State))
	}
	if p.State == "" && p.Weight == nil && p.MaxInFlight == nil && p.Backup == nil {
		problems = append(problems, "nothing to change: give weight, max_in_flight, backup or state")
	}
	return append(problems, checkSettings(addr, p.Weight, p.MaxInFlight)...)
}

// apply returns b with the patch's settings.
func (p *apiPatch) apply(b messages.Backend) messages.Backend {
	if p.Weight != nil {
		b.Weight = *p.Weight
	}
	if p.MaxInFlight != nil {
		b.MaxInFlight = *p.MaxInFlight
	}
	if p.Backup != nil {
		b.Backup = *p.Backup
	}
	return b
}

// checkSettings checks a weight and a limit as the config file does.
func checkSettings(addr string, weight, maxInFlight *int) []string {
	var problems []string
	if weight != nil && (*weight < 1 || *weight > 1000) {
		problems = append(problems, fmt.Sprintf("backend %s: weight: want a whole number from 1 to 1000, got %d", addr, *weight))
	}
	if maxInFlight != nil && *maxInFlight < 0 {
		problems = append(problems, fmt.Sprintf("backend %s: max_in_flight must not be negative, got %d", addr, *maxInFlight))
	}
	return problems
}

// normalizeAddr writes an address as the configured list has it: a bare port is
// 127.0.0.1:PORT, a port without leading zeros. Anything else is left for SetBackends to judge.
func normalizeAddr(s string) string {
	if !strings.Contains(s, ":") {
		if p, err := strconv.ParseUint(s, 10, 16); err == nil && p > 0 {
			return "127.0.0.1:" + strconv.FormatUint(p, 10)
		}
		return s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return s
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return s
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10))
}

// readJSON decodes the body, one JSON value of at most maxBody bytes with no unknown field,
// into v; otherwise it answers 400 (413 for a body too large) and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&json.RawMessage{}) != io.EOF {
			err = errors.New("more than one JSON value, or data after it")
		}
	}
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBody), nil)
		return false
	case errors.Is(err, io.EOF):
		err = errors.New("the body is empty")
	case errors.As(err, &typ):
		err = fmt.Errorf("%s: got a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	}
	writeError(w, http.StatusBadRequest, "bad JSON: "+strings.TrimPrefix(err.Error(), "json: "), nil)
	return false
}

// apiErr is the JSON of every error the API answers.
type apiErr struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems"`
}

func errorAnswer(code int, msg string) apiAnswer { return errorWith(code, msg, nil) }

func errorWith(code int, msg string, problems []string) apiAnswer {
	if problems == nil {
		problems = []string{}
	}
	return apiAnswer{code: code, body: apiErr{Error: msg, Problems: problems}}
}

func notFound(addr string) apiAnswer {
	return errorAnswer(http.StatusNotFound, "no backend "+addr+" (give its address as configured, HOST:PORT)")
}

func writeError(w http.ResponseWriter, code int, msg string, problems []string) {
	ans := errorWith(code, msg, problems)
	writeJSON(w, ans.code, ans.body)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed here; allowed: "+allow, nil)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
