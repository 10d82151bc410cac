package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/loadbalancer/loadbalancer/actors/acceptor"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/actors/lb"
	"github.com/loadbalancer/loadbalancer/messages"
)

const usageLine = "usage: loadbalancer [-N connections] [-R requests] [flags] PORT SERVER[@WEIGHT] [SERVER ...]\n" +
	"       loadbalancer --config FILE [--check] [flags] [PORT [SERVER[@WEIGHT] ...]]\n"

// helpText follows the usage line in --help, before the flags.
const helpText = `
PORT is the port to listen on; each SERVER is a backend, a port (127.0.0.1:PORT) or HOST:PORT,
optionally with @WEIGHT (1-1000, default 1), e.g. 9001@3.

With --config FILE the settings come from a YAML file: listen (HOST:PORT or :PORT), backends (a
list of address, weight, max_in_flight, backup and health, the backend's own http check), and
every flag can be set in the file as KEY: VALUE, its name with underscores (health_interval: 5s,
connections: 8). Flags on the command line override the file: PORT replaces listen's port, SERVER
arguments replace its backends. --check validates the file and the command line, prints a
summary and exits: 0 when valid, 1 with every error.

Flags:
`

var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

// options is the parsed command line.
type options struct {
	port     int
	backends []messages.Backend
	n, r     int
	bind     string

	healthInterval, healthTimeout              time.Duration
	connectTimeout, responseTimeout            time.Duration
	queueTimeout, drainTimeout                 time.Duration
	headerTimeout, idleTimeout, bodyTimeout    time.Duration
	upstreamIdleTimeout                        time.Duration
	maxIdlePerBackend, maxConns, maxQueue      int
	maxRequestLine, maxHeaderBytes, maxHeaders int
	errorMode                                  forwarder.ErrorMode
	noForwardedFor, noForwardedProto, noReqID  bool
	pprofAddr                                  string
	adminAddr                                  string
	adminTokenFile                             string
	accessLog                                  string
	accessLogFormat                            forwarder.LogFormat
	loops                                      int
	logLevel                                   slog.Level
	logFormat                                  string

	// The config file (--config) and --check.
	configPath       string
	checkOnly        bool
	file             *configFile // nil without --config
	backendsFromFile bool        // o.backends are the file's (no SERVER argument replaced them)

	// Backends in the wild: health checks, policies, ejection.
	check         health.Check
	rise, fall    int
	healthMinGap  time.Duration
	policy        dispatcher.PolicyConfig
	hash          forwarder.HashKey
	slowStart     time.Duration
	maxPerBackend int
	eject         dispatcher.EjectConfig
	stallAfter    time.Duration
	rExplicit     bool // -R was given: R notices also with a non-classic check

	// values are the flags' values as parsed, by config key (for GET /api/config).
	values map[string]string
}

// rawFlags are the flags whose values parseArgs parses further.
type rawFlags struct {
	checkKind, healthPath, healthMethod, healthStatus, healthBody, healthHost *string
	errorCodes, accessLogFormat, policy, hashKey, logLevel                    *string
	noEject, help, showVersion                                                *bool
}

// cmdlineOnly are the flags that have no key in the config file.
var cmdlineOnly = map[string]bool{"help": true, "version": true, "config": true, "check": true}

