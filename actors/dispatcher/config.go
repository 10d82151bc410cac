package dispatcher

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Config configures a Dispatcher. The zero value of every field but Backends works.
type Config struct {
	// Backends is the fixed list of upstream servers, in listing order (the last tie-break).
	// A backend's MaxInFlight overrides MaxPerBackend for it; a Backup backend takes requests
	// only while no other backend is up and not ejected.
	Backends []messages.Backend
	// N is how many requests may be in flight to backends at once (the contract's -N).
	// Zero means 4.
	N int
	// R is how many picks there are between two HealthCheckDue notices (the contract's -R).
	// Zero means 5.
	R int
	// Health receives a *messages.HealthCheckDue after every R-th pick; nil sends nothing.
	Health *actor.PID
	// QueueTimeout is how long a pick may wait for a free slot before the client gets the
	// load balancer's error. Zero means 30s.
	QueueTimeout time.Duration
	// MaxQueue is how many picks may wait for a slot at once; one more is answered at once
	// with NoBackendQueueFull. Zero means 65536.
	MaxQueue int
	// Logger receives the changes that alter routing: a backend up or back from an ejection
	// (Info), down or ejected (Warn), and the outcome of the first health round. Nil discards.
	Logger *slog.Logger

	// Policy chooses among the available backends (see PolicyConfig). The zero value is the
	// classic rule.
	Policy PolicyConfig
	// MaxPerBackend caps the requests in flight on one backend; a request that finds every up
	// backend at its cap waits in the queue. Zero means no cap (only N applies).
	MaxPerBackend int
	// SlowStart is how long a backend that comes back (up again after being down, or back
	// from an ejection) takes to reach its full weight: its effective weight grows linearly
	// from a tenth of it. Zero means at once. The backends up at start-up start at full weight.
	// The classic policy compares counters per unit of weight, so a backend that restarted
	// (few entries) still wins its picks while it ramps.
	SlowStart time.Duration
	// ClassicFailures makes a refused connect or a response timeout take the backend out of
	// rotation until a health round finds it up (the classic contract). Without it they count
	// toward ejection (Eject) instead.
	ClassicFailures bool
	// NoHealthNotices sends no HealthCheckDue: rounds run on the monitor's interval only (R is
	// then unused).
	NoHealthNotices bool
	// Eject configures passive outlier ejection.
	Eject EjectConfig
	// StallAfter is the shortest time a request may wait for its response head before the
	// Forwarder asks whether to go on waiting (CheckLease); the wait is also at least
	// stallFactor times the backend's latency estimate. A backend that has answered nothing
	// while two requests waited that long (or one four times as long) is stalled: it is
	// ejected, whatever Eject.MaxPercent says but never the last usable backend, and the
	// requests waiting on it that can be sent again go to another backend. Zero means 250ms;
	// negative turns stall detection off.
	StallAfter time.Duration
	// HealthTimeout is the health check's deadline. Until the first health report arrives,
	// picks wait for it, at most this long after start-up (zero: they do not wait). A stall
	// ejection also ends at the first report that finds the backend up and was probed after
	// the ejection (arrived more than HealthTimeout after it).
	HealthTimeout time.Duration
	// HealthAnswers says the health check gets an HTTP answer from the backend (classic and
	// http checks, not tcp or none), so a passed probe after a stall ejection shows the backend
	// answers again and ends the ejection early.
	HealthAnswers bool
	// DownHint is added to the warning logged when the first health round finds no backend up,
	// e.g. which flag fronts an ordinary web server. Empty adds nothing.
	DownHint string
}

