package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report collects the samples and prints the progress lines and the tables.
type report struct {
	cfg         config
	e           *env
	targets     []*target
	installHint string
	started     time.Time
	loadStart   string
	nameWidth   int // of the longest row name, for the progress lines

	scenarios []scenario                     // in the order they ran (or were skipped)
	skipped   map[string]string              // scenario key → why it did not run
	samples   map[string]map[string][]sample // scenario key → target name → rounds
	notes     map[string]map[string][]string // scenario key → target name → remarks
	runs      []string                       // one line per run, in order
}

func newReport(cfg config, e *env, targets []*target, installHint string) *report {
	r := &report{cfg: cfg, e: e, targets: targets, installHint: installHint, started: time.Now(),
		loadStart: loadAvg(), nameWidth: 7, skipped: map[string]string{},
		samples: map[string]map[string][]sample{}, notes: map[string]map[string][]string{}}
	for _, t := range targets {
		r.nameWidth = max(r.nameWidth, len(t.name))
	}
	return r
}

func (r *report) scenarioSeen(sc scenario) {
	for _, s := range r.scenarios {
		if s.key == sc.key {
			return
		}
	}
	r.scenarios = append(r.scenarios, sc)
	r.samples[sc.key] = map[string][]sample{}
	r.notes[sc.key] = map[string][]string{}
}

func (r *report) skip(sc scenario, why string) {
	r.scenarioSeen(sc)
	r.skipped[sc.key] = why
	fmt.Printf("\n== %s\nskipped: %s\n", sc.title, why)
}

func (r *report) note(sc scenario, t *target, text string) {
	r.scenarioSeen(sc)
	r.notes[sc.key][t.name] = append(r.notes[sc.key][t.name], text)
}

// add records one run and prints its progress line.
func (r *report) add(sc scenario, t *target, round int, s sample) {
	r.scenarioSeen(sc)
	r.samples[sc.key][t.name] = append(r.samples[sc.key][t.name], s)
	var line string
	prefix := fmt.Sprintf("[%s %d/%d] %-*s", sc.key, round, r.cfg.rounds, r.nameWidth, t.name)
	switch {
	case s.failed != "":
		line = prefix + " FAILED: " + s.failed
	case sc.upload:
		line = fmt.Sprintf("%s %8.0f MiB/s  %3d uploads  p50 %-7s p99 %-7s cpu %5.2fs  rss %-9s split %-6s delivered %s  errors %d",
			prefix, s.rate, s.uploads, fmtDur(s.p50), fmtDur(s.p99), s.cpu, fmtMiB(s.rss), fmtSplit(s.shares), fmtPct(s.delivered), s.errors)
	default:
		line = fmt.Sprintf("%s %8s req/s  p50 %-7s p99 %-7s cpu %5.2fs  rss %-9s split %-6s backend req/conn %-6s errors %d",
			prefix, fmtInt(s.rate), fmtDur(s.p50), fmtDur(s.p99), s.cpu, fmtMiB(s.rss), fmtSplit(s.shares), fmtPerConn(s.perConn), s.errors)
		if sc.key == "large" {
			line += fmt.Sprintf("  (%.0f MiB/s)", s.mibps)
		}
	}
	if s.failed == "" && s.otherLoad >= 0.05 {
		line += fmt.Sprintf("  other processes %.2f CPU", s.otherLoad)
	}
	if s.failed == "" && s.errorText != "" && (s.errors > 0 || s.closes > 0) {
		line += "  [wrk: " + s.errorText + "]"
	}
	if s.failed == "" && s.scraped {
		line += fmt.Sprintf("  scrapes %d ok %d failed", s.scrapes, s.scrapeFail)
	}
	if s.failed == "" && (s.logChecked || s.logErr != "") {
		line += "  [access log: " + logLine(s) + "]"
	}
	fmt.Println(line)
	r.runs = append(r.runs, line)
}