// newFlagSet defines every flag, writing the values that need no further parsing into o.
func newFlagSet(o *options) (*pflag.FlagSet, *rawFlags) {
	fs := pflag.NewFlagSet("loadbalancer", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.IntVarP(&o.n, "connections", "N", 4, "how many requests may be in flight to backends at once; more wait in a queue")
	fs.IntVarP(&o.r, "requests", "R", 5, "run a health-check round after every R requests (besides the periodic rounds)")
	fs.StringVar(&o.bind, "bind", "", "address to listen on, an IP or host name without a port (default: all interfaces)")
	fs.StringVar(&o.configPath, "config", "", "read the settings from this YAML `FILE`; flags on the command line override it")
	fs.BoolVar(&o.checkOnly, "check", false, "validate the command line and the --config file, print a summary and exit: 0 when valid, 1 with every error")
	fs.DurationVar(&o.healthInterval, "health-interval", 3*time.Second, "time between periodic health-check rounds")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 2*time.Second, "deadline for one health check (connect, request and whole answer)")
	checkKind := fs.String("health-check", "classic", "health check: classic (GET /healthcheck, body <errors>\\n<entries>), http (any web server), tcp (connect only) or none (passive only)")
	healthPath := fs.String("health-path", "/", "http check: the path to request")
	healthMethod := fs.String("health-method", "GET", "http check: GET or HEAD")
	healthStatus := fs.String("health-status", "200-399", "http check: the statuses that pass, a list of codes and ranges, e.g. 200-299,404")
	healthBody := fs.String("health-body", "", "http check: a string the body must contain (default: any body)")
	healthHost := fs.String("health-host", "", "http check: the Host header (default: the backend's address)")
	fs.IntVar(&o.rise, "health-rise", 0, "passed checks in a row that bring a down backend up (default 1 for classic, 2 otherwise)")
	fs.IntVar(&o.fall, "health-fall", 0, "failed checks in a row that take an up backend down (default 1 for classic, 3 otherwise)")
	fs.DurationVar(&o.healthMinGap, "health-min-gap", 100*time.Millisecond, "shortest time between the end of a health round and one asked for by the -R count (bounds the probe rate under load)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 2*time.Second, "deadline for connecting to a backend; a failed connect tries the next best backend")
	fs.DurationVar(&o.responseTimeout, "response-timeout", 10*time.Second, "how long a backend may take to start its response; past it the client gets the error, and the backend leaves rotation until healthy (classic check) or counts a failure toward ejection")
	fs.DurationVar(&o.queueTimeout, "queue-timeout", 30*time.Second, "how long a request may wait for one of the N slots before the client gets the error")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long in-flight requests may take to finish before the process exits")
	fs.DurationVar(&o.headerTimeout, "header-timeout", 10*time.Second, "how long a client may take to send a whole request head (slowloris defence)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 60*time.Second, "how long a client connection may stay idle between requests")
	fs.DurationVar(&o.bodyTimeout, "body-timeout", 60*time.Second, "longest pause allowed while a request or response body moves")
	fs.DurationVar(&o.upstreamIdleTimeout, "upstream-idle-timeout", 30*time.Second, "how long an idle upstream connection is kept for reuse")
	fs.IntVar(&o.maxIdlePerBackend, "max-idle-per-backend", 64, "idle upstream connections each event loop keeps per backend (0 keeps none)")
	fs.IntVar(&o.loops, "loops", 0, "event loops that serve the connections (0: one per core, GOMAXPROCS)")
	fs.IntVar(&o.maxConns, "max-conns", 10000, "client connections open at once; more are closed at accept")
	fs.IntVar(&o.maxQueue, "max-queue", 65536, "requests that may wait for a slot at once; more get the error at once")
	fs.IntVar(&o.maxRequestLine, "max-request-line", 8192, "longest request line in bytes (414 above)")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 65536, "largest request head in bytes (431 above)")
	fs.IntVar(&o.maxHeaders, "max-headers", 100, "most header fields in a request (431 above)")
	errorCodes := fs.String("error-codes", "classic", "what the load balancer answers itself: classic (always the contract's 500) or gateway (502, 503, 504 with a text body)")
	fs.BoolVar(&o.noForwardedFor, "no-forwarded-for", false, "do not append the client address to X-Forwarded-For")
	fs.BoolVar(&o.noForwardedProto, "no-forwarded-proto", false, "do not set X-Forwarded-Proto")
	fs.BoolVar(&o.noReqID, "no-request-id", false, "do not add X-Request-ID to requests that lack a valid one")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve the admin listener on this address, e.g. 127.0.0.1:9090 (a port alone, 9090 or :9090, is on 127.0.0.1; 0.0.0.0:9090 for every interface): /metrics (Prometheus), /healthz, /readyz, /api/stats, the stats page at /, and the runtime API (default: off)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "a file holding the bearer token every runtime API call must carry (Authorization: Bearer TOKEN); default: no token (bind the admin listener to loopback then)")
	fs.StringVar(&o.accessLog, "access-log", "", "write an access log line per request to this file (- for stdout); SIGUSR1 reopens it (default: off)")
	accessLogFormat := fs.String("access-log-format", "json", "access log format: json or combined (Apache/nginx combined, then the fields it lacks)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's runtime profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (default: off)")
	policy := fs.String("policy", "classic", "balancing policy: classic, round-robin, least-request, random, p2c, peak-ewma or hash")
	hashKey := fs.String("hash-key", "client", "hash policy: what a request's key is: client (its address), header:NAME or cookie:NAME")
	fs.Float64Var(&o.policy.HashBalance, "hash-balance", 1.25, "hash policy: a backend takes at most this many times its weighted share of the requests in flight before its keys spill to the next (at least 1)")
	fs.DurationVar(&o.slowStart, "slow-start", 0, "a backend that comes back gets its full share gradually over this long (0: at once)")
	fs.IntVar(&o.maxPerBackend, "max-per-backend", 0, "requests in flight on one backend at most; more wait in the queue (0: no cap)")
	fs.IntVar(&o.eject.Consecutive5xx, "eject-5xx", 5, "eject a backend after this many 5xx answers in a row (off by default with the classic check)")
	fs.IntVar(&o.eject.ConnectFailures, "eject-connect-failures", 3, "eject a backend after this many failed connects in a row (the classic check takes it down at the first)")
	fs.IntVar(&o.eject.Timeouts, "eject-timeouts", 2, "eject a backend after this many response timeouts in a row (the classic check takes it down at the first)")
	fs.DurationVar(&o.eject.BaseTime, "eject-time", 30*time.Second, "how long a first ejection lasts; each further one in a row lasts that much longer")
	fs.DurationVar(&o.eject.MaxTime, "eject-max-time", 5*time.Minute, "the longest one ejection lasts")
	fs.IntVar(&o.eject.MaxPercent, "eject-max-percent", 50, "the largest share of the backends ejected at once, in percent, rounded down (a lone backend is never ejected)")
	noEject := fs.Bool("no-eject", false, "never eject a backend for failed requests (stalls still count; see --stall-after)")
	fs.DurationVar(&o.stallAfter, "stall-after", 250*time.Millisecond, "a backend that answers nothing while two requests wait this long (and 8 times its usual latency) is stalled: ejected, and its waiting idempotent requests go elsewhere (0: off)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	help := fs.BoolP("help", "h", false, "print this help")
	showVersion := fs.Bool("version", false, "print the version")
	return fs, &rawFlags{checkKind: checkKind, healthPath: healthPath, healthMethod: healthMethod,
		healthStatus: healthStatus, healthBody: healthBody, healthHost: healthHost, errorCodes: errorCodes,
		accessLogFormat: accessLogFormat, policy: policy, hashKey: hashKey, logLevel: logLevel,
		noEject: noEject, help: help, showVersion: showVersion}
}

// parseArgs parses the classic command line (PORT then backends, -N and -R anywhere), the
// long flags and the --config file, the command line overriding the file. On -h it prints the
// help to helpOut (the caller's stdout) and returns errHelp. A command line that pflag cannot
// parse is a plain error; every problem found after that is in the problems returned, with the
// options (never nil then).
func parseArgs(args []string, helpOut io.Writer) (*options, error) {
	o := &options{}
	fs, raw := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *raw.help {
		fmt.Fprint(helpOut, usageLine, helpText, fs.FlagUsages())
		return nil, errHelp
	}
	if *raw.showVersion {
		return nil, errVersion
	}

	var errs []error
	cmdline := map[string]bool{} // the flags given on the command line
	fs.Visit(func(f *pflag.Flag) { cmdline[f.Name] = true })
	if o.configPath != "" {
		var fileErrs []error
		o.file, fileErrs = loadConfig(fs, o.configPath, cmdline)
		errs = append(errs, fileErrs...)
	}
	errs = append(errs, o.listenAndBackends(fs.Args(), cmdline)...)
	if err := o.parseBind(); err != nil {
		errs = append(errs, err)
	}
	if o.n <= 0 {
		errs = append(errs, flagErr("connections", " must be a positive number, got %d", o.n))
	}
	if o.r <= 0 {
		errs = append(errs, flagErr("requests", " must be a positive number, got %d", o.r))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"health-interval", o.healthInterval}, {"health-timeout", o.healthTimeout},
		{"connect-timeout", o.connectTimeout}, {"response-timeout", o.responseTimeout},
		{"queue-timeout", o.queueTimeout}, {"drain-timeout", o.drainTimeout},
		{"header-timeout", o.headerTimeout}, {"idle-timeout", o.idleTimeout},
		{"body-timeout", o.bodyTimeout}, {"upstream-idle-timeout", o.upstreamIdleTimeout}} {
		if d.v <= 0 {
			errs = append(errs, flagErr(d.name, " must be positive, got %v", d.v))
		}
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"max-conns", o.maxConns}, {"max-queue", o.maxQueue}, {"max-request-line", o.maxRequestLine},
		{"max-header-bytes", o.maxHeaderBytes}, {"max-headers", o.maxHeaders}} {
		if v.v <= 0 {
			errs = append(errs, flagErr(v.name, " must be positive, got %d", v.v))
		}
	}
	if o.loops < 0 {
		errs = append(errs, flagErr("loops", " must not be negative, got %d", o.loops))
	}
	if o.maxIdlePerBackend < 0 {
		errs = append(errs, flagErr("max-idle-per-backend", " must not be negative, got %d", o.maxIdlePerBackend))
	}
	errs = append(errs, o.parseBackendFlags(fs, backendFlags{
		checkKind: *raw.checkKind, path: *raw.healthPath, method: *raw.healthMethod, status: *raw.healthStatus,
		body: *raw.healthBody, host: *raw.healthHost, policy: *raw.policy, hashKey: *raw.hashKey, noEject: *raw.noEject,
	})...)
	var err error
	if o.errorMode, err = forwarder.ParseErrorMode(*raw.errorCodes); err != nil {
		errs = append(errs, flagErr("error-codes", ": want classic or gateway, got %q", *raw.errorCodes))
	}
	if err := o.logLevel.UnmarshalText([]byte(*raw.logLevel)); err != nil {
		errs = append(errs, flagErr("log-level", ": want debug, info, warn or error, got %q", *raw.logLevel))
	}
	if o.accessLogFormat, err = forwarder.ParseLogFormat(*raw.accessLogFormat); err != nil {
		errs = append(errs, flagErr("access-log-format", ": want json or combined, got %q", *raw.accessLogFormat))
	}
	if o.adminAddr != "" {
		// A port alone is on 127.0.0.1: the admin listener is the control plane.
		if _, err := strconv.Atoi(o.adminAddr); err == nil {
			o.adminAddr = ":" + o.adminAddr
		}
		if host, port, err := net.SplitHostPort(o.adminAddr); err != nil {
			errs = append(errs, flagErr("admin-addr", " takes HOST:PORT, e.g. 127.0.0.1:9090: got %q", o.adminAddr))
		} else if host == "" {
			o.adminAddr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if o.adminTokenFile != "" && o.adminAddr == "" {
		errs = append(errs, flagErr("admin-token-file", " needs --admin-addr"))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, flagErr("log-format", ": want text or json, got %q", o.logFormat))
	}
	if probs := o.problems(errs); len(probs) > 0 {
		return o, probs
	}
	// What runs, as the config file would say it (GET /api/config).
	o.values = map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if !cmdlineOnly[f.Name] {
			o.values[configKey(f.Name)] = f.Value.String()
		}
	})
	return o, nil
}

