package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

// scenario is one workload of the benchmark.
type scenario struct {
	key      string
	title    string
	path     string   // wrk scenarios: the URL path
	headers  []string // wrk scenarios: extra request headers
	conns    int      // wrk scenarios: client connections (-c)
	threads  int      // wrk scenarios: wrk threads (-t), never more than conns
	closing  bool     // every request asks for Connection: close
	upload   bool     // the upload scenario (not wrk)
	hetero   bool     // in front of the httpserver backends with their delays, not nginx
	baseline bool     // also run straight against one backend
}

func scenarioFor(key string, cfg config) scenario {
	sc := scenarioOf(key, cfg)
	sc.baseline = slices.Contains(cfg.baseline, key)
	if !sc.upload {
		sc.conns, sc.threads = wrkConns(key, cfg)
	}
	return sc
}

// wrkConns is wrk's -c and -t in scenario key: $CONNS, or the scenario's fixed number of
// connections, and $THREADS, but no more threads than connections (wrk needs one per thread).
func wrkConns(key string, cfg config) (conns, threads int) {
	conns = cfg.conns
	if n, ok := fixedConns[key]; ok {
		conns = n
	}
	return conns, min(cfg.threads, conns)
}

func scenarioOf(key string, cfg config) scenario {
	switch key {
	case "small":
		return scenario{key: key, path: "/small",
			title: fmt.Sprintf("small: %d-byte responses over keep-alive client connections", len(smallBody))}
	case "small8", "small256":
		return scenario{key: key, path: "/small",
			title: fmt.Sprintf("%s: %d-byte responses over %d keep-alive client connections", key, len(smallBody), fixedConns[key])}
	case "close":
		return scenario{key: key, path: "/small", headers: []string{"Connection: close"}, closing: true,
			title: fmt.Sprintf("close: %d-byte responses, a new client connection per request (Connection: close)", len(smallBody))}
	case "large":
		return scenario{key: key, path: "/1m", title: "large: 1 MiB responses over keep-alive client connections"}
	case "hetero":
		var ds []string
		for _, d := range cfg.heteroDelays {
			ds = append(ds, d.String())
		}
		return scenario{key: key, path: "/small", hetero: true,
			title: fmt.Sprintf("hetero: %d-byte files from %d httpserver backends answering after --delay %s",
				len(smallBody), len(cfg.heteroDelays), strings.Join(ds, ", "))}
	default:
		return scenario{key: key, upload: true,
			title: fmt.Sprintf("upload: %d concurrent PUTs of %d MiB, one after another on each connection", cfg.uploaders, cfg.uploadMiB)}
	}
}

// sample is one measured run of one target in one scenario.
type sample struct {
	failed     string  // why the run produced no figures; "" when it did
	rate       float64 // requests/s, or MiB/s for uploads
	mibps      float64 // MiB/s of response (wrk) or request (upload) bodies
	p50, p99   time.Duration
	cpu        float64 // CPU seconds of the target's processes
	rss        int64   // peak RSS in bytes, summed over the target's processes
	rssSampled bool    // rss is the peak of 50 ms samples (the VmHWM reset was refused)
	units      float64 // requests, or MiB uploaded: what CPU time is divided by
	errors     int64
	errorText  string
	closes     int64   // close scenario: closes after a complete response that did not announce them
	otherLoad  float64 // CPUs kept busy by processes outside the benchmark during the run
	uploads    int64
	shares     []float64 // each backend's share of requests (or upload bytes), in order; nil if unknown
	perConn    float64   // requests per backend connection; NaN if unknown
	delivered  float64   // uploads: bytes the backends read / bytes the client sent; NaN if unknown
	// Rows of ours: the scrapes of their /metrics during the run (scraped is false for the
	// other rows).
	scraped             bool
	scrapes, scrapeFail int
	scrapeErr           string // the last failed scrape's error
	// ours/access-log: the lines the run added to the access log file, and those the writer
	// says it wrote and dropped meanwhile (logChecked false, with logErr, when that failed).
	logChecked                       bool
	logLines, logWritten, logDropped int64
	logErr                           string
}

