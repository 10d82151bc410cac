package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/actors/health"
)

// backendFlags are the raw values of the flags about backends in the wild (health checks,
// policies, ejection) that need parsing.
type backendFlags struct {
	checkKind, path, method, status, body, host string
	policy, hashKey                             string
	noEject                                     bool
}

// parseBackendFlags fills in o's health check, policy and ejection settings, resolving the
// defaults that depend on the check kind: the classic check keeps the classic contract (one probe
// decides, a failed connect or a response timeout takes the backend down, R notices start
// rounds, no ejection for 5xx answers unless asked for); the others default to rise 2, fall 3,
// rounds on the interval only, and ejection on.
func (o *options) parseBackendFlags(fs *pflag.FlagSet, f backendFlags) []error {
	var errs []error
	f.method = strings.ToUpper(f.method)
	kind, kindErr := health.ParseKind(f.checkKind)
	if kindErr != nil {
		errs = append(errs, flagErr("health-check", ": want classic, http, tcp or none, got %q", f.checkKind))
	}
	o.check = health.Check{Kind: kind}
	status, err := health.ParseStatusSet(f.status)
	if err != nil {
		errs = append(errs, flagErr("health-status", ": %v", err))
	}
	if kind == health.KindHTTP { // the other checks have no path, status or body to set
		o.check.Path, o.check.Method, o.check.Body, o.check.Host, o.check.Status = f.path, f.method, f.body, f.host, status
	}
	if !strings.HasPrefix(f.path, "/") {
		errs = append(errs, flagErr("health-path", " must start with '/', got %q", f.path))
	} else if err := checkToken(f.path); err != nil {
		errs = append(errs, flagErr("health-path", " %v", err))
	}
	if f.method != "GET" && f.method != "HEAD" {
		errs = append(errs, flagErr("health-method", ": want GET or HEAD, got %q", f.method))
	}
	if kind == health.KindHTTP && f.method == "HEAD" && f.body != "" {
		errs = append(errs, flagErr("health-body", ": a check body needs method GET (a response to HEAD has no body)"))
	}
	if len(f.body) > health.MaxCheckBody {
		errs = append(errs, flagErr("health-body", " is %d bytes, longer than the %d bytes of body read", len(f.body), health.MaxCheckBody))
	}
	if err := checkToken(f.host); err != nil {
		errs = append(errs, flagErr("health-host", " %v", err))
	}
	classic := kind == health.KindClassic
	for _, t := range []struct {
		name string
		v    *int
		def  int // for the non-classic checks
	}{{"health-rise", &o.rise, 2}, {"health-fall", &o.fall, 3}} {
		switch {
		case fs.Changed(t.name) && *t.v < 1:
			errs = append(errs, flagErr(t.name, " must be at least 1, got %d", *t.v))
		case !fs.Changed(t.name) && classic:
			*t.v = 1
		case !fs.Changed(t.name):
			*t.v = t.def
		}
	}
	if o.healthMinGap < 0 {
		errs = append(errs, flagErr("health-min-gap", " must not be negative, got %v", o.healthMinGap))
	} else if o.healthMinGap == 0 {
		o.healthMinGap = -1 // the monitor's "no gap"
	}
	o.rExplicit = fs.Changed("requests")

	o.policy.Name = f.policy
	if !slices.Contains(dispatcher.PolicyNames, f.policy) {
		errs = append(errs, flagErr("policy", ": want one of %s, got %q", strings.Join(dispatcher.PolicyNames, ", "), f.policy))
	}
	if o.hash, err = forwarder.ParseHashKey(f.hashKey); err != nil {
		errs = append(errs, flagErr("hash-key", ": want client, header:NAME or cookie:NAME, got %q", f.hashKey))
	}
	if f.policy != "hash" {
		o.hash = forwarder.HashKey{} // only the hash policy reads a key
	}
	if !(o.policy.HashBalance >= 1) || math.IsInf(o.policy.HashBalance, 1) { // NaN fails >= too
		errs = append(errs, flagErr("hash-balance", " must be at least 1, got %v", o.policy.HashBalance))
	}
	if o.slowStart < 0 {
		errs = append(errs, flagErr("slow-start", " must not be negative, got %v", o.slowStart))
	}
	if o.maxPerBackend < 0 {
		errs = append(errs, flagErr("max-per-backend", " must not be negative, got %d", o.maxPerBackend))
	}

	for _, t := range []struct {
		name string
		v    *int
	}{{"eject-5xx", &o.eject.Consecutive5xx}, {"eject-connect-failures", &o.eject.ConnectFailures}, {"eject-timeouts", &o.eject.Timeouts}} {
		switch {
		case *t.v < 1:
			errs = append(errs, &flagError{flag: t.name,
				msg:     fmt.Sprintf(" must be at least 1, got %d (--no-eject turns ejection off)", *t.v),
				fileMsg: fmt.Sprintf(" must be at least 1, got %d (no_eject: true turns ejection off)", *t.v)})
		case f.noEject || (classic && !fs.Changed(t.name)):
			*t.v = 0 // off
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"eject-time", o.eject.BaseTime}, {"eject-max-time", o.eject.MaxTime}} {
		if d.v <= 0 {
			errs = append(errs, flagErr(d.name, " must be positive, got %v", d.v))
		}
	}
	if o.eject.MaxPercent < 0 || o.eject.MaxPercent > 100 {
		errs = append(errs, flagErr("eject-max-percent", " must be from 0 to 100, got %d", o.eject.MaxPercent))
	} else if o.eject.MaxPercent == 0 {
		o.eject.MaxPercent = -1 // the dispatcher's "none"
	}
	if kindErr == nil { // with the kind known: the backends' own http checks (config file)
		errs = append(errs, o.checkOverrides()...)
	}
	if len(errs) == 0 && len(o.backends) > 0 {
		// Whatever the checks above missed: the actors' own validation, as a backstop.
		hc := health.Config{Backends: o.backends, Check: o.check, Rise: o.rise, Fall: o.fall}
		if err := hc.Validate(); err != nil {
			errs = append(errs, err)
		}
		dc := dispatcher.Config{Backends: o.backends, Policy: o.policy, MaxPerBackend: o.maxPerBackend,
			SlowStart: o.slowStart, Eject: o.eject}
		if err := dc.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case o.stallAfter < 0:
		errs = append(errs, flagErr("stall-after", " must not be negative, got %v", o.stallAfter))
	case o.stallAfter == 0:
		o.stallAfter = -1 // the dispatcher's "off"
	}
	return errs
}

// downHint is what the warning about no backend up after the first round suggests.
func (o *options) downHint() string {
	if o.check.Kind == health.KindClassic {
		return "the classic check wants GET /healthcheck answered 200 with \"<errors>\\n<entries>\"; " +
			"to front an ordinary web server (nginx, python3 -m http.server) use --health-check http; " +
			"for one that answers / with an error (httpserver without -L) use --health-check tcp, " +
			"or --health-check http --health-path /SOME-FILE"
	}
	return ""
}
