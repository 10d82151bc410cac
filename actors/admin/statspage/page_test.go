package statspage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/loadbalancer/loadbalancer/actors/admin/statspage"
)

// The waits are generous: they bound a hung browser, they are not what the tests measure.
const (
	waitLong  = 20 * time.Second // for something the page does within a second or two
	stepLimit = 60 * time.Second // for one browser step
)

func TestHandlerServesThePage(t *testing.T) {
	h := statspage.Handler()
	for _, path := range []string{"/", "/admin/", "/any/path"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", path, res.StatusCode)
		}
		for name, want := range map[string]string{
			"Content-Type":  "text/html; charset=utf-8",
			"Cache-Control": "no-cache",
		} {
			if got := res.Header.Get(name); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, name, got, want)
			}
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self' 'unsafe-inline'",
			"style-src 'self' 'unsafe-inline'", "img-src 'self' data:", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if !bytes.HasPrefix(body, []byte("<!doctype html>")) || !bytes.Contains(body, []byte(`id="total-requests"`)) {
			t.Errorf("GET %s: the body is not the stats page: %.80q", path, body)
		}
	}

	// HEAD: the headers of GET, no body.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD: status %d, %d body bytes, Content-Type %q; want 200, none, text/html",
			rec.Code, rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
	if n, _ := strconv.Atoi(rec.Header().Get("Content-Length")); n == 0 {
		t.Errorf("HEAD: Content-Length %q, want the page's length", rec.Header().Get("Content-Length"))
	}

	// A browser revalidating gets 304.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if etag == "" || rec.Code != http.StatusNotModified {
		t.Errorf("GET with If-None-Match %q: status %d, want 304", etag, rec.Code)
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "GET") {
			t.Errorf("%s: status %d, Allow %q; want 405 with Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

// TestPageReferencesNothingExternal reads the page's source: no URL with a scheme or a host
// (the SVG namespace is a name, not a load), no @import, no font files. The browser test checks
// the same at run time.
func TestPageReferencesNothingExternal(t *testing.T) {
	src, err := os.ReadFile("index.html")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "http://www.w3.org/2000/svg", "")
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(https?|wss?|ftp)://`),
		regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?//`),
		regexp.MustCompile(`(?i)url\(\s*["']?(//|[a-z]+:)`),
		regexp.MustCompile(`(?i)@import|@font-face|<script[^>]+src=|<link[^>]+stylesheet|<iframe|<img`),
	} {
		if m := re.FindString(text); m != "" {
			t.Errorf("the page refers to something outside itself: %q", m)
		}
	}
}

