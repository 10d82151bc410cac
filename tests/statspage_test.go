package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStatsPageShowsKilledBackendDown opens the admin listener's stats page in headless
// Chromium in front of three real httpservers, checks that it lists them and counts the
// requests sent through the proxy, kills one backend and checks that the page shows it down
// within one health interval plus two seconds, measured from the kill.
func TestStatsPageShowsKilledBackendDown(t *testing.T) {
	chromium := spChromium(t) // before starting anything: without a browser there is no test
	const (
		requests       = 200
		healthInterval = 3 * time.Second
		slack          = 2 * time.Second
	)
	dir := t.TempDir()
	mustWriteFile(t, filepath.Join(dir, "f"), []byte("hello, stats page\n"))
	backends := []*Proc{startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L"), startHTTPServer(t, dir, "-L")}
	lb, admin := startLBAdmin(t, ports(backends...), "--health-interval", healthInterval.String())
	waitBackendsUp(t, lb, len(backends))
	for i := range requests {
		if st, body := get(t, lb.Addr, "f"); st != 200 {
			t.Fatalf("request %d through the proxy: status %d, body %q", i, st, body)
		}
	}

	ctx := spBrowser(t, chromium)
	spDo(t, ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate("http://"+admin+"/"))

	// Every backend listed and up, and the total counts at least the requests sent.
	row := func(p *Proc) string { return fmt.Sprintf(`document.querySelector('tr[data-backend$=":%d"]')`, p.Port) }
	var allUp []string
	for _, b := range backends {
		allUp = append(allUp, row(b)+`?.dataset.state === 'up'`)
	}
	spWait(t, ctx, "every backend listed up and the total requests at least "+strconv.Itoa(requests),
		strings.Join(allUp, " && ")+` && +document.getElementById('total-requests').textContent.replace(/[^0-9]/g, '') >= `+
			strconv.Itoa(requests), 30*time.Second)
	if n := spEval[int](t, ctx, `document.querySelectorAll('tr[data-backend]').length`); n != len(backends) {
		t.Errorf("the page lists %d backends, want %d", n, len(backends))
	}

	victim, others := backends[1], []*Proc{backends[0], backends[2]}
	killed := time.Now()
	victim.Kill()
	spWait(t, ctx, "the killed backend shown down",
		row(victim)+`?.dataset.state === 'down' && `+row(victim)+`.querySelector('.badge').textContent === 'down'`, 30*time.Second)
	if took, limit := time.Since(killed), healthInterval+slack; took > limit {
		t.Errorf("the page showed the killed backend down %v after the kill, want within %v (one health interval plus %v)",
			took.Round(10*time.Millisecond), limit, slack)
	} else {
		t.Logf("the page showed the killed backend down %v after the kill", took.Round(10*time.Millisecond))
	}
	for _, b := range others {
		if st := spEval[string](t, ctx, row(b)+`.dataset.state`); st != "up" {
			t.Errorf("backend %s shows %q after another was killed, want up", b.Addr, st)
		}
	}

	shot := spScreenshot(t, ctx)
	path := filepath.Join(t.TempDir(), "statspage-e2e.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if dst := os.Getenv("STATSPAGE_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}
}

// spChromium finds Chromium; without one the test is skipped, or fails when CI is "true".
func spChromium(t *testing.T) string {
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

// spBrowser starts headless Chromium (no sandbox: the tests may run as root; a temporary
// profile that chromedp removes) with one tab. The browser and every process it started are
// gone at the test's clean-up.
func spBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
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
	// The first Run starts the browser and binds its life to ctx: no deadline here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

func spDo(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func spEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// spWait polls a JavaScript expression in the page every 50 ms until it is truthy, for at most
// limit (a bound on a hung page, not a timing assertion).
func spWait(t *testing.T, ctx context.Context, what, expr string, limit time.Duration) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(limit))); err != nil {
		rows, _ := chromedp.Run(sctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll('tr[data-backend]')].map(r => r.dataset.backend + ' ' + r.dataset.state).join(', ') +
			'; total ' + document.getElementById('total-requests')?.textContent +
			'; banner ' + (document.getElementById('disconnected')?.hidden ? 'hidden' : 'shown')`))
		t.Fatalf("waiting up to %v for %s: %v (the page shows: %s)", limit, what, err, rows)
	}
}

func spScreenshot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	buf, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
