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
	conns     int           // wrk connections
	threads   int           // wrk threads
	rounds    int           // measured runs per proxy and scenario
	scenarios []string      // in the order they run
	proxies   []string      // in the order they take turns
	baseline  []string      // scenarios that also run straight against one backend ("direct")
	uploaders int           // concurrent upload connections
	uploadMiB int64         // body size of one upload
	lbBin     string        // our load balancer
	baseBin   string        // another build of ours, the "base" proxy (for before/after runs)
	lbFlags   []string      // extra flags for ours, after the defaults (so they override)
	keepTmp   bool          // keep the temporary directory
}

var (
	allScenarios = []string{"small", "close", "large", "upload"}
	allProxies   = []string{"ours", "haproxy", "nginx", "caddy"}
	// knownProxies adds "base" (a second build of ours, from $BASE_BIN), which "all" leaves out.
	knownProxies = append(slices.Clip(allProxies), "base")
)

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
	list := func(name string, all []string, def string) []string {
		s := envOr(name, def)
		switch s {
		case "all":
			return slices.DeleteFunc(slices.Clone(all), func(v string) bool { return v == "base" })
		case "none":
			return nil
		}
		var out []string
		for _, v := range strings.Split(s, ",") {
			v = strings.TrimSpace(strings.ToLower(v))
			switch {
			case v == "":
			case !slices.Contains(all, v):
				errs = append(errs, fmt.Errorf("%s: unknown %q (choose from %s)", name, v, strings.Join(all, ",")))
			case !slices.Contains(out, v):
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
	c.scenarios = list("SCENARIOS", allScenarios, "all")
	c.proxies = list("PROXIES", knownProxies, strings.Join(allProxies, ","))
	c.baseline = list("BASELINE", allScenarios, "small")
	if len(c.scenarios) == 0 || len(c.proxies) == 0 {
		errs = append(errs, errors.New("SCENARIOS and PROXIES need at least one entry each"))
	}
	c.uploaders = num("UPLOADERS", 4)
	c.uploadMiB = int64(num("UPLOAD_MB", 100))
	c.lbBin = envOr("LB_BIN", c.lbBin)
	if _, err := os.Stat(c.lbBin); err != nil && !filepath.IsAbs(c.lbBin) {
		// Relative to the repository root when it is not relative to the working directory.
		if alt := filepath.Join(repoRoot(), c.lbBin); alt != c.lbBin {
			if _, err := os.Stat(alt); err == nil {
				c.lbBin = alt
			}
		}
	}
	// The proxies run in the harness's temporary directory: a relative path would not resolve.
	if abs, err := filepath.Abs(c.lbBin); err == nil {
		c.lbBin = abs
	}
	c.baseBin = os.Getenv("BASE_BIN")
	if abs, err := filepath.Abs(c.baseBin); err == nil && c.baseBin != "" {
		c.baseBin = abs
	}
	if slices.Contains(c.proxies, "base") && c.baseBin == "" {
		errs = append(errs, errors.New("PROXIES has base: set BASE_BIN to the build to compare with"))
	}
	c.lbFlags = strings.Fields(os.Getenv("LB_FLAGS"))
	c.keepTmp = os.Getenv("KEEP_TMP") != "" && os.Getenv("KEEP_TMP") != "0"
	return c, errors.Join(errs...)
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