func run() int {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	raiseFileLimit()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nbench: interrupted; stopping everything it started")
		cancel()
		for range sigs {
			fmt.Fprintln(os.Stderr, "bench: still stopping (at most a few seconds)")
		}
	}()

	e, err := newEnv(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer func() {
		if cfg.keepTmp {
			fmt.Printf("configs and logs kept in %s\n", e.dir)
			if e.logDir != "" {
				fmt.Printf("the last run's access log kept in %s\n", e.logDir)
			}
		} else {
			os.RemoveAll(e.dir)
			if e.logDir != "" {
				os.RemoveAll(e.logDir)
			}
		}
	}()

	missing := e.missing()
	installHint := ""
	if len(missing) > 0 {
		installHint = fmt.Sprintf("not installed: %s; add them with:\n    %sapt-get install -y %s",
			strings.Join(missing, ", "), sudo(), strings.Join(missing, " "))
		fmt.Println(installHint)
		fmt.Println()
	}
	if e.nginx == "" {
		fmt.Fprintln(os.Stderr, "bench: the backends are nginx: nothing can run without it")
		return 1
	}

	defer e.stopBackends()
	if err := e.startBackends(ctx); err != nil {
		if ctx.Err() != nil {
			return 130
		}
		fmt.Fprintf(os.Stderr, "bench: starting the backends: %s\n", errorDetail(err))
		return 1
	}

	// Crash logs of an earlier run would be mistaken for this one's.
	old, _ := filepath.Glob(filepath.Join(resultsDir(), "*.crash.log"))
	for _, f := range old {
		os.Remove(f)
	}
	targets := e.targets()
	rep := newReport(cfg, e, targets, installHint)
	defer func() {
		for _, t := range targets {
			t.halt()
		}
	}()
	fmt.Print(rep.header())

	for _, key := range cfg.scenarios {
		sc := scenarioFor(key, cfg)
		if !sc.upload && e.wrk == "" {
			rep.skip(sc, "wrk is not installed")
			continue
		}
		if sc.hetero {
			if st, err := os.Stat(cfg.serverBin); err != nil || st.IsDir() {
				rep.skip(sc, cfg.serverBin+" not found (run `make build` first, or set HTTPSERVER_BIN)")
				continue
			}
			if err := e.startHetero(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				rep.skip(sc, "the httpserver backends did not start: "+err.Error())
				fmt.Println(errorDetail(err))
				continue
			}
		}
		err := runScenario(ctx, e, rep, sc, targets)
		e.stopHetero()
		if err != nil {
			break
		}
	}

	summary := rep.summary()
	fmt.Print("\n" + summary)
	if ctx.Err() != nil {
		fmt.Println("(interrupted: tests/bench/results/latest.txt left as it was)")
		return 130
	}
	out := filepath.Join(resultsDir(), "latest.txt")
	err = os.MkdirAll(filepath.Dir(out), 0o755)
	if err == nil {
		err = os.WriteFile(out, []byte(summary+"\nEvery run, in order:\n"+strings.Join(rep.runs, "\n")+"\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: writing %s: %v\n", out, err)
		return 1
	}
	fmt.Printf("written to %s\n", out)
	if rep.oursFailed() {
		return 1
	}
	return 0
}

// runScenario starts every target afresh, runs the rounds, and stops the targets again. It
// returns an error only when the benchmark was interrupted.
func runScenario(ctx context.Context, e *env, rep *report, sc scenario, targets []*target) error {
	fmt.Printf("\n== %s\n", sc.title)
	var active []*target
	for _, t := range targets {
		if t.name == "direct" {
			if !sc.baseline {
				continue
			}
			// The first of the backends this scenario runs against.
			t.port, t.proc = e.active[0].port, e.active[0].proc
		}
		if !t.runsIn(sc.key) {
			continue
		}
		if t.unavailable != "" {
			rep.note(sc, t, t.unavailable)
			continue
		}
		if err := e.launch(ctx, t); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.note(sc, t, "failed to start: "+err.Error())
			fmt.Printf("%s failed to start: %s\n", t.name, errorDetail(err))
			continue
		}
		active = append(active, t)
	}
	defer func() {
		for _, t := range active {
			t.halt()
		}
	}()
	for round := 1; round <= e.cfg.rounds; round++ {
		for _, t := range active {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if t.proc == nil || !t.proc.alive() {
				// It crashed in an earlier round: a fresh one gets its chance.
				t.halt()
				if err := e.launch(ctx, t); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fmt.Printf("%s failed to restart: %s\n", t.name, errorDetail(err))
					rep.add(sc, t, round, sample{failed: "could not restart: " + err.Error()})
					continue
				}
			}
			s := measure(ctx, e, sc, t)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.add(sc, t, round, s)
			sleepCtx(ctx, 500*time.Millisecond) // let the last run's connections close
		}
	}
	return nil
}