// TestStatsPageFiftyBackends drives the page in headless Chromium against a fake /api/stats:
// every backend listed with its state, the exact total, a backend going down, the banner when
// the endpoint fails, and no request leaving the test server.
func TestStatsPageFiftyBackends(t *testing.T) {
	ctx, watch := newBrowser(t)
	api := newFakeAPI(fiftyBackends())
	srv, pageURL := serve(t, api)
	navigate(t, ctx, pageURL)

	t.Run("every backend listed with its state", func(t *testing.T) {
		waitFor(t, ctx, `document.querySelectorAll('#rows tr[data-backend]').length === 50`)
		rows := backendRows(t, ctx)
		want := map[string]string{}
		for _, b := range api.current().Backends {
			want[b.Address] = b.State
		}
		if len(rows) != len(want) {
			t.Fatalf("the page lists %d backends, want %d", len(rows), len(want))
		}
		for _, r := range rows {
			st, ok := want[r.Address]
			if !ok {
				t.Errorf("the page lists %q, which /api/stats does not", r.Address)
				continue
			}
			delete(want, r.Address)
			if r.State != st || r.Text != st || !r.Visible {
				t.Errorf("backend %s: data-state %q, state text %q, visible %v; want %q shown",
					r.Address, r.State, r.Text, r.Visible, st)
			}
		}
		if len(want) > 0 {
			t.Errorf("backends missing from the page: %v", want)
		}
		// Problems first: the rows start with the down, then the ejected backends.
		if rows[0].State != "down" || rows[1].State != "down" || rows[2].State != "ejected" {
			t.Errorf("first rows %s, %s, %s: want the down backends, then the ejected ones",
				rows[0].State, rows[1].State, rows[2].State)
		}
		// The summary counts the backends of each state.
		summary := eval[string](t, ctx, `document.getElementById('summary').textContent`)
		for _, s := range []string{"44 up", "2 down", "2 ejected", "1 draining", "1 unknown"} {
			if !strings.Contains(summary, s) {
				t.Errorf("summary %q lacks %q", summary, s)
			}
		}
	})

	t.Run("total requests", func(t *testing.T) {
		want := strconv.FormatInt(api.current().Totals.Requests, 10)
		got := waitFor(t, ctx, `(document.getElementById('total-requests').textContent.replace(/[^0-9]/g, '') === `+
			strconv.Quote(want)+`) && document.getElementById('total-requests').textContent`)
		if strings.NewReplacer(",", "").Replace(got) != want {
			t.Errorf("#total-requests shows %q, want %s", got, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#chart svg path.line[d^="M"]').length`); n < 4 {
			t.Errorf("the chart has %d drawn lines, want 4 (req/s, errors/s, p50, p99)", n)
		}
	})

	t.Run("a backend going down shows", func(t *testing.T) {
		s := api.current()
		victim := s.Backends[10]
		if victim.State != "up" {
			t.Fatalf("test data: backend 10 is %s, want up", victim.State)
		}
		s.Backends[10].State, s.Backends[10].Reason = "down", "connect: connection refused"
		s.Backends[10].Since = &s.Now
		s.Totals.Requests += 500
		api.set(s)
		sel := `document.querySelector('tr[data-backend="` + victim.Address + `"]')`
		waitFor(t, ctx, sel+`?.dataset.state === 'down' && `+sel+`.querySelector('.badge').textContent === 'down'`)
		if reason := eval[string](t, ctx, sel+`.querySelector('.reason').textContent`); reason != "connect: connection refused" {
			t.Errorf("the down backend's reason shows %q", reason)
		}
		waitFor(t, ctx, `document.getElementById('total-requests').textContent.replace(/[^0-9]/g, '') === `+
			strconv.Quote(strconv.FormatInt(s.Totals.Requests, 10)))
	})

	t.Run("disconnected banner", func(t *testing.T) {
		if eval[bool](t, ctx, `!document.getElementById('disconnected').hidden`) {
			t.Fatal("the disconnected banner shows while /api/stats answers")
		}
		api.fail.Store(true)
		before := api.hits.Load()
		text := waitFor(t, ctx, `(() => { const b = document.getElementById('disconnected');
			return !b.hidden && getComputedStyle(b).display !== 'none' && b.getBoundingClientRect().height > 0 && b.textContent; })()`)
		if !strings.Contains(strings.ToLower(text), "disconnected, retrying") {
			t.Errorf("banner text %q, want it to say disconnected, retrying", text)
		}
		// It keeps trying, about once a second.
		deadline := time.Now().Add(waitLong)
		for api.hits.Load() < before+3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := api.hits.Load() - before; n < 3 {
			t.Errorf("%d requests for /api/stats in %v while it failed, want it to keep retrying", n, waitLong)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#rows tr[data-backend]').length`); n != 50 {
			t.Errorf("while disconnected the page lists %d backends, want the last known 50", n)
		}
		api.fail.Store(false)
		waitFor(t, ctx, `document.getElementById('disconnected').hidden`)
	})

	t.Run("no request leaves the test server", func(t *testing.T) {
		host := srv.Listener.Addr().String()
		urls := watch.urls()
		apiCalls := 0
		for _, u := range urls {
			if strings.HasPrefix(u, "data:") {
				continue
			}
			pu, err := url.Parse(u)
			if err != nil || pu.Host != host {
				t.Errorf("the page requested %q, outside the test server %s", u, host)
			}
			if pu != nil && pu.Path == "/lb/api/stats" {
				apiCalls++
			}
		}
		if apiCalls < 3 {
			t.Errorf("saw %d requests for /lb/api/stats among %q: the network watch is not working", apiCalls, urls)
		}
		entries := eval[[]string](t, ctx, `performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n))`)
		for _, name := range entries {
			if pu, err := url.Parse(name); err == nil && pu.Scheme != "data" && pu.Host != host {
				t.Errorf("performance entry %q is outside the test server %s", name, host)
			}
		}
		for _, p := range watch.problems() {
			t.Errorf("the page reported: %s", p)
		}
	})
}

// TestStatsPageNarrowWindow checks that at 400 px the page does not overflow sideways: the
// backends table scrolls inside its own box, its address column sticky.
func TestStatsPageNarrowWindow(t *testing.T) {
	ctx, watch := newBrowser(t)
	api := newFakeAPI(fiftyBackends())
	_, pageURL := serve(t, api)
	do(t, ctx, chromedp.EmulateViewport(400, 900))
	navigate(t, ctx, pageURL)
	waitFor(t, ctx, `document.querySelectorAll('#rows tr[data-backend]').length === 50 && document.querySelector('#chart path.line[d^="M"]')`)

	type layout struct {
		Inner, DocScroll, BodyScroll, TableScroll, TableClient int
		Overflow, AddrPosition                                 string
	}
	l := eval[layout](t, ctx, `(() => { const s = document.getElementById('table-scroll');
		return { Inner: window.innerWidth, DocScroll: document.documentElement.scrollWidth, BodyScroll: document.body.scrollWidth,
			TableScroll: s.scrollWidth, TableClient: s.clientWidth, Overflow: getComputedStyle(s).overflowX,
			AddrPosition: getComputedStyle(document.querySelector('#rows td.addr')).position }; })()`)
	if l.Inner != 400 {
		t.Fatalf("window.innerWidth %d, want the emulated 400", l.Inner)
	}
	if l.DocScroll > l.Inner || l.BodyScroll > l.Inner {
		t.Errorf("the page overflows a 400 px window: document %d px, body %d px wide", l.DocScroll, l.BodyScroll)
	}
	if l.TableScroll > l.TableClient && l.Overflow != "auto" && l.Overflow != "scroll" {
		t.Errorf("the table (%d px) is wider than its box (%d px), which does not scroll (overflow-x %s)",
			l.TableScroll, l.TableClient, l.Overflow)
	}
	if l.AddrPosition != "sticky" {
		t.Errorf("the address column is position %s, want sticky", l.AddrPosition)
	}
	// Scrolled to the far right, the addresses still show at the box's left edge.
	if l.TableScroll > l.TableClient {
		shift := eval[float64](t, ctx, `(() => { const s = document.getElementById('table-scroll'); s.scrollLeft = s.scrollWidth;
			return document.querySelector('#rows td.addr').getBoundingClientRect().left - s.getBoundingClientRect().left; })()`)
		if shift < -1 || shift > 1 {
			t.Errorf("scrolled right, the address column is %.1f px from the box's left edge, want 0", shift)
		}
		eval[chromedp.Void](t, ctx, `document.getElementById('table-scroll').scrollLeft = 0`)
	}
	shot := screenshot(t, ctx, 400, 0)
	save(t, shot, "statspage-narrow.png", "-narrow")
	for _, p := range watch.problems() {
		t.Errorf("the page reported: %s", p)
	}
}

// TestStatsPageScreenshot renders six backends in every state at 1280x800, in light and dark
// colours, and saves the screenshots (to STATSPAGE_SCREENSHOT too when it is set).
func TestStatsPageScreenshot(t *testing.T) {
	ctx, watch := newBrowser(t)
	api := newFakeAPI(sixBackends())
	_, pageURL := serve(t, api)
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
	navigate(t, ctx, pageURL)
	waitFor(t, ctx, `document.querySelectorAll('#rows tr[data-backend]').length === 6 && document.querySelectorAll('#chart path.line[d^="M"]').length === 4`)
	for _, b := range api.current().Backends {
		if got := eval[string](t, ctx, `document.querySelector('tr[data-backend="`+b.Address+`"] .badge').textContent`); got != b.State {
			t.Errorf("backend %s shows %q, want %q", b.Address, got, b.State)
		}
	}
	light := eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`)
	shot := screenshot(t, ctx, 1280, 800)
	save(t, shot, "statspage.png", "")

	// The same page in dark colours.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	}); err != nil {
		t.Fatal(err)
	}
	dark := waitFor(t, ctx, `getComputedStyle(document.body).backgroundColor !== `+strconv.Quote(light)+
		` && getComputedStyle(document.body).backgroundColor`)
	if luminance(t, dark) >= luminance(t, light) {
		t.Errorf("prefers-color-scheme dark: background %s, not darker than the light %s", dark, light)
	}
	save(t, screenshot(t, ctx, 1280, 800), "statspage-dark.png", "-dark")
	for _, p := range watch.problems() {
		t.Errorf("the page reported: %s", p)
	}
}

// TestStatsPageSortFilterAndHover: a click on a column sorts by it (again: the other way), the
// filter box and the state chips narrow the rows, and the pointer over the chart shows that
// second's figures.
func TestStatsPageSortFilterAndHover(t *testing.T) {
	ctx, watch := newBrowser(t)
	api := newFakeAPI(fiftyBackends())
	_, pageURL := serve(t, api)
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
	navigate(t, ctx, pageURL)
	waitFor(t, ctx, `document.querySelectorAll('#rows tr[data-backend]').length === 50 && document.querySelector('#chart path.line[d^="M"]')`)
	visible := func() []string {
		return eval[[]string](t, ctx, `[...document.querySelectorAll('#rows tr[data-backend]')].filter(tr => !tr.hidden).map(tr => tr.dataset.backend)`)
	}

	// Most requests first, then fewest first. Backend i has 20000+37i requests; the unknown one (49) has none.
	do(t, ctx, chromedp.Click(chromedp.CSS(`th[data-sort="requests"]`)))
	if v := visible(); len(v) != 50 || v[0] != "127.0.0.1:9049" || v[1] != "127.0.0.1:9048" {
		t.Errorf("sorted by requests: rows start %q, want 127.0.0.1:9049, 127.0.0.1:9048", v[:min(2, len(v))])
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`th[data-sort="requests"]`)))
	if v := visible(); v[0] != "127.0.0.1:9050" || v[1] != "127.0.0.1:9001" {
		t.Errorf("sorted by requests, fewest first: rows start %q, want the unknown 127.0.0.1:9050 (0), then 127.0.0.1:9001", v[:min(2, len(v))])
	}

	// The filter box.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("filter"), "900"))
	if v := visible(); len(v) != 9 {
		t.Errorf("filtered by 900: %d rows %q, want the 9 of 127.0.0.1:9001-9009", len(v), v)
	}
	eval[chromedp.Void](t, ctx, `(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()`)
	if v := visible(); len(v) != 50 {
		t.Errorf("filter cleared: %d rows, want 50", len(v))
	}

	// A state chip shows only that state's backends; a second click shows them all again.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#summary button[data-state="down"]`)))
	if v := visible(); len(v) != 2 || v[0] != "127.0.0.1:9004" || v[1] != "127.0.0.1:9028" {
		t.Errorf("only the down backends: rows %q, want 127.0.0.1:9004 and 127.0.0.1:9028", v)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#summary button[data-state="down"]`)))
	if v := visible(); len(v) != 50 {
		t.Errorf("after a second click on the chip: %d rows, want 50", len(v))
	}

	// The pointer in the middle of the throughput chart: the legend names that second.
	type box struct{ X, Y float64 }
	c := eval[box](t, ctx, `(() => { const r = document.getElementById('chart-rps').getBoundingClientRect();
		return { X: r.left + r.width / 2, Y: r.top + r.height / 2 }; })()`)
	do(t, ctx, chromedp.MouseEvent(chromedp.MouseMoved, c.X, c.Y))
	at := waitFor(t, ctx, `/\u2212/.test(document.getElementById('lg-at-rps').textContent) && document.getElementById('lg-at-rps').textContent`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#chart line.cursor').length`); n != 2 {
		t.Errorf("hovering: %d cursor lines, want one in each chart", n)
	}
	t.Logf("legend while hovering: %s", at)
	do(t, ctx, chromedp.MouseEvent(chromedp.MouseMoved, 1, 1))
	waitFor(t, ctx, `document.getElementById('lg-at-rps').textContent === 'last second'`)
	for _, p := range watch.problems() {
		t.Errorf("the page reported: %s", p)
	}
}

