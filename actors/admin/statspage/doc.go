// Package statspage serves the admin listener's live stats page: one self-contained HTML page
// (HTML, CSS and JavaScript inline, embedded in the binary with go:embed) that reads the JSON of
// /api/stats every second and shows the load balancer's totals, a chart of requests/s, errors/s
// and p50/p99 latency over the last minutes (drawn as inline SVG, no charting library), and a
// row per backend with its state, reason, in flight, requests/s, error rate, p99 and health
// history.
//
// The page makes no request but to its own origin (no external fonts, scripts or images; the
// Content-Security-Policy the handler sends forbids them), so it works offline. It fetches
// api/stats relative to its own URL, so it works behind a path prefix: mount Handler at a path
// that ends in "/" (such as "/" or "/admin/") and serve the JSON at "api/stats" below it.
//
// The page's elements carry stable hooks for tests and scripts: each backend's row has
// data-backend (its address) and data-state (up, down, ejected, draining or unknown); the total
// of requests is #total-requests, the chart #chart, the banner shown while /api/stats cannot be
// read #disconnected.
package statspage
