package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the benchmark's settings, read from the environment (see doc.go).
type config struct {
	duration  time.Duration // each measured run
	warmup    time.Duration // an unmeasured wrk run before each measured one; 0 for none
	conns     int           // wrk connections (but see fixedConns)
	threads   int           // wrk threads (at most the scenario's connections)
	rounds    int           // measured runs per proxy and scenario
	scenarios []string      // in the order they run
	proxies   []string      // in the order they take turns
	baseline  []string      // scenarios that also run straight against one backend ("direct")
	uploaders int           // concurrent upload connections
	uploadMiB int64         // body size of one upload
	lbBin     string        // our load balancer
	baseBin   string        // another build of ours, the "base" proxy (for before/after runs)
	lbFlags   []string      // extra flags for ours, after the defaults (so they override)
	serverBin string        // our httpserver: the hetero scenario's backends
	// heteroDelays is the hetero scenario's backends' --delay, one per backend, in order.
	heteroDelays []time.Duration
	keepTmp      bool // keep the temporary directory
}

var (
	allScenarios = []string{"small", "small8", "small256", "close", "large", "upload", "hetero"}
	allProxies   = []string{"ours", "haproxy", "nginx", "caddy"}
	// knownProxies adds "base" (a second build of ours, from $BASE_BIN), which "all" leaves
	// out, and the rows of ours with flags of their own (variants).
	knownProxies = append(append(slices.Clip(allProxies), "base"), variantNames()...)
	// fixedConns are the scenarios that run small at a fixed number of client connections
	// instead of $CONNS (wrk's -c), to show how the figures move with few and with many clients.
	fixedConns = map[string]int{"small8": 8, "small256": 256}
)

// variant is a row of ours with flags of its own, run only in some scenarios, next to the row
// of ours with the usual flags (or instead of it, in hetero). "ours" in PROXIES brings every
// variant along; a variant's own name brings only that one.
type variant struct {
	name      string
	flags     []string // after the usual flags and $LB_FLAGS, so they win
	scenarios []string // where the row runs
	// accessLog is the format (--access-log-format) of the access log the row writes, to a
	// file the harness creates, counts and truncates (see doc.go); "" for none.
	accessLog string
}

// variants are the rows of ours beyond the usual one.
var variants = []variant{
	// The classic -R 5: a health-check round after every 5 requests, so that the cost of
	// request-triggered rounds shows next to the usual row, which runs them on the tick only.
	{name: "ours/default-R", flags: []string{"-R", "5"}, scenarios: []string{"small"}},
	// An access log line per request, in JSON, next to the usual row: the cost of the log.
	{name: "ours/access-log", accessLog: "json", scenarios: []string{"small"}},
	// hetero compares balancing policies in front of one slow backend.
	{name: "ours/peak-ewma", flags: []string{"--policy", "peak-ewma"}, scenarios: []string{"hetero"}},
	{name: "ours/least-request", flags: []string{"--policy", "least-request"}, scenarios: []string{"hetero"}},
	{name: "ours/round-robin", flags: []string{"--policy", "round-robin"}, scenarios: []string{"hetero"}},
}

// wantsAccessLog reports whether a row that writes an access log runs in a scenario that runs.
func (c config) wantsAccessLog() bool {
	return slices.ContainsFunc(c.proxies, func(name string) bool {
		v := variantNamed(name)
		return v != nil && v.accessLog != "" && slices.ContainsFunc(c.scenarios, func(s string) bool {
			return slices.Contains(v.scenarios, s)
		})
	})
}

func variantNames() []string {
	var names []string
	for _, v := range variants {
		names = append(names, v.name)
	}
	return names
}

// variantNamed is the variant called name, or nil.
func variantNamed(name string) *variant {
	for i := range variants {
		if variants[i].name == name {
			return &variants[i]
		}
	}
	return nil
}

// expandOurs puts the variants after each "ours".
func expandOurs(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n)
		if n == "ours" {
			out = append(out, variantNames()...)
		}
	}
	return out
}

