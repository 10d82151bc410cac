// Command bench is the side-by-side benchmark behind `make bench`: our load balancer against
// HAProxy, nginx and Caddy, in front of the same backends (two nginx servers; in the hetero
// scenario three of our httpservers, one of them slow), driven by the same client.
//
//	go run ./tests/bench          # from the repository root, after `make build`
//	ROUNDS=1 DURATION=3s go run ./tests/bench   # a quick look
//	SCENARIOS=hetero go run ./tests/bench        # the balancing policies in front of a slow backend
//	SCENARIOS=small,small8,small256 go run ./tests/bench   # small at $CONNS, 8 and 256 clients
//
// # What it starts
//
// Everything listens on 127.0.0.1, on free ports, with its configuration, logs and temporary
// files in one directory under /dev/shm (or $TMPDIR) that is removed at the end. Every process
// runs in its own process group and is stopped on exit, on an error and on Ctrl-C.
//
//   - Two backends: nginx, one worker each (templates/backend.conf.tmpl). /small answers a
//     32-byte body with `return 200`, /1m sends a 1 MiB file, /healthcheck answers "0\n0" for our
//     load balancer's classic health check, /status is nginx's stub_status, and /upload reads a
//     whole request body (into a temporary file on tmpfs) before it answers: it proxies a
//     body-less request to its own /sink. So an upload's response never overtakes its body
//     (as it would with `return 200`, which answers first and discards the body afterwards) and
//     every byte really travels. /upload logs one line per upload with the body length it read.
//   - For the hetero scenario only, while it runs: one httpserver (bin/httpserver, from `make
//     build`) per $HETERO_DELAYS entry, by default three, `httpserver PORT -L --bind 127.0.0.1
//     --delay D` with D = 10ms, 10ms and 100ms, all serving one directory that holds "small" (the
//     same 32 bytes as nginx's /small). -L makes /healthcheck answer the classic check (and
//     count the requests, which gives the split); --delay makes every answer but the health
//     check's wait D, in a sleep that holds none of httpserver's -N slots, so D is pure latency:
//     a backend serves as many requests at once as it is sent, each D late. See "Why those
//     delays" below.
//   - The proxies, each with two threads or workers, least-connections balancing, kept-alive
//     upstream connections and no logging or active health checks (ours keeps its classic 3 s
//     health check, which costs one request per backend every 3 s; in hetero, HAProxy and Caddy
//     check too, see below):
//     ours (bin/loadbalancer -N 4096 -R 1000000 --bind 127.0.0.1 --log-level warn, plus $LB_FLAGS
//     and --admin-addr: see "Metrics and the access log"), HAProxy (nbthread 2, balance leastconn,
//     http-reuse always), nginx (worker_processes 2, least_conn, keepalive 64, proxy_http_version
//     1.1, streaming request bodies, 16 KiB response buffers like HAProxy's) and Caddy
//     (GOMAXPROCS=2, lb_policy least_conn, 64 idle connections per backend). HAProxy and nginx add
//     X-Forwarded-For and X-Forwarded-Proto, as ours and Caddy do by default. Otherwise every peer
//     keeps its defaults (HAProxy does not splice unless told to; on this machine `option
//     splice-auto` made no measurable difference).
//     The proxies are started afresh for each scenario, so one scenario's heap does not show up
//     in the next one's memory figures.
//   - Rows of ours with flags of their own, after the usual ones and $LB_FLAGS (so they win),
//     each in one scenario: ours/default-R (-R 5, the classic default: a health-check round is
//     also due after every 5 requests) in small (not in small8 or small256), next to ours, so
//     that the cost of request-triggered rounds shows; ours/access-log (--access-log FILE
//     --access-log-format json, see "Metrics and the access log") in small, next to ours, so
//     that the cost of the access log shows; ours/peak-ewma, ours/least-request and
//     ours/round-robin (--policy NAME) in hetero, where they take the place of ours. "ours" in
//     $PROXIES brings them all along; "-ours/default-R" leaves that one out again. The
//     default-R and access-log rows cost one more row of runs each in small, and leave nothing
//     behind for the next rows: the rounds default-R triggers (about 20 new health-check
//     connections a second, by the backends' counts) stop with it, and the access log is
//     emptied after each run. base runs where ours runs, not in hetero.
//
// # Metrics and the access log
//
// Every row of ours (ours and its variants) runs with its metrics on: --admin-addr
// 127.0.0.1:PORT2, on a free port of its own, which starts the admin listener (Prometheus
// /metrics, /api/stats, the stats page) and with it the sampling of the actors once a second
// for the page. While a measured run goes on (wrk, or the uploads), the harness scrapes that
// /metrics once a second, like a Prometheus with scrape_interval 1s (the usual is 15 s), with a
// timeout of 1 s and a kept-alive connection, and throws the bodies away; the scrapes that
// worked and failed are in each progress line and, per row and scenario, under the table
// ("scrapes: N ok, M failed"). The load balancer's CPU time for them counts in its CPU
// figures; the scraper's own does not (it is the harness's). The base row runs without
// --admin-addr, since its build may predate the flag: ours against base (×ours, see below)
// therefore includes the cost of the metrics when base predates them.
//
// ours/access-log also writes an access log line per request, in JSON, to a file in a directory
// of its own under $TMPDIR or /tmp (not under /dev/shm with the rest, so that the lines reach a
// disk when /tmp is one; the header says whether it is tmpfs), which the harness removes at the
// end. After each warm-up, once the warm-up's lines are written (the writer's counters on
// /metrics stood still for 0.5 s), the file is emptied; after the run, once its lines are
// written, they are counted and the file is emptied again, so it never holds more than one
// run's lines (about 12 MB for 10 s at 40,000 requests/s). The count should match the requests
// wrk reported within 1% (the log has a few more: the requests in flight when wrk stopped,
// which wrk does not count); lines the writer dropped because it fell behind are scraped
// (loadbalancer_access_log_dropped_lines_total) and reported with the count, per round, and
// a count more than 1% off says MISMATCH. A failed check does not fail the round.
//
// # How a run is measured
//
// Scenarios run one after another; within a scenario the proxies take turns, round after round
// (ours, haproxy, nginx, caddy, ours, haproxy, ...). Before each measured wrk run the same wrk
// command runs for $WARMUP against the same proxy, unmeasured.
//
//   - small: wrk -t$THREADS -c$CONNS -d$DURATION --latency http://proxy/small. Also run straight
//     against one backend, the "direct" baseline row ($BASELINE adds it to other scenarios).
//   - small8 and small256: small with 8 and with 256 client connections (wrk -c8, -c256),
//     whatever $CONNS says; -t is $THREADS, or the number of connections if that is smaller
//     (wrk needs a connection per thread). The rows are small's but ours/default-R, with a
//     direct row only when $BASELINE names the scenario. Next to small, they show how
//     throughput, latency and CPU per request change with few and with many clients. At 256,
//     more requests can be in flight than nginx (keepalive 64) and Caddy (64 idle connections
//     per backend) keep upstream connections for, so they open and close more of them: see
//     backend req/conn.
//   - close: the same with -H "Connection: close": a new client connection per request. wrk
//     decides by the response's Connection header alone, so a server that closes as asked but
//     whose response does not say "Connection: close" costs wrk a read error after a complete
//     response; up to one such read error per completed request is reported, not counted.
//   - large: the same against /1m (1 MiB responses).
//   - hetero: wrk as in small against /small, in front of the hetero backends. What differs
//     between the rows is where each policy sends the requests: round-robin sends a third of
//     them to the slow backend; least-connections keeps as many in flight there as on each
//     fast one, so the slow one, ten times slower, gets about a twenty-first of them (5%);
//     peak-EWMA weighs the in-flight count by each backend's observed latency and so should
//     send it fewer. The split column shows each backend's share (the slow one last), req/s
//     what that costs, p99 whether more than 1% of the requests waited for the slow backend.
//     The direct row (BASELINE=hetero) is the first, fast httpserver on its own: as the
//     delays, not the CPU, bound the rate, it shows what a policy that never waits for the
//     slow backend would reach. HAProxy (option httpchk: GET /healthcheck HTTP/1.1 every 3 s,
//     timeout check 2s, fall 1 rise 1) and Caddy (health_uri /healthcheck, health_interval 3s,
//     health_timeout 2s) check the backends actively there, as ours does with its classic
//     check; open-source nginx has no active health checks, only the passive ones it has in
//     every scenario (its defaults, max_fails=1 fail_timeout=10s).
//   - upload: $UPLOADERS connections, each sending `PUT /upload` with a $UPLOAD_MB MiB body
//     (Content-Length, written from memory in 1 MiB writes), reading the response and starting
//     the next upload on the same connection until $DURATION has passed; uploads under way at
//     that moment are finished. Throughput is all bytes of completed uploads divided by the time
//     from the first byte to the last response; latency is per upload. The same Go uploader is
//     used for every proxy.
//
// For every run the harness records, for the proxy's whole process tree (nginx's master and
// workers): CPU seconds (utime+stime from /proc/PID/stat, after minus before) and peak RSS (the
// sum of VmHWM over the processes, after resetting the peak through /proc/PID/clear_refs when the
// run starts; if that reset is refused, the peak of the summed VmRSS sampled every 50 ms). It
// also reads each backend's counters before and after (nginx's stub_status; httpserver's
// /healthcheck, whose entry count covers every request), which shows how the requests were
// split between the backends and, for nginx, how many requests each upstream connection carried
// (far more than 1 when upstream keep-alive works, 1 when it does not; httpserver does not count
// connections); for uploads it shows the split of the bytes and the share of the sent bytes
// that the backends logged as read ("delivered"). The proxies' own health checks, a handful per
// backend and run, count as requests too.
// Finally it measures the noise: the machine's busy CPU time (/proc/stat) minus that of the
// harness and everything it started, i.e. what other processes used during the run. A run
// where that is noticeable says so, and the summary warns when it reached 0.2 CPUs.
//
// # Why those delays
//
// The hetero backends answer after 10 ms, 10 ms and 100 ms rather than, say, 1 ms, 1 ms and
// 10 ms, because on a two-core machine the comparison must stay latency-bound: with $CONNS
// (64) connections the best possible rate is 64 / 10 ms = 6,400 requests/s, a fraction of what
// the two cores can push through a proxy and a Go httpserver (one httpserver answers wrk
// directly at about 35,000/s), so CPU time does not decide the result and the rows differ by
// where the requests went. With 1 ms the fast backends could take 64,000/s, the CPU saturates,
// queueing for the cores swamps the delays and the policies look alike (tried: round-robin and
// least-connections came within 10% of each other, the fast answers took 3-5 ms). Go's sleeps
// also end up to about a millisecond late: at 10 ms that is noise, at 1 ms it would make the
// fast backends twice as slow as asked and the slow one only about 5× slower.
//
// What to expect: round-robin about 64 / 40 ms = 1,600/s (the mean delay is (10+10+100)/3 =
// 40 ms); least-connections keeps about 21 requests in flight on each backend, 21/10 + 21/10 +
// 21/100 ≈ 4,400/s (nearer 3,800 in practice: the fast answers take nearer 12 ms), with about
// 5% of the requests on the slow backend, so p99 over 100 ms; the less a policy sends to the
// slow backend, the closer it gets to 6,400/s, and once that is under 1% of the requests, p99
// falls to the fast backends' latency.
//
// # The tables
//
// The tables show the median of each figure across rounds, "spread" as (max-min)/median of the
// throughput, and ratios to HAProxy's medians; where a variant of ours or base ran next to ours
// (small, by default: ours/default-R and ours/access-log), also "×ours", each row's throughput over
// ours's: for ours/access-log the cost of the access log, for base what changed since. They are
// printed at the end and written to tests/bench/results/latest.txt together with every round's
// figures. Every row with figures, in every scenario, has the CPU time per request of its processes
// (the proxy's; the backend's in direct): "CPU µs/req", or in upload "CPU µs/MiB", per MiB uploaded
// (every upload is $UPLOAD_MB MiB, so the rows compare as they would per upload). A wrk run in
// which more than 1% of the requests fail (socket errors, or statuses other than 2xx and 3xx)
// counts as a failed round, so that fast errors never look like speed. A proxy that crashes fails
// that round (its log is copied to tests/bench/results/NAME.crash.log, with "/" in NAME as "-") and
// is started afresh for the next one. The exit status is 0, or 1 when a row of ours produced no
// figures in a scenario it belongs to (or could not run), 2 for bad settings and 130 when
// interrupted.
//
// # Settings (environment variables)
//
//	DURATION=10s  CONNS=64  THREADS=2  ROUNDS=3  WARMUP=1s (0 for none)
//	(CONNS is wrk's -c in every wrk scenario but small8 and small256, which have their own)
//	SCENARIOS=small,small8,small256,close,large,upload,hetero
//	PROXIES=ours,haproxy,nginx,caddy  (rows, in turn order; "ours" brings ours/default-R,
//	ours/access-log, ours/peak-ewma, ours/least-request and ours/round-robin along, each of
//	which can also be named alone: PROXIES=ours/peak-ewma,haproxy)
//	BASELINE=small  (scenarios with a "direct" row)
//	UPLOADERS=4  UPLOAD_MB=100
//	LB_BIN=bin/loadbalancer  LB_FLAGS="--no-request-id ..."  (extra flags for every row of ours)
//	BASE_BIN=/path/to/loadbalancer  (with PROXIES=ours,base,...: a second build of ours, run with
//	the same flags but --admin-addr, for before-and-after comparisons in one run; "all" leaves
//	it out)
//	HTTPSERVER_BIN=bin/httpserver  (the hetero backends)
//	HETERO_DELAYS=10ms,10ms,100ms  (the hetero backends' --delay, one backend per entry, at
//	least two; the table's split lists the backends in this order)
//	KEEP_TMP=1  (keep the temporary directory with configs and logs, and the access log's)
//
// SCENARIOS, PROXIES and BASELINE are comma-separated lists, in any case, or "all" or "none";
// "-name" leaves a name out: PROXIES=ours,-ours/default-R,haproxy. A relative LB_BIN, BASE_BIN
// or HTTPSERVER_BIN is taken from the working directory or else from the repository root.
//
// Nothing is installed: missing peers and tools are reported with the apt-get line that adds
// them, and the rest runs. The backends need nginx; without it nothing runs. Without
// bin/httpserver the hetero scenario is skipped.
package main
