package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

const usageLine = "usage: loadbalancer [-N connections] [-R requests] [flags] PORT SERVER [SERVER ...]\n"

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
	logLevel                                   slog.Level
	logFormat                                  string
}

// parseArgs parses the classic command line (PORT then backends, -N and -R anywhere) and the
// long flags. On -h it prints the help to stderr and returns errHelp.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("loadbalancer", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.IntVarP(&o.n, "connections", "N", 4, "how many requests may be in flight to backends at once; more wait in a queue")
	fs.IntVarP(&o.r, "requests", "R", 5, "run a health-check round after every R requests (besides the periodic rounds)")
	fs.StringVar(&o.bind, "bind", "", "address to listen on (default: all interfaces)")
	fs.DurationVar(&o.healthInterval, "health-interval", 3*time.Second, "time between periodic health-check rounds")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 2*time.Second, "deadline for one health check (connect, request and whole answer)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 2*time.Second, "deadline for connecting to a backend; a failed connect tries the next best backend")
	fs.DurationVar(&o.responseTimeout, "response-timeout", 10*time.Second, "how long a backend may take to start its response; past it the client gets the error and the backend leaves rotation until healthy")
	fs.DurationVar(&o.queueTimeout, "queue-timeout", 30*time.Second, "how long a request may wait for one of the N slots before the client gets the error")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long in-flight requests may take to finish before the process exits")
	fs.DurationVar(&o.headerTimeout, "header-timeout", 10*time.Second, "how long a client may take to send a whole request head (slowloris defence)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 60*time.Second, "how long a client connection may stay idle between requests")
	fs.DurationVar(&o.bodyTimeout, "body-timeout", 60*time.Second, "longest pause allowed while a request or response body moves")
	fs.DurationVar(&o.upstreamIdleTimeout, "upstream-idle-timeout", 30*time.Second, "how long an idle upstream connection is kept for reuse")
	fs.IntVar(&o.maxIdlePerBackend, "max-idle-per-backend", 64, "idle upstream connections kept per backend (0 keeps none)")
	fs.IntVar(&o.maxConns, "max-conns", 10000, "client connections open at once; more are closed at accept")
	fs.IntVar(&o.maxQueue, "max-queue", 65536, "requests that may wait for a slot at once; more get the error at once")
	fs.IntVar(&o.maxRequestLine, "max-request-line", 8192, "longest request line in bytes (414 above)")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 65536, "largest request head in bytes (431 above)")
	fs.IntVar(&o.maxHeaders, "max-headers", 100, "most header fields in a request (431 above)")
	errorCodes := fs.String("error-codes", "classic", "what the load balancer answers itself: classic (always the contract's 500) or gateway (502, 503, 504 with a text body)")
	fs.BoolVar(&o.noForwardedFor, "no-forwarded-for", false, "do not append the client address to X-Forwarded-For")
	fs.BoolVar(&o.noForwardedProto, "no-forwarded-proto", false, "do not set X-Forwarded-Proto")
	fs.BoolVar(&o.noReqID, "no-request-id", false, "do not add X-Request-ID to requests that lack a valid one")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's runtime profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (default: off)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	help := fs.BoolP("help", "h", false, "print this help")
	showVersion := fs.Bool("version", false, "print the version")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *help {
		fmt.Fprint(stderr, usageLine, "\nPORT is the port to listen on; each SERVER is a backend, a port (127.0.0.1:PORT) or HOST:PORT.\n\nFlags:\n", fs.FlagUsages())
		return nil, errHelp
	}
	if *showVersion {
		return nil, errVersion
	}

	var errs []error
	pos := fs.Args()
	if len(pos) < 2 {
		errs = append(errs, errors.New("need a port and at least one backend"))
	}
	if len(pos) >= 1 {
		p, err := parsePort(pos[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("listen port: %w", err))
		}
		o.port = p
	}
	seen := map[string]bool{}
	for _, s := range pos[min(1, len(pos)):] {
		addr, err := parseBackend(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %q: %w", s, err))
			continue
		}
		if !seen[addr] { // a backend listed twice is the same server
			seen[addr] = true
			o.backends = append(o.backends, messages.Backend{Addr: addr})
		}
	}
	if o.n <= 0 {
		errs = append(errs, fmt.Errorf("-N must be a positive number, got %d", o.n))
	}
	if o.r <= 0 {
		errs = append(errs, fmt.Errorf("-R must be a positive number, got %d", o.r))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--health-interval", o.healthInterval}, {"--health-timeout", o.healthTimeout},
		{"--connect-timeout", o.connectTimeout}, {"--response-timeout", o.responseTimeout},
		{"--queue-timeout", o.queueTimeout}, {"--drain-timeout", o.drainTimeout},
		{"--header-timeout", o.headerTimeout}, {"--idle-timeout", o.idleTimeout},
		{"--body-timeout", o.bodyTimeout}, {"--upstream-idle-timeout", o.upstreamIdleTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"--max-conns", o.maxConns}, {"--max-queue", o.maxQueue}, {"--max-request-line", o.maxRequestLine},
		{"--max-header-bytes", o.maxHeaderBytes}, {"--max-headers", o.maxHeaders}} {
		if v.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", v.name, v.v))
		}
	}
	if o.maxIdlePerBackend < 0 {
		errs = append(errs, fmt.Errorf("--max-idle-per-backend must not be negative, got %d", o.maxIdlePerBackend))
	}
	var err error
	if o.errorMode, err = forwarder.ParseErrorMode(*errorCodes); err != nil {
		errs = append(errs, fmt.Errorf("--error-codes: want classic or gateway, got %q", *errorCodes))
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", *logLevel))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format: want text or json, got %q", o.logFormat))
	}
	return o, errors.Join(errs...)
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return p, nil
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

// config builds the actors' configuration.
func (o *options) config(ln net.Listener, log *slog.Logger) *lb.Config {
	maxIdle := o.maxIdlePerBackend
	if maxIdle == 0 {
		maxIdle = -1 // the dispatcher's "keep none"
	}
	return &lb.Config{
		Logger: log,
		Dispatcher: dispatcher.Config{
			Backends:          o.backends,
			N:                 o.n,
			R:                 o.r,
			QueueTimeout:      o.queueTimeout,
			MaxQueue:          o.maxQueue,
			MaxIdlePerBackend: maxIdle,
			IdleTimeout:       o.upstreamIdleTimeout,
		},
		Health: health.Config{
			Backends: o.backends,
			Interval: o.healthInterval,
			Timeout:  o.healthTimeout,
		},
		Acceptor: acceptor.Config{
			Listener: ln,
			MaxConns: o.maxConns,
			Forwarder: &forwarder.Config{
				ConnectTimeout:   o.connectTimeout,
				ResponseTimeout:  o.responseTimeout,
				HeaderTimeout:    o.headerTimeout,
				IdleTimeout:      o.idleTimeout,
				BodyTimeout:      o.bodyTimeout,
				PickTimeout:      o.queueTimeout + 30*time.Second,
				Limits:           wire.Limits{MaxRequestLine: o.maxRequestLine, MaxHeaderBytes: o.maxHeaderBytes, MaxHeaders: o.maxHeaders},
				Errors:           o.errorMode,
				NoForwardedFor:   o.noForwardedFor,
				NoForwardedProto: o.noForwardedProto,
				NoRequestID:      o.noReqID,
			},
		},
	}
}
