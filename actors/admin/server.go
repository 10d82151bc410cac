package admin

import (
	"context"
	"encoding/json"
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
	// Logger gets the listener's own troubles. Nil discards.
	Logger *slog.Logger
}

// Server is the admin listener: /metrics, /healthz, /readyz, /api/stats and the stats page at /.
// It is the control plane, apart from the proxy port: nothing here is forwarded.
type Server struct {
	cfg     Config
	log     *slog.Logger
	srv     *http.Server
	ln      net.Listener
	started time.Time
	sampler *sampler
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log.With("component", "admin"), ln: ln, started: time.Now()}
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
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.sampler.run()
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener and the sampler.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.sampler.stop()
}

func (s *Server) timeout() time.Duration {
	if s.cfg.Timeout <= 0 {
		return 2 * time.Second
	}
	return s.cfg.Timeout
}

// snapshot asks the actors for their counts now.
func (s *Server) snapshot() (*Snapshot, error) {
	return gather(s.cfg.System, &s.cfg.Targets, s.timeout())
}

func (s *Server) backendNames() []string { return s.cfg.Backends }

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
	snap, err := s.snapshot()
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
	if err != nil {
		http.Error(w, "stats unavailable: "+err.Error(), http.StatusServiceUnavailable)
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

// jsonOf encodes v (a value of this package's own types: it cannot fail).
func jsonOf(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":` + fmt.Sprintf("%q", err.Error()) + `}`)
	}
	return b
}