// measure runs the scenario once against t: a warm-up, then the measured run with the CPU,
// memory and backend counters read around it, and for a row of ours its /metrics scraped
// every second meanwhile and its access log, if it writes one, checked against the requests.
func measure(ctx context.Context, e *env, sc scenario, t *target) sample {
	cfg := e.cfg
	url := "http://127.0.0.1:" + strconv.Itoa(t.port) + sc.path
	if !sc.upload && cfg.warmup > 0 {
		if _, err := runWrk(ctx, e.wrk, sc.threads, sc.conns, cfg.warmup, url, sc.headers); err != nil && ctx.Err() == nil {
			return sample{failed: "warm-up: " + firstLine(err.Error())}
		}
		if !t.proc.alive() {
			return sample{failed: "during the warm-up: " + crashReport(t)}
		}
	}
	var logBefore logCounts
	var logErr error
	if t.accessLog != "" {
		logBefore, logErr = e.startLogCheck(ctx, t) // the warm-up's lines out of the way
	}
	before, errStatus := e.readCounters()
	offsets := e.uploadLogSizes()
	var scr *scraper
	if t.admin != "" {
		scr = startScraper("http://"+t.admin+"/metrics", scrapeEvery)
	}
	m := startMeter(t.proc.pid())
	noise := startNoiseMeter()

	s := sample{perConn: math.NaN(), delivered: math.NaN()}
	var runErr error
	if sc.upload {
		size := cfg.uploadMiB << 20
		r := runUploads(ctx, t.port, cfg.uploaders, size, cfg.duration)
		mib := float64(r.bytes) / (1 << 20)
		if r.elapsed > 0 {
			s.rate = mib / r.elapsed.Seconds()
		}
		s.mibps, s.units, s.uploads = s.rate, mib, r.uploads
		s.p50, s.p99, s.errors, s.errorText = r.p50, r.p99, r.errors, r.errorText
		if r.uploads == 0 {
			runErr = fmt.Errorf("no upload completed: %s", r.errorText)
		}
	} else {
		var r wrkResult
		r, runErr = runWrk(ctx, e.wrk, sc.threads, sc.conns, cfg.duration, url, sc.headers)
		s.rate, s.mibps = r.rps, r.bytesPerSec/(1<<20)
		s.p50, s.p99, s.units = r.p50, r.p99, float64(r.requests)
		s.errors, s.errorText = r.errors, r.errorText
		if sc.closing {
			// wrk goes by the response's Connection header only: when a server closes as the
			// request asked but its response did not say "Connection: close" (ours passes the
			// backend's "keep-alive" through unchanged), wrk counts a read error after a complete
			// response. One such close per completed request is expected here; only read errors
			// beyond that are errors.
			s.closes = min(r.readErrors, r.requests)
			s.errors -= s.closes
		}
	}
	s.cpu, s.rss, s.rssSampled = m.stop()
	s.otherLoad = noise.stop()
	if scr != nil {
		s.scraped = true
		s.scrapes, s.scrapeFail, s.scrapeErr = scr.stop()
	}

	if !t.proc.alive() {
		return sample{failed: crashReport(t)}
	}
	if runErr != nil {
		return sample{failed: firstLine(runErr.Error())}
	}
	// A proxy that answers errors fast must not look fast.
	if !sc.upload && float64(s.errors) > 0.01*s.units {
		return sample{failed: fmt.Sprintf("%d of %.0f requests failed (%s)", s.errors, s.units, s.errorText)}
	}
	after, err := e.readCounters()
	if err == nil && errStatus == nil {
		reqs := make([]float64, len(after))
		var total, conns float64
		connsKnown := true
		for i := range after {
			// Minus the request (and the connection) of the first reading.
			reqs[i] = float64(after[i].requests - before[i].requests - 1)
			total += reqs[i]
			if after[i].accepts < 0 {
				connsKnown = false
			}
			conns += float64(after[i].accepts - before[i].accepts - 1)
		}
		if total > 0 {
			s.shares = sharesOf(reqs)
			if connsKnown && conns > 0 {
				s.perConn = total / conns
			}
		}
	}
	if sc.upload {
		got := e.uploadBytesSince(offsets)
		bytes := make([]float64, len(got))
		var total float64
		for i, n := range got {
			bytes[i] = float64(n)
			total += bytes[i]
		}
		if total > 0 {
			s.shares = sharesOf(bytes)
			s.delivered = total / (s.units * (1 << 20))
		}
		s.perConn = math.NaN() // the backends' /upload → /sink requests make this meaningless
	}
	if t.accessLog != "" {
		if logErr != nil {
			s.logErr = "before the run: " + firstLine(logErr.Error())
		} else {
			e.finishLogCheck(ctx, t, logBefore, &s)
		}
	}
	return s
}

// sharesOf is each count's fraction of their sum (which must be positive).
func sharesOf(counts []float64) []float64 {
	var sum float64
	for _, c := range counts {
		sum += c
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = c / sum
	}
	return out
}

// crashReport prints the end of a crashed target's log, keeps a copy of the log in the results
// directory, and says in one line what happened.
func crashReport(t *target) string {
	tail := t.proc.logTail(20)
	fmt.Printf("%s exited (%v); its log ends:\n%s\n", t.name, t.proc.waitErr, indent(tail))
	text := fmt.Sprintf("crashed (%v)", t.proc.waitErr)
	if lines := strings.Split(tail, "\n"); lines[len(lines)-1] != "" {
		text += ": " + strings.TrimSpace(lines[len(lines)-1])
	}
	if b, err := os.ReadFile(t.proc.logPath); err == nil {
		keep := filepath.Join(resultsDir(), t.file()+".crash.log")
		if os.MkdirAll(filepath.Dir(keep), 0o755) == nil && os.WriteFile(keep, b, 0o644) == nil {
			text += " (log: " + keep + ")"
		}
	}
	return text
}

// resultsDir is tests/bench/results in the repository.
func resultsDir() string { return filepath.Join(repoRoot(), "tests", "bench", "results") }

// raiseFileLimit lifts the soft limit on open files to the hard one, for the harness and (since
// the harness sets it itself) for every process it starts.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// repoRoot is the nearest directory upwards from the working directory with a go.mod.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

func sudo() string {
	if os.Geteuid() == 0 {
		return ""
	}
	return "sudo "
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
