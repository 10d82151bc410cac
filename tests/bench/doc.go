// Command bench is the side-by-side benchmark behind `make bench`: our load balancer against
// HAProxy, nginx and Caddy, in front of the same two nginx backends, driven by the same client.
//
//	go run ./tests/bench          # from the repository root, after `make build`
//	ROUNDS=1 DURATION=3s go run ./tests/bench   # a quick look
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
//   - The proxies, each with two threads or workers, least-connections balancing, kept-alive
//     upstream connections and no logging or active health checks (ours keeps its classic 3 s
//     health check, which costs one request per backend every 3 s):
//     ours (bin/loadbalancer -N 4096 -R 1000000 --bind 127.0.0.1 --log-level warn, plus
//     $LB_FLAGS), HAProxy (nbthread 2, balance leastconn, http-reuse always), nginx
//     (worker_processes 2, least_conn, keepalive 64, proxy_http_version 1.1, streaming request
//     bodies, 16 KiB response buffers like HAProxy's) and Caddy (GOMAXPROCS=2, lb_policy
//     least_conn, 64 idle connections per backend). HAProxy and nginx add X-Forwarded-For and
//     X-Forwarded-Proto, as ours and Caddy do by default. Otherwise every peer keeps its defaults
//     (HAProxy does not splice unless told to; on this machine `option splice-auto` made no
//     measurable difference).
//     The proxies are started afresh for each scenario, so one scenario's heap does not show up
//     in the next one's memory figures.
//
// # How a run is measured
//
// Scenarios run one after another; within a scenario the proxies take turns, round after round
// (ours, haproxy, nginx, caddy, ours, haproxy, ...). Before each measured wrk run the same wrk
// command runs for $WARMUP against the same proxy, unmeasured.
//
//   - small: wrk -t$THREADS -c$CONNS -d$DURATION --latency http://proxy/small. Also run straight
//     against one backend, the "direct" baseline row ($BASELINE adds it to other scenarios).
//   - close: the same with -H "Connection: close": a new client connection per request. wrk
//     decides by the response's Connection header alone, so a server that closes as asked but
//     whose response does not say "Connection: close" costs wrk a read error after a complete
//     response; up to one such read error per completed request is reported, not counted.
//   - large: the same against /1m (1 MiB responses).
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
// also reads both backends' stub_status before and after, which shows how the requests were
// split between the backends and how many requests each upstream connection carried (far more
// than 1 when upstream keep-alive works, 1 when it does not); for uploads it shows the split of
// the bytes and the share of the sent bytes that the backends logged as read ("delivered").
// Finally it measures the noise: the machine's busy CPU time (/proc/stat) minus that of the
// harness and everything it started, i.e. what other processes used during the run. A run
// where that is noticeable says so, and the summary warns when it reached 0.2 CPUs.
//
// The tables show the median of each figure across rounds, "spread" as (max-min)/median of the
// throughput, and ratios to HAProxy's medians. They are printed at the end and written to
// tests/bench/results/latest.txt together with every round's figures. A wrk run in which more
// than 1% of the requests fail (socket errors, or statuses other than 2xx and 3xx) counts as a
// failed round, so that fast errors never look like speed. A proxy that crashes
// fails that round (its log is copied to tests/bench/results/NAME.crash.log) and is started
// afresh for the next one. The exit status is 0, or 1 when ours produced no figures in some
// scenario (or could not run), 2 for bad settings and 130 when interrupted.
//
// # Settings (environment variables)
//
//	DURATION=10s  CONNS=64  THREADS=2  ROUNDS=3  WARMUP=1s (0 for none)
//	SCENARIOS=small,close,large,upload  PROXIES=ours,haproxy,nginx,caddy  (or "all")
//	BASELINE=small  (scenarios with a "direct" row: a list, "all" or "none")
//	UPLOADERS=4  UPLOAD_MB=100
//	LB_BIN=bin/loadbalancer  LB_FLAGS="--no-request-id ..."  (extra flags for ours)
//	BASE_BIN=/path/to/loadbalancer  (with PROXIES=ours,base,...: a second build of ours, run with
//	the same flags, for before-and-after comparisons in one run; "all" leaves it out)
//	KEEP_TMP=1  (keep the temporary directory with configs and logs)
//
// Nothing is installed: missing peers and tools are reported with the apt-get line that adds
// them, and the rest runs. The backends need nginx; without it nothing runs.
package main