// header describes the machine, the settings and the versions.
func (r *report) header() string {
	c := r.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "Load balancer benchmark, %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "machine: %d CPUs, Linux %s, load average at start %s\n", runtime.NumCPU(), kernel(), r.loadStart)
	b.WriteString(clientLine(c))
	fmt.Fprintf(&b, "rounds: %d per proxy, proxies taking turns; figures are medians across rounds\n", c.rounds)
	fmt.Fprintf(&b, "backends: 2 × %s, one worker each\n", toolVersion(r.e.nginx))
	if slices.Contains(c.scenarios, "hetero") {
		var ds []string
		for _, d := range c.heteroDelays {
			ds = append(ds, d.String())
		}
		fmt.Fprintf(&b, "hetero backends: %d × %s PORT %s --delay D, D = %s;\n"+
			"  HAProxy and Caddy check /healthcheck every 3 s there (nginx has no active checks)\n",
			len(ds), c.serverBin, strings.Join(heteroBackendsFlags, " "), strings.Join(ds, ", "))
	}
	for _, t := range r.targets {
		switch {
		case t.name == "direct":
		case t.unavailable != "":
			fmt.Fprintf(&b, "%s: %s\n", t.name, t.unavailable)
		case t.name == "base":
			fmt.Fprintf(&b, "base: %s, with the same flags as ours but no --admin-addr: no metrics (%s)\n", r.e.cfg.baseBin, t.version)
		case t.isOurs():
			where := ""
			if t.name != "ours" {
				where = " only in " + strings.Join(t.scenarios, ", ") + ";"
			}
			fmt.Fprintf(&b, "%s:%s %s %s --admin-addr 127.0.0.1:PORT2 PORT BACKENDS (%s)\n", t.name, where, t.bin, strings.Join(r.e.lbFlags(t), " "), t.version)
			if t.accessLog != "" {
				fmt.Fprintf(&b, "  (%s: %s; emptied before each run, its lines counted after)\n", r.e.logDir, fsKind(r.e.logDir))
			}
		case t.name == "haproxy":
			fmt.Fprintf(&b, "haproxy: HAProxy %s, nbthread 2, balance leastconn, http-reuse always\n", t.version)
		case t.name == "nginx":
			fmt.Fprintf(&b, "nginx: %s, worker_processes 2, least_conn, keepalive 64\n", t.version)
		case t.name == "caddy":
			fmt.Fprintf(&b, "caddy: %s, GOMAXPROCS=2, lb_policy least_conn\n", t.version)
		}
	}
	if slices.ContainsFunc(r.targets, func(t *target) bool { return t.isOurs() && t.unavailable == "" }) {
		fmt.Fprintf(&b, "rows of ours: metrics on (admin listener on PORT2), /metrics scraped every %s during each run\n", scrapeEvery)
	}
	return b.String()
}

// clientLine is the header's line about the client: wrk's arguments, those of the scenarios
// with connections of their own among those that run, and the uploads.
func clientLine(c config) string {
	var own string
	for _, key := range c.scenarios {
		if _, ok := fixedConns[key]; ok {
			conns, threads := wrkConns(key, c)
			own += fmt.Sprintf(", in %s -t%d -c%d", key, threads, conns)
		}
	}
	return fmt.Sprintf("client: wrk -t%d -c%d -d%s --latency%s (warm-up %s before each run); uploads: %d connections × %d MiB PUTs for %s\n",
		c.threads, c.conns, wrkSeconds(c.duration), own, c.warmup, c.uploaders, c.uploadMiB, c.duration)
}