// listenAndBackends sets the port, the listen address and the backends from the positional
// arguments (PORT, then SERVERs) and the config file's listen and backends: PORT replaces
// listen's port (its host stays, unless --bind was given), SERVERs replace the file's backends.
func (o *options) listenAndBackends(pos []string, cmdline map[string]bool) []error {
	var errs []error
	f := o.file
	if f == nil && len(pos) < 2 {
		errs = append(errs, errors.New("need a port and at least one backend"))
	}
	if f != nil && f.listen != nil {
		o.port = f.listen.port
		if f.listen.host != "" && !cmdline["bind"] {
			o.bind = f.listen.host
			f.flagPos["bind"] = f.listen.pos
		}
	}
	if len(pos) >= 1 {
		p, err := parsePort(pos[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("listen port: %w", err))
		}
		o.port = p
	} else if f != nil && !f.listenKey && !f.unreadable {
		errs = append(errs, f.problem(position{}, "need a port to listen on: give listen: HOST:PORT (or PORT on the command line)"))
	}
	if len(pos) < 2 && f != nil {
		o.backends, o.backendsFromFile = f.backends, true
		switch {
		case f.backendItems != 0 || f.unreadable: // items, or a value, with errors of their own
		case f.backendsKey != nil:
			errs = append(errs, f.problem(*f.backendsKey, "backends: need at least one backend (or SERVER arguments on the command line)"))
		default:
			errs = append(errs, f.problem(position{}, "need at least one backend: give a backends list (or SERVER arguments on the command line)"))
		}
		return errs
	}
	seen := map[string]bool{}
	for _, s := range pos[min(1, len(pos)):] {
		b, err := parseWeightedBackend(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %q: %w", s, err))
			continue
		}
		if !seen[b.Addr] { // a backend listed twice is the same server
			seen[b.Addr] = true
			o.backends = append(o.backends, b)
		}
	}
	return errs
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return p, nil
}

