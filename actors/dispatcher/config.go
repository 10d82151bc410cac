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
	// MaxIdlePerBackend caps the idle upstream connections kept per backend. Zero means 64;
	// negative keeps none (every request dials).
	MaxIdlePerBackend int
	// IdleTimeout is how long an upstream connection may stay idle before it is closed. Zero
	// means 30s.
	IdleTimeout time.Duration
	// PoolRetry is how long a backend that closed staleLimit idle connections in a row goes
	// without pooled connections before they are tried again. Zero means 30s.
	PoolRetry time.Duration
	// Logger receives backend up/down transitions. Nil discards.
	Logger *slog.Logger
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

func (c *Config) maxIdle() int {
	switch {
	case c.MaxIdlePerBackend < 0:
		return 0
	case c.MaxIdlePerBackend == 0:
		return 64
	}
	return c.MaxIdlePerBackend
}

func (c *Config) idleTimeout() time.Duration {
	if c.IdleTimeout <= 0 {
		return 30 * time.Second
	}
	return c.IdleTimeout
}

func (c *Config) poolRetry() time.Duration {
	if c.PoolRetry <= 0 {
		return 30 * time.Second
	}
	return c.PoolRetry
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
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
	return errors.Join(errs...)
}