// EjectConfig configures passive outlier ejection: a backend whose real requests fail in a row is
// taken out of rotation for a while, whatever its health checks say. Each threshold counts
// consecutive outcomes of requests; zero turns that trigger off.
type EjectConfig struct {
	// Consecutive5xx ejects after this many 5xx answers (or responses broken mid-way) in a row.
	Consecutive5xx int
	// ConnectFailures ejects after this many refused or timed-out connects in a row (ignored
	// with ClassicFailures, which takes the backend down at the first).
	ConnectFailures int
	// Timeouts ejects after this many response timeouts in a row (ignored with
	// ClassicFailures).
	Timeouts int
	// BaseTime is how long the first ejection lasts; the k-th in a row lasts k times as long,
	// up to MaxTime. A backend back in rotation without a new ejection for BaseTime takes one
	// off its count. Zero means 30s.
	BaseTime time.Duration
	// MaxTime caps one ejection. Zero means 5m.
	MaxTime time.Duration
	// MaxPercent is the largest share of the backends that may be ejected at once, rounded
	// down (so a lone backend is never ejected). Zero means 50; negative means none.
	MaxPercent int
}

func (c *Config) stallAfter() time.Duration {
	if c.StallAfter == 0 {
		return 250 * time.Millisecond
	}
	return c.StallAfter
}

func (c *Config) ejectBase() time.Duration {
	if c.Eject.BaseTime <= 0 {
		return 30 * time.Second
	}
	return c.Eject.BaseTime
}

func (c *Config) ejectMax() time.Duration {
	if c.Eject.MaxTime <= 0 {
		return 5 * time.Minute
	}
	return c.Eject.MaxTime
}

// maxEjected is how many backends may be ejected at once, of those configured now.
func (d *Dispatcher) maxEjected() int {
	p := d.cfg.Eject.MaxPercent
	switch {
	case p < 0:
		return 0
	case p == 0:
		p = 50
	}
	return p * d.live / 100
}

func (c *Config) n() int {
	if c.N <= 0 {
		return 4
	}
	return c.N
}

func (c *Config) r() uint64 {
	if c.R <= 0 {
		return 5
	}
	return uint64(c.R)
}

func (c *Config) queueTimeout() time.Duration {
	if c.QueueTimeout <= 0 {
		return 30 * time.Second
	}
	return c.QueueTimeout
}

func (c *Config) maxQueue() int {
	if c.MaxQueue <= 0 {
		return 65536
	}
	return c.MaxQueue
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}

// limitOf is backend b's cap on requests in flight: its own, or else MaxPerBackend (0: none).
func (c *Config) limitOf(b messages.Backend) int {
	if b.MaxInFlight > 0 {
		return b.MaxInFlight
	}
	return c.MaxPerBackend
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("dispatcher: no backend configured"))
	}
	for i, b := range c.Backends {
		if b.Addr == "" {
			errs = append(errs, fmt.Errorf("dispatcher: backend %d has no address", i))
		}
	}
	if c.N < 0 {
		errs = append(errs, fmt.Errorf("dispatcher: N must be positive, got %d", c.N))
	}
	if c.R < 0 {
		errs = append(errs, fmt.Errorf("dispatcher: R must be positive, got %d", c.R))
	}
	for i, b := range c.Backends {
		if b.Weight < 0 {
			errs = append(errs, fmt.Errorf("dispatcher: backend %d: weight must not be negative, got %d", i, b.Weight))
		}
	}
	if c.MaxPerBackend < 0 {
		errs = append(errs, fmt.Errorf("dispatcher: max per backend must not be negative, got %d", c.MaxPerBackend))
	}
	if c.SlowStart < 0 {
		errs = append(errs, fmt.Errorf("dispatcher: slow start must not be negative, got %v", c.SlowStart))
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"consecutive 5xx", c.Eject.Consecutive5xx}, {"connect failures", c.Eject.ConnectFailures}, {"timeouts", c.Eject.Timeouts}} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("dispatcher: eject after %s must not be negative, got %d", v.name, v.v))
		}
	}
	if c.Eject.MaxPercent > 100 {
		errs = append(errs, fmt.Errorf("dispatcher: max ejected percent must be at most 100, got %d", c.Eject.MaxPercent))
	}
	if _, err := NewPolicy(c.Policy); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