// parseBind checks --bind, which is an address without a port, and takes the brackets off an
// IPv6 address given in them ("[::1]").
func (o *options) parseBind() error {
	switch {
	case strings.Contains(o.bind, "/"):
		return flagErr("bind", " takes an IP address or host name, without a scheme (http://) or path: got %s", o.bind)
	case strings.HasPrefix(o.bind, "[") && strings.HasSuffix(o.bind, "]"):
		o.bind = o.bind[1 : len(o.bind)-1]
	}
	if _, _, err := net.SplitHostPort(o.bind); err == nil {
		return &flagError{flag: "bind",
			msg:     fmt.Sprintf(" takes an address without a port (the port is the first argument, PORT): got %s", o.bind),
			fileMsg: fmt.Sprintf(" takes an address without a port (the port is listen's): got %s", o.bind)}
	}
	return nil
}

// parseWeightedBackend parses a backend argument: PORT or HOST:PORT, optionally followed by
// @WEIGHT (a whole number from 1 to 1000), e.g. 9001@3 or 10.0.0.5:80@2.
func parseWeightedBackend(s string) (messages.Backend, error) {
	addr, weight, hasWeight := strings.Cut(s, "@")
	b := messages.Backend{Weight: 1}
	if strings.Contains(addr, "/") {
		return b, notHostPort(addr)
	}
	if hasWeight {
		w, err := strconv.Atoi(weight)
		if err != nil || w < 1 || w > 1000 {
			return b, fmt.Errorf("weight %q is not a whole number from 1 to 1000 (write SERVER@WEIGHT, e.g. 9001@3)", weight)
		}
		b.Weight = w
	}
	var err error
	b.Addr, err = parseBackend(addr)
	return b, err
}