// summary is the header, one table per scenario, and the remarks.
func (r *report) summary() string {
	var b strings.Builder
	b.WriteString(r.header())
	for _, sc := range r.scenarios {
		fmt.Fprintf(&b, "\n%s\n", sc.title)
		if why, ok := r.skipped[sc.key]; ok {
			fmt.Fprintf(&b, "  skipped: %s\n", why)
			continue
		}
		b.WriteString(r.table(sc))
		for _, t := range r.targets {
			for _, n := range r.notes[sc.key][t.name] {
				fmt.Fprintf(&b, "  %s: %s\n", t.name, firstLine(n))
			}
			var closes, requests int64
			for i, s := range r.samples[sc.key][t.name] {
				if s.failed != "" {
					fmt.Fprintf(&b, "  %s, round %d: %s\n", t.name, i+1, s.failed)
				}
				closes += s.closes
				requests += int64(s.units)
			}
			if closes > 0 {
				fmt.Fprintf(&b, "  %s: %d of %d responses did not say \"Connection: close\" although the connection then closed, as\n"+
					"    the request asked (wrk counts each as a read error; not counted as errors here)\n", t.name, closes, requests)
			}
			for _, line := range observed(r.samples[sc.key][t.name]) {
				fmt.Fprintf(&b, "  %s: %s\n", t.name, line)
			}
		}
	}
	b.WriteString("\n")
	if len(r.scenarios) > 0 {
		b.WriteString(legend)
	}
	if avg, peak := r.noise(); peak >= 0.2 {
		fmt.Fprintf(&b, "NOISY: processes outside the benchmark kept %.2f CPUs busy on average during the runs (%.2f at\n"+
			"worst) of the machine's %d: the figures are unreliable; run again on a quiet machine.\n", avg, peak, runtime.NumCPU())
	}
	if r.rssSampled() {
		b.WriteString("(the kernel refused to reset VmHWM: peak RSS is the peak of the summed VmRSS, sampled every 50 ms)\n")
	}
	if r.installHint != "" {
		b.WriteString(r.installHint + "\n")
	}
	fmt.Fprintf(&b, "load average at the end: %s\n", loadAvg())
	return b.String()
}

const legend = `Medians across rounds. ×HAProxy: ratio to HAProxy's median; ×ours (where variants of ours or
base ran next to ours): ratio to ours's median throughput. spread: (max-min)/median of the
rounds' throughput. CPU s: utime+stime of the proxy's processes during one run; CPU µs/req (/MiB):
per unit of work. peak RSS: VmHWM summed over the proxy's processes. split: each backend's share of
the requests, in percent, in the order the backends are listed (uploads: of the bytes; hetero: the
backends in the order of their delays). backend req/conn: requests per connection the backends
accepted (upstream keep-alive at work when far above 1; "-" where the backends do not count
connections). delivered: upload bytes the backends read / bytes sent. direct: the client straight
against one backend (in hetero, the first).
`

// observed is what the successful rounds of a row of ours say about its /metrics scrapes and
// its access log: a line for the scrapes, one per round for the access log.
func observed(ss []sample) []string {
	var lines []string
	var ok, failed, rounds int
	var lastErr string
	for i, s := range ss {
		if s.failed != "" {
			continue
		}
		if s.scraped {
			rounds++
			ok += s.scrapes
			failed += s.scrapeFail
			if s.scrapeErr != "" {
				lastErr = s.scrapeErr
			}
		}
		if s.logChecked || s.logErr != "" {
			lines = append(lines, fmt.Sprintf("access log, round %d: %s", i+1, logLine(s)))
		}
	}
	if rounds > 0 {
		runs := "runs"
		if rounds == 1 {
			runs = "run"
		}
		line := fmt.Sprintf("scrapes: %d ok, %d failed (/metrics every %s during %d %s)", ok, failed, scrapeEvery, rounds, runs)
		if lastErr != "" {
			line += "; last error: " + lastErr
		}
		lines = append([]string{line}, lines...)
	}
	return lines
}

// agg is the medians of one target's successful rounds.
type agg struct {
	n                                        int
	rate, mibps, cpu, cpuPer, perConn, deliv float64
	rss                                      float64
	shares                                   []float64 // each backend's median share
	p50, p99                                 time.Duration
	errors, uploads                          int64
	spread                                   float64
}

