// Package admin implements the admin listener (--admin-addr): the control plane, apart from the
// proxy port, where nothing is forwarded. It serves
//
//   - /metrics: Prometheus metrics (client_golang), loadbalancer_* from the actors' own counts,
//     plus the Go and process collectors;
//   - /healthz: 200 while the process runs;
//   - /readyz: 200 once the first health round is done and a backend is up, else 503 with a
//     one-line reason;
//   - /api/stats: the stats page's JSON (API.md), for scripts too;
//   - /: the stats page (package statspage);
//   - with a Config.Control, the runtime API (api.go, API.md): GET and POST /api/backends,
//     GET, PATCH and DELETE /api/backends/{addr}, GET /api/config, POST /api/reload. With a
//     Config.Token every call of it needs "Authorization: Bearer TOKEN" (compared in constant
//     time, as SHA-256 sums), else 401; /api/stats, /metrics, /healthz, /readyz and the page
//     stay open.
//
// It owns no count. At a scrape (and once a second for the stats page) it sends a
// *messages.StatsRequest to the Dispatcher, the HealthMonitor, the Acceptor and the access log
// writer, whose answers (*messages.DispatcherStats, *messages.HealthStats, *messages.ConnStats
// followed by one *messages.LoopStats per event loop, *messages.AccessLogStats) land on a reply
// endpoint; an owner that does not answer within the timeout leaves its families out of that
// scrape. The sampler goroutine keeps the stats page's history (the last 300 seconds of totals,
// the last 10 of per-backend counts) and hands the latest JSON to the handlers over a channel.
//
// The runtime API works through Control (main's): it reads the backends (the Dispatcher's view
// and the configured list), applies a new list whole (SetBackends, the path a reload takes, which
// validates all of it and changes nothing on a problem), reloads, and shows the configuration.
// Its calls run one at a time on a goroutine of the API's own, which also owns the one piece of
// state the API keeps: the backends disabled through it. The configured list has no "disabled"
// mark, so disabling takes a backend out of the list (the Dispatcher drains it: no new request)
// and keeps it in that set, from which "enabled" puts it back where it was, with its settings. A
// reload re-applies the file and the set is forgotten (through the API at once; after a SIGHUP,
// at the next call that finds the configured list changed). Every request is checked before
// that goroutine gets it (one JSON value, at most 64 KiB, no unknown field, values in range), and
// an error is JSON: {"error": ..., "problems": [...]}.
package admin