// parseBackend turns "PORT" into 127.0.0.1:PORT and checks "HOST:PORT".
func parseBackend(s string) (string, error) {
	if !strings.Contains(s, ":") {
		p, err := parsePort(s)
		if err != nil {
			return "", err
		}
		return "127.0.0.1:" + strconv.Itoa(p), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// notHostPort is the error for a backend given as a URL, with a scheme or a path, and names
// the backend in it when there is one.
func notHostPort(addr string) error {
	const want = "give HOST:PORT, without a scheme (http://) or path"
	hostPort := addr
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		hostPort = rest
	}
	hostPort, _, _ = strings.Cut(hostPort, "/")
	if _, err := parseBackend(hostPort); err == nil {
		return fmt.Errorf("%s (did you mean %s?)", want, hostPort)
	}
	return errors.New(want)
}

// config builds the actors' configuration.
func (o *options) config(ln net.Listener, log *slog.Logger) *lb.Config {
	maxIdle := o.maxIdlePerBackend
	if maxIdle == 0 {
		maxIdle = -1 // the Forwarders' "keep none"
	}
	return &lb.Config{
		Logger: log,
		Dispatcher: dispatcher.Config{
			Backends:        o.backends,
			N:               o.n,
			R:               o.r,
			QueueTimeout:    o.queueTimeout,
			MaxQueue:        o.maxQueue,
			Policy:          o.policy,
			MaxPerBackend:   o.maxPerBackend,
			SlowStart:       o.slowStart,
			ClassicFailures: o.check.Kind == health.KindClassic,
			HealthAnswers:   o.check.Kind == health.KindClassic || o.check.Kind == health.KindHTTP,
			NoHealthNotices: o.check.Kind != health.KindClassic && !o.rExplicit,
			Eject:           o.eject,
			StallAfter:      o.stallAfter,
			HealthTimeout:   o.healthTimeout,
			DownHint:        o.downHint(),
		},
		Health: health.Config{
			Backends:  o.backends,
			Interval:  o.healthInterval,
			Timeout:   o.healthTimeout,
			Check:     o.check,
			Rise:      o.rise,
			Fall:      o.fall,
			NoticeGap: o.healthMinGap,
		},
		Acceptor: acceptor.Config{
			Listener: ln,
			MaxConns: o.maxConns,
			Loops:    o.eventLoops(),
			RawWait:  true,
			Forwarder: &forwarder.Config{
				UpstreamIdleTimeout: o.upstreamIdleTimeout,
				MaxIdlePerBackend:   maxIdle,
				ConnectTimeout:      o.connectTimeout,
				ResponseTimeout:     o.responseTimeout,
				HeaderTimeout:       o.headerTimeout,
				IdleTimeout:         o.idleTimeout,
				BodyTimeout:         o.bodyTimeout,
				PickTimeout:         o.queueTimeout + 30*time.Second,
				Limits:              wire.Limits{MaxRequestLine: o.maxRequestLine, MaxHeaderBytes: o.maxHeaderBytes, MaxHeaders: o.maxHeaders},
				Errors:              o.errorMode,
				NoForwardedFor:      o.noForwardedFor,
				NoForwardedProto:    o.noForwardedProto,
				NoRequestID:         o.noReqID,
				Hash:                o.hash,
			},
		},
	}
}

// eventLoops is the Acceptor's Loops: --loops, or one per P.
func (o *options) eventLoops() int {
	if o.loops > 0 {
		return o.loops
	}
	return runtime.GOMAXPROCS(0)
}