func aggregate(ss []sample) (agg, bool) {
	var ok []sample
	for _, s := range ss {
		if s.failed == "" {
			ok = append(ok, s)
		}
	}
	if len(ok) == 0 {
		return agg{}, false
	}
	pick := func(f func(sample) float64) float64 {
		var v []float64
		for _, s := range ok {
			if x := f(s); !math.IsNaN(x) {
				v = append(v, x)
			}
		}
		return median(v)
	}
	a := agg{n: len(ok)}
	a.rate = pick(func(s sample) float64 { return s.rate })
	a.mibps = pick(func(s sample) float64 { return s.mibps })
	a.cpu = pick(func(s sample) float64 { return s.cpu })
	a.cpuPer = pick(func(s sample) float64 {
		if s.units <= 0 {
			return math.NaN()
		}
		return s.cpu / s.units * 1e6
	})
	// Each backend's share from the rounds that know the shares (all of one length: the
	// scenario's backends).
	var nShares int
	for _, s := range ok {
		nShares = max(nShares, len(s.shares))
	}
	for i := range nShares {
		a.shares = append(a.shares, pick(func(s sample) float64 {
			if len(s.shares) != nShares {
				return math.NaN()
			}
			return s.shares[i]
		}))
	}
	a.perConn = pick(func(s sample) float64 { return s.perConn })
	a.deliv = pick(func(s sample) float64 { return s.delivered })
	a.rss = pick(func(s sample) float64 { return float64(s.rss) })
	a.p50 = time.Duration(pick(func(s sample) float64 { return float64(s.p50) }))
	a.p99 = time.Duration(pick(func(s sample) float64 { return float64(s.p99) }))
	a.uploads = int64(pick(func(s sample) float64 { return float64(s.uploads) }))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ok {
		a.errors += s.errors
		lo, hi = min(lo, s.rate), max(hi, s.rate)
	}
	if a.rate > 0 {
		a.spread = (hi - lo) / a.rate
	}
	return a, true
}

func (r *report) table(sc scenario) string {
	var ha agg
	haOK := false
	if ss, ok := r.samples[sc.key]["haproxy"]; ok {
		ha, haOK = aggregate(ss)
	}
	ratioTo := func(v, ref float64, refOK bool) string {
		if !refOK || ref <= 0 || math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.2f×", v/ref)
	}
	ratio := func(v, ref float64) string { return ratioTo(v, ref, haOK) }
	// ×ours, the ratio to ours, where a variant of ours or base ran next to ours: what a flag
	// of the variant's costs (ours/access-log: the access log), or what changed since base.
	var ours agg
	oursOK, withOurs := false, false
	if ss, ok := r.samples[sc.key]["ours"]; ok {
		ours, oursOK = aggregate(ss)
		for name := range r.samples[sc.key] {
			withOurs = withOurs || name == "base" || strings.HasPrefix(name, "ours/")
		}
	}
	// The ratios of the throughput, right after it.
	ratioHead := []string{"×HAProxy"}
	if withOurs {
		ratioHead = append(ratioHead, "×ours")
	}
	rateRatios := func(a agg) []string {
		cells := []string{ratio(a.rate, ha.rate)}
		if withOurs {
			cells = append(cells, ratioTo(a.rate, ours.rate, oursOK))
		}
		return cells
	}
	var head []string
	if sc.upload {
		head = append([]string{"proxy", "MiB/s"}, ratioHead...)
		head = append(head, "spread", "uploads", "p50/upload", "p99/upload", "CPU s", "CPU µs/MiB", "peak RSS", "errors", "split", "delivered")
	} else {
		head = []string{"proxy", "req/s"}
		if sc.key == "large" {
			head = append(head, "MiB/s")
		}
		head = append(head, ratioHead...)
		head = append(head, "spread", "p50", "p99", "p99 ×HAProxy", "CPU s", "CPU µs/req", "peak RSS", "errors", "split", "backend req/conn")
	}
	rows := [][]string{head}
	for _, t := range r.targets {
		ss, ran := r.samples[sc.key][t.name]
		if !ran {
			continue
		}
		a, ok := aggregate(ss)
		name := t.name
		if len(ss) > 0 && a.n < len(ss) && ok {
			name += fmt.Sprintf(" (%d/%d)", a.n, len(ss))
		}
		if !ok {
			rows = append(rows, []string{name, "failed"})
			continue
		}
		if sc.upload {
			row := append([]string{name, fmt.Sprintf("%.0f", a.rate)}, rateRatios(a)...)
			rows = append(rows, append(row, fmtPct(a.spread),
				strconv.FormatInt(a.uploads, 10), fmtDur(a.p50), fmtDur(a.p99), fmt.Sprintf("%.2f", a.cpu),
				fmtFloat(a.cpuPer), fmtMiB(int64(a.rss)), strconv.FormatInt(a.errors, 10), fmtSplit(a.shares), fmtPct(a.deliv)))
			continue
		}
		row := []string{name, fmtInt(a.rate)}
		if sc.key == "large" {
			row = append(row, fmt.Sprintf("%.0f", a.mibps))
		}
		row = append(row, rateRatios(a)...)
		row = append(row, fmtPct(a.spread), fmtDur(a.p50), fmtDur(a.p99),
			ratio(float64(a.p99), float64(ha.p99)), fmt.Sprintf("%.2f", a.cpu), fmtFloat(a.cpuPer),
			fmtMiB(int64(a.rss)), strconv.FormatInt(a.errors, 10), fmtSplit(a.shares), fmtPerConn(a.perConn))
		rows = append(rows, row)
	}
	for _, t := range r.targets {
		if _, ran := r.samples[sc.key][t.name]; !ran && len(r.notes[sc.key][t.name]) > 0 {
			rows = append(rows, []string{t.name, "-"})
		}
	}
	return formatTable(rows)
}