// ---- The fake /api/stats ----

// stats is the JSON of /api/stats (actors/admin/API.md).
type stats struct {
	Version               string   `json:"version"`
	Started               string   `json:"started"`
	Now                   string   `json:"now"`
	Listen                string   `json:"listen"`
	Policy                string   `json:"policy"`
	HealthCheck           string   `json:"health_check"`
	HealthIntervalSeconds float64  `json:"health_interval_seconds"`
	Ready                 bool     `json:"ready"`
	ReadyReason           string   `json:"ready_reason"`
	Totals                totals   `json:"totals"`
	History               []point  `json:"history"`
	Backends              []backnd `json:"backends"`
}

type totals struct {
	Requests          int64    `json:"requests"`
	RequestsPerSecond float64  `json:"requests_per_second"`
	ErrorsPerSecond   float64  `json:"errors_per_second"`
	P50ms             *float64 `json:"p50_ms"`
	P99ms             *float64 `json:"p99_ms"`
	InFlight          int      `json:"in_flight"`
	Queue             int      `json:"queue"`
	ConnectionsOpen   int      `json:"connections_open"`
	LocalResponses    int64    `json:"local_responses"`
	BytesIn           int64    `json:"bytes_in"`
	BytesOut          int64    `json:"bytes_out"`
}