func loadConfig() (config, error) {
	c := config{lbBin: "bin/loadbalancer"}
	var errs []error
	dur := func(name, def string, min time.Duration) time.Duration {
		s := envOr(name, def)
		d, err := time.ParseDuration(s)
		if err != nil || d < min {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration of at least %v, like %s", name, s, min, def))
		}
		return d
	}
	num := func(name string, def int) int {
		s := envOr(name, strconv.Itoa(def))
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive whole number", name, s))
		}
		return n
	}
	// list reads a comma-separated list of names from all (in any case), "all" (every name but
	// base) or "none"; "-name" leaves a name out (PROXIES=all,-caddy). expand, if not nil,
	// rewrites the names before those left out are removed.
	list := func(name string, all []string, def string, expand func([]string) []string) []string {
		var in, drop []string
		for _, v := range strings.Split(envOr(name, def), ",") {
			v = strings.TrimSpace(v)
			minus := strings.HasPrefix(v, "-")
			v = strings.TrimSpace(strings.TrimPrefix(v, "-"))
			i := slices.IndexFunc(all, func(a string) bool { return strings.EqualFold(a, v) })
			switch {
			case v == "" || strings.EqualFold(v, "none"):
			case strings.EqualFold(v, "all") && !minus:
				in = append(in, slices.DeleteFunc(slices.Clone(all), func(a string) bool { return a == "base" })...)
			case i < 0:
				errs = append(errs, fmt.Errorf("%s: unknown %q (choose from %s)", name, v, strings.Join(all, ",")))
			case minus:
				drop = append(drop, all[i])
			default:
				in = append(in, all[i])
			}
		}
		if expand != nil {
			in = expand(in)
		}
		var out []string
		for _, v := range in {
			if !slices.Contains(out, v) && !slices.Contains(drop, v) {
				out = append(out, v)
			}
		}
		return out
	}
	// wrk takes whole seconds; the uploader uses the same rounded duration.
	c.duration = dur("DURATION", "10s", time.Second).Round(time.Second)
	c.warmup = dur("WARMUP", "1s", 0)
	if c.warmup > 0 && c.warmup < time.Second {
		errs = append(errs, errors.New("WARMUP: wrk runs whole seconds; use 0 or at least 1s"))
	}
	c.conns = num("CONNS", 64)
	c.threads = num("THREADS", 2)
	if c.threads > c.conns {
		errs = append(errs, fmt.Errorf("THREADS=%d is more than CONNS=%d (wrk needs a connection per thread)", c.threads, c.conns))
	}
	c.rounds = num("ROUNDS", 3)
	c.scenarios = list("SCENARIOS", allScenarios, "all", nil)
	c.proxies = list("PROXIES", knownProxies, strings.Join(allProxies, ","), expandOurs)
	c.baseline = list("BASELINE", allScenarios, "small", nil)
	if len(c.scenarios) == 0 || len(c.proxies) == 0 {
		errs = append(errs, errors.New("SCENARIOS and PROXIES need at least one entry each"))
	}
	c.uploaders = num("UPLOADERS", 4)
	c.uploadMiB = int64(num("UPLOAD_MB", 100))
	c.lbBin = binPath(envOr("LB_BIN", c.lbBin))
	c.serverBin = binPath(envOr("HTTPSERVER_BIN", "bin/httpserver"))
	for _, s := range strings.Split(envOr("HETERO_DELAYS", "10ms,10ms,100ms"), ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("HETERO_DELAYS: %q is not a duration like 10ms (0 for none)", s))
		}
		c.heteroDelays = append(c.heteroDelays, d)
	}
	if len(c.heteroDelays) < 2 {
		errs = append(errs, errors.New("HETERO_DELAYS: want a delay for each of at least two backends, like 10ms,10ms,100ms"))
	}
	if c.baseBin = strings.TrimSpace(os.Getenv("BASE_BIN")); c.baseBin != "" {
		c.baseBin = binPath(c.baseBin)
	}
	if slices.Contains(c.proxies, "base") && c.baseBin == "" {
		errs = append(errs, errors.New("PROXIES has base: set BASE_BIN to the build to compare with"))
	}
	c.lbFlags = strings.Fields(os.Getenv("LB_FLAGS"))
	c.keepTmp = os.Getenv("KEEP_TMP") != "" && os.Getenv("KEEP_TMP") != "0"
	return c, errors.Join(errs...)
}

// binPath makes a program's path absolute: relative to the repository root when it is not
// relative to the working directory. The proxies and backends run in the harness's temporary
// directory, where a relative path would not resolve.
func binPath(bin string) string {
	if _, err := os.Stat(bin); err != nil && !filepath.IsAbs(bin) {
		if alt := filepath.Join(repoRoot(), bin); alt != bin {
			if _, err := os.Stat(alt); err == nil {
				bin = alt
			}
		}
	}
	if abs, err := filepath.Abs(bin); err == nil {
		return abs
	}
	return bin
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// wrkSeconds is d as wrk's -d argument takes it.
func wrkSeconds(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
}
