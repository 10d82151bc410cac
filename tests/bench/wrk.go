package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what the harness takes from wrk's --latency report.
type wrkResult struct {
	requests    int64
	rps         float64
	bytesPerSec float64
	p50, p99    time.Duration
	errors      int64 // socket errors (connect, read, write, timeout) plus non-2xx/3xx responses
	readErrors  int64 // the read socket errors among them
	errorText   string
}

// runWrk runs wrk against url for d and parses its report.
func runWrk(ctx context.Context, wrkPath string, threads, conns int, d time.Duration, url string, headers []string) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", wrkSeconds(d),
		"--timeout", "5s", "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, wrkPath, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return parseWrk(string(out))
}

// parseWrk reads the figures out of wrk's report, for example
//
//	  Latency Distribution
//	     50%  476.00us
//	     99%    1.53ms
//	  123456 requests in 3.00s, 18.12MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 5
//	Requests/sec:  41150.03
//	Transfer/sec:      6.04MB
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveP50, haveP99 bool
	var errs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "50%":
			r.p50, haveP50 = parseWrkTime(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99, haveP99 = parseWrkTime(f[1])
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for _, part := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
				kv := strings.Fields(part)
				if len(kv) == 2 {
					n, _ := strconv.ParseInt(kv[1], 10, 64)
					r.errors += n
					if kv[0] == "read" {
						r.readErrors = n
					}
				}
			}
			errs = append(errs, line)
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			r.errors += n
			errs = append(errs, line)
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			r.rps, haveRPS = v, err == nil
		case len(f) == 2 && f[0] == "Transfer/sec:":
			r.bytesPerSec = parseWrkBytes(f[1])
		}
	}
	if !haveRPS || !haveP50 || !haveP99 {
		return r, fmt.Errorf("wrk: unexpected output: %s", strings.TrimSpace(out))
	}
	r.errorText = strings.Join(errs, "; ")
	return r, nil
}

// parseWrkTime parses wrk's durations: 476.00us, 1.53ms, 2.01s, 1.50m.
func parseWrkTime(s string) (time.Duration, bool) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, false
			}
			return time.Duration(v * float64(u.d)), true
		}
	}
	return 0, false
}

// parseWrkBytes parses wrk's byte counts, which use powers of 1024: 6.04MB, 1.10GB, 512.00B.
func parseWrkBytes(s string) float64 {
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = num, u.m
			break
		}
	}
	v, _ := strconv.ParseFloat(s, 64)
	return v * mult
}
