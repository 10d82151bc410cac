// Package admin implements the admin listener (--admin-addr): the control plane, apart from the
// proxy port, where nothing is forwarded. It serves
//
//   - /metrics: Prometheus metrics (client_golang), loadbalancer_* from the actors' own counts,
//     plus the Go and process collectors;
//   - /healthz: 200 while the process runs;
//   - /readyz: 200 once the first health round is done and a backend is up, else 503 with a
//     one-line reason;
//   - /api/stats: the stats page's JSON (API.md), for scripts too;
//   - /: the stats page (package statspage).
//
// It owns no count. At a scrape (and once a second for the stats page) it sends a
// *messages.StatsRequest to the Dispatcher, the HealthMonitor, the Acceptor and the access log
// writer, whose answers (*messages.DispatcherStats, *messages.HealthStats, *messages.ConnStats
// followed by one *messages.LoopStats per event loop, *messages.AccessLogStats) land on a reply
// endpoint; an owner that does not answer within the timeout leaves its families out of that
// scrape. The sampler goroutine keeps the stats page's history (the last 300 seconds of totals,
// the last 10 of per-backend counts) and hands the latest JSON to the handlers over a channel.
package admin