// noise is the average and the worst CPU load of other processes over the successful runs.
func (r *report) noise() (avg, peak float64) {
	var n int
	for _, byTarget := range r.samples {
		for _, ss := range byTarget {
			for _, s := range ss {
				if s.failed == "" {
					avg += s.otherLoad
					peak = max(peak, s.otherLoad)
					n++
				}
			}
		}
	}
	if n > 0 {
		avg /= float64(n)
	}
	return avg, peak
}

func (r *report) rssSampled() bool {
	for _, byTarget := range r.samples {
		for _, ss := range byTarget {
			for _, s := range ss {
				if s.failed == "" && s.rssSampled {
					return true
				}
			}
		}
	}
	return false
}

// oursFailed says whether a row of ours was asked for but has no figures in a scenario that
// ran and that the row belongs to.
func (r *report) oursFailed() bool {
	for _, sc := range r.scenarios {
		if _, skipped := r.skipped[sc.key]; skipped {
			continue
		}
		for _, t := range r.targets {
			if !t.isOurs() || !t.runsIn(sc.key) {
				continue
			}
			if _, ok := aggregate(r.samples[sc.key][t.name]); !ok {
				return true
			}
		}
	}
	return false
}

// formatTable lays rows out in columns: the first left-aligned, the others right-aligned.
func formatTable(rows [][]string) string {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		b.WriteString("  ")
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			case len(row) == 2 && (cell == "failed" || cell == "-"):
				b.WriteString("  " + cell) // a row without figures: no alignment
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func fmtInt(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func fmtFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtMiB(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// fmtSplit shows shares as whole percentages that add up to 100, "50/50" or "45/46/9"; "-" when
// they are unknown. The points left over after rounding every share down go to the largest
// remainders (the first of equal ones).
func fmtSplit(shares []float64) string {
	var sum float64
	for _, f := range shares {
		if math.IsNaN(f) || f < 0 {
			return "-"
		}
		sum += f
	}
	if len(shares) == 0 || sum <= 0 {
		return "-"
	}
	pct := make([]int, len(shares))
	rem := make([]float64, len(shares))
	left := 100
	for i, f := range shares {
		exact := f / sum * 100
		pct[i] = int(exact)
		rem[i] = exact - float64(pct[i])
		left -= pct[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		pct[best]++
		rem[best] = -1
	}
	parts := make([]string, len(pct))
	for i, p := range pct {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, "/")
}

func fmtPct(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

func fmtPerConn(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "-"
	case f >= 10:
		return fmtInt(f)
	default:
		return fmt.Sprintf("%.1f", f)
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