type point struct {
	T     int64    `json:"t"`
	RPS   float64  `json:"rps"`
	EPS   float64  `json:"eps"`
	P50ms *float64 `json:"p50_ms"`
	P99ms *float64 `json:"p99_ms"`
}

type backnd struct {
	Address           string   `json:"address"`
	State             string   `json:"state"`
	Reason            string   `json:"reason"`
	Since             *string  `json:"since"` // null when never probed
	Weight            int      `json:"weight"`
	InFlight          int      `json:"in_flight"`
	Requests          int64    `json:"requests"`
	RequestsPerSecond float64  `json:"requests_per_second"`
	ErrorRate         float64  `json:"error_rate"`
	P99ms             *float64 `json:"p99_ms"`
	LatencyMs         *float64 `json:"latency_ms"`
	Health            []check  `json:"health"`
}

type check struct {
	T      string  `json:"t"`
	OK     bool    `json:"ok"`
	Ms     float64 `json:"ms"`
	Reason string  `json:"reason"`
}

func ms(v float64) *float64 { return &v }

var now = time.Date(2026, 12, 7, 8, 5, 0, 0, time.UTC)

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func stampp(t time.Time) *string { s := stamp(t); return &s }

// base is a running load balancer's stats with five minutes of history and no backends.
func base() stats {
	s := stats{
		Version: "v0.1-123-gabc", Started: stamp(now.Add(-5*time.Minute - 12*time.Second)), Now: stamp(now),
		Listen: "127.0.0.1:8080", Policy: "least-request", HealthCheck: "classic", HealthIntervalSeconds: 3,
		Ready: true,
		Totals: totals{Requests: 1234567, RequestsPerSecond: 1873.4, ErrorsPerSecond: 2, P50ms: ms(1.24), P99ms: ms(8.7),
			InFlight: 14, Queue: 3, ConnectionsOpen: 212, LocalResponses: 17, BytesIn: 81_234_567, BytesOut: 1_934_567_890},
	}
	for i := 299; i >= 0; i-- {
		x := float64(300 - i)
		rps := 1500 + 400*math.Sin(x/40) + 25*math.Sin(x*1.3)
		p := point{T: now.Unix() - int64(i), RPS: rps, P50ms: ms(1.1 + 0.3*math.Sin(x/25)), P99ms: ms(6 + 3*math.Sin(x/33) + 0.6*math.Sin(x*0.7))}
		if i > 120 && i < 135 {
			p.EPS = 90 + 30*math.Sin(x) // a burst of errors two minutes ago
			p.P99ms = ms(*p.P99ms + 14)
		}
		if i > 200 && i < 204 {
			p.RPS, p.P50ms, p.P99ms = 0, nil, nil // seconds without requests
		}
		s.History = append(s.History, p)
	}
	return s
}

