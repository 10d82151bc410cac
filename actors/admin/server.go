package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loadbalancer/loadbalancer/actors/admin/statspage"
)

// Config configures the admin listener.
type Config struct {
	// Addr is where it listens ("127.0.0.1:9090").
	Addr string
	// System is the actor system the Targets live in.
	System  *actor.ActorSystem
	Targets Targets
	// Backends are the configured backends' addresses, in order.
	Backends []string
	// What the stats page shows about the configuration.
	Version, Listen, Policy, HealthCheck string
	HealthInterval                       time.Duration
	// Timeout bounds the wait for the actors' answers. Zero means 2s.
	Timeout time.Duration
	// Loops is how many event loops answer a snapshot (it sizes the reply endpoint; more is
	// harmless).
	Loops int
	// Listener, when set, is the listener to serve on (bound by the caller, before anything
	// else starts); Addr is then ignored.
	Listener net.Listener
	// Logger gets the listener's own troubles. Nil discards.
	Logger *slog.Logger
	// Control is what the runtime API (/api/backends, /api/config, /api/reload) works
	// through; nil leaves the API out (its paths answer 404).
	Control Control
	// Token, when not empty, is the bearer token every runtime API call must carry
	// ("Authorization: Bearer TOKEN"; white space around it is not part of it). /api/stats,
	// /metrics, /healthz, /readyz and the stats page stay open.
	Token string
}

// Server is the admin listener: /metrics, /healthz, /readyz, /api/stats, the stats page at /
// and, with a Control, the runtime API.
// It is the control plane, apart from the proxy port: nothing here is forwarded.
type Server struct {
	cfg     Config
	log     *slog.Logger
	srv     *http.Server
	ln      net.Listener
	started time.Time
	sampler *sampler
	api     *api // nil without a Control
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log.With("component", "admin"), ln: ln, started: time.Now()}
	if cfg.Control != nil {
		var err error
		if s.api, err = newAPI(s, cfg.Control, cfg.Token); err != nil {
			if cfg.Listener == nil {
				_ = ln.Close()
			}
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{srv: s, log: s.log},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.sampler = newSampler(s)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /api/stats", s.handleStats)
	mux.Handle("/{$}", statspage.Handler())
	if s.api != nil {
		s.api.register(mux)
		go s.api.run()
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.sampler.run()
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener, the sampler and the runtime API.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.sampler.stop()
	if s.api != nil {
		s.api.stop()
	}
}

func (s *Server) timeout() time.Duration {
	if s.cfg.Timeout <= 0 {
		return 2 * time.Second
	}
	return s.cfg.Timeout
}

// snapshot asks the actors for their counts now.
func (s *Server) snapshot() (*Snapshot, error) {
	return gather(s.cfg.System, &s.cfg.Targets, s.timeout(), s.cfg.Loops)
}

// readiness says whether the load balancer can serve: the first health round is done and a
// backend is up; otherwise why not, in one line.
func readiness(s *Snapshot) (bool, string) {
	d := s.Dispatcher
	switch {
	case d == nil:
		return false, "the dispatcher did not answer"
	case s.Conns != nil && s.Conns.Draining:
		return false, "draining: the load balancer is stopping"
	case !d.Ready:
		return false, "waiting for the first health round"
	}
	down := 0
	for i := range d.Backends {
		if b := &d.Backends[i]; b.Up && !b.Ejected {
			return true, ""
		}
		down++
	}
	return false, fmt.Sprintf("no backend is up (%d down or ejected)", down)
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	// Only what readiness needs, within a second (probes time out after one by default): the
	// Dispatcher, and the Acceptor without its loops.
	t := Targets{Dispatcher: s.cfg.Targets.Dispatcher, Acceptor: s.cfg.Targets.Acceptor, brief: true}
	snap, err := gather(s.cfg.System, &t, min(s.timeout(), time.Second), 0)
	ready, why := readiness(snap)
	if err != nil && snap.Dispatcher == nil {
		why = "the actors did not answer in time"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, why)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	body, err := s.sampler.latest(r.Context())
	switch {
	case err != nil:
		http.Error(w, "stats unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	case body == nil:
		http.Error(w, "stats unavailable: the last sample could not be encoded (see the log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// slogPrinter passes promhttp's errors to the logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// errStopped: the sampler has stopped.
var errStopped = errors.New("admin: stopped")