func healthOf(pass []bool, reason string) []check {
	var out []check
	for i, ok := range pass {
		c := check{T: stamp(now.Add(time.Duration(i-len(pass)) * 3 * time.Second)), OK: ok, Ms: 0.4 + float64(i%5)/10}
		if !ok {
			c.Ms, c.Reason = 2000, reason
		}
		out = append(out, c)
	}
	return out
}

func passes(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

// fiftyBackends: 44 up, 2 down, 2 ejected, 1 draining, 1 unknown.
func fiftyBackends() stats {
	s := base()
	states := map[int]string{3: "down", 27: "down", 8: "ejected", 41: "ejected", 15: "draining", 49: "unknown"}
	for i := range 50 {
		b := backnd{
			Address: fmt.Sprintf("127.0.0.1:%d", 9001+i), State: "up", Since: stampp(now.Add(-time.Duration(i*7) * time.Second)),
			Weight: 1 + i%3, InFlight: i % 4, Requests: int64(20000 + i*37), RequestsPerSecond: 30 + float64(i%9),
			P99ms: ms(5 + float64(i%6)), LatencyMs: ms(1 + float64(i%4)/3), Health: healthOf(passes(20), ""),
		}
		switch st := states[i]; st {
		case "down":
			b.State, b.Reason, b.InFlight, b.RequestsPerSecond, b.P99ms = st, "connect: connection refused", 0, 0, nil
			b.Health = healthOf(append(passes(14), false, false, false, false, false, false), "connect: connection refused")
		case "ejected":
			b.State, b.Reason, b.ErrorRate = st, "5 answers 5xx in a row", 0.31
			b.Health = healthOf(passes(20), "")
		case "draining":
			b.State = st
		case "unknown":
			b.State, b.Requests, b.RequestsPerSecond, b.InFlight, b.P99ms, b.LatencyMs, b.Health, b.Since = st, 0, 0, 0, nil, nil, nil, nil
		}
		s.Backends = append(s.Backends, b)
	}
	return s
}

// sixBackends: one of each state and a slow one, for the screenshot.
func sixBackends() stats {
	s := base()
	mk := func(port int, state, reason string, ago time.Duration, rps, errRate, p99, lat float64, inflight int, reqs int64, health []check) backnd {
		b := backnd{Address: fmt.Sprintf("127.0.0.1:%d", port), State: state, Reason: reason, Since: stampp(now.Add(-ago)),
			Weight: 1, InFlight: inflight, Requests: reqs, RequestsPerSecond: rps, ErrorRate: errRate, Health: health}
		if p99 > 0 {
			b.P99ms = ms(p99)
		}
		if lat > 0 {
			b.LatencyMs = ms(lat)
		}
		return b
	}
	flaky := append(passes(9), false, true, true, false, false, true, true, true, true, true, true)
	s.Backends = []backnd{
		mk(9001, "up", "", 5*time.Minute, 612.4, 0, 4.8, 1.1, 5, 402118, healthOf(passes(20), "")),
		mk(9002, "up", "", 5*time.Minute, 598.1, 0.0004, 5.2, 1.2, 4, 399870, healthOf(passes(20), "")),
		mk(9003, "draining", "", 42*time.Second, 12.5, 0, 7.9, 1.4, 2, 231004, healthOf(passes(20), "")),
		mk(9004, "ejected", "stalled: no answer for 2.1s while 2 requests waited", 18*time.Second, 0, 0.42, 2100, 250, 0, 118220, healthOf(flaky, "timeout after 2s")),
		mk(9005, "down", "connect: connection refused", 2*time.Minute+7*time.Second, 0, 0, 0, 0, 0, 83554, healthOf(append(passes(12), false, false, false, false, false, false, false, false), "connect: connection refused")),
		mk(9006, "unknown", "", 3*time.Second, 0, 0, 0, 0, 0, 0, nil),
	}
	s.Backends[0].Weight = 3
	s.Backends[3].Health[len(s.Backends[3].Health)-1] = check{T: stamp(now), OK: false, Ms: 2000, Reason: "timeout after 2s"}
	return s
}

// fakeAPI serves /api/stats from the current JSON, or 500 while fail is set.
type fakeAPI struct {
	body atomic.Pointer[[]byte]
	fail atomic.Bool
	hits atomic.Int64
}

func newFakeAPI(s stats) *fakeAPI {
	a := &fakeAPI{}
	a.set(s)
	return a
}

func (a *fakeAPI) set(s stats) {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	a.body.Store(&b)
}

// current returns a copy of the JSON being served, to change and set.
func (a *fakeAPI) current() stats {
	var s stats
	if err := json.Unmarshal(*a.body.Load(), &s); err != nil {
		panic(err)
	}
	return s
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.hits.Add(1)
	if a.fail.Load() {
		http.Error(w, "stats unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(*a.body.Load())
}

// serve starts a test server on 127.0.0.1 with the page under a path prefix (/lb/) and the
// fake API beside it (/lb/api/stats), and returns it with the page's URL.
func serve(t *testing.T, api *fakeAPI) (*httptest.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/lb/api/stats", api)
	mux.Handle("/lb/{$}", statspage.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, srv.URL + "/lb/"
}

// ---- The browser ----

// chromiumPath finds Chromium; without one the test is skipped, or fails when CI is "true".
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium, chromium-browser or google-chrome in PATH; the browser tests must run in CI")
	}
	t.Skip("no chromium, chromium-browser or google-chrome in PATH: skipping the browser test")
	return ""
}

// watcher records what the page asked the network for and what it reported going wrong.
type watcher struct {
	seen chan []string // the URLs requested; the channel holds the slice between uses
	bad  chan []string // exceptions, console errors and browser errors other than failed fetches
}

func (w *watcher) add(c chan []string, s string) { l := <-c; c <- append(l, s) }
func (w *watcher) get(c chan []string) []string  { l := <-c; c <- l; return append([]string(nil), l...) }
func (w *watcher) urls() []string                { return w.get(w.seen) }
func (w *watcher) problems() []string            { return w.get(w.bad) }

// newBrowser starts headless Chromium (no sandbox: the tests may run as root; a temporary
// profile that chromedp removes) with one tab, closed with everything it started at the
// test's clean-up, and a watcher on that tab.
func newBrowser(t *testing.T) (context.Context, *watcher) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		allocCancel() // waits for the browser process to end and its profile to be removed
	})
	// Start the browser with no deadline: the first Run binds the browser's life to its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath(t), err)
	}
	w := &watcher{seen: make(chan []string, 1), bad: make(chan []string, 1)}
	w.seen <- nil
	w.bad <- nil
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			w.add(w.seen, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			w.add(w.bad, fmt.Sprintf("exception at %d:%d: %s", d.LineNumber+1, d.ColumnNumber+1, msg))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				w.add(w.bad, "console."+string(ev.Type))
			}
		case *cdplog.EventEntryAdded:
			// A failed fetch of api/stats (the 500 phase) is logged by the network; anything
			// else at error level (a CSP violation, say) is a problem.
			if e := ev.Entry; e != nil && e.Level == cdplog.EntryLevelError && e.Source != cdplog.EntrySourceNetwork {
				w.add(w.bad, fmt.Sprintf("%s: %s", e.Source, e.Text))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, w
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepLimit)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(u))
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepLimit)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy and returns its value as text.
func waitFor(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepLimit)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Poll[any](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitLong)))
	if err != nil {
		t.Fatalf("waiting up to %v for %s: %v", waitLong, expr, err)
	}
	return fmt.Sprint(v)
}

type row struct {
	Address, State, Text string
	Visible              bool
}

func backendRows(t *testing.T, ctx context.Context) []row {
	t.Helper()
	return eval[[]row](t, ctx, `[...document.querySelectorAll('#rows tr[data-backend]')].map(tr => {
		const b = tr.querySelector('.state .badge'), r = b.getBoundingClientRect();
		return { Address: tr.dataset.backend, State: tr.dataset.state, Text: b.textContent.trim(),
			Visible: r.width > 0 && r.height > 0 && getComputedStyle(b).visibility === 'visible' };
	})`)
}

// screenshot captures the viewport (height 0: the whole page) and checks it is a PNG of the
// expected width.
func screenshot(t *testing.T, ctx context.Context, width, height int) []byte {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepLimit)
	defer cancel()
	act := chromedp.CaptureScreenshot()
	if height == 0 {
		act = chromedp.FullScreenshot(100)
	}
	buf, err := chromedp.Run(sctx, act)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if cfg.Width != width || (height != 0 && cfg.Height != height) {
		t.Errorf("screenshot %dx%d, want %dx%d", cfg.Width, cfg.Height, width, height)
	}
	return buf
}

// save writes a screenshot into the test's temporary directory and, when STATSPAGE_SCREENSHOT
// is set, beside that path with suffix before its extension ("" for the path itself).
func save(t *testing.T, png []byte, name, suffix string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if dst := os.Getenv("STATSPAGE_SCREENSHOT"); dst != "" {
		ext := filepath.Ext(dst)
		dst = strings.TrimSuffix(dst, ext) + suffix + ext
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}
}

// luminance of a CSS rgb()/rgba() colour, 0 to 255.
func luminance(t *testing.T, css string) float64 {
	t.Helper()
	var r, g, b float64
	if _, err := fmt.Sscanf(strings.NewReplacer("rgba(", "", "rgb(", "", ",", " ").Replace(css), "%g %g %g", &r, &g, &b); err != nil {
		t.Fatalf("colour %q: %v", css, err)
	}
	return 0.2126*r + 0.7152*g + 0.0722*b
}
