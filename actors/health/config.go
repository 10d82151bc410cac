package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// DialFunc opens a connection to addr, like net.Dialer.DialContext; ctx carries the probe's
// deadline.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Defaults for the zero Config.
const (
	DefaultInterval = 3 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// Config configures a HealthMonitor. The zero value of every field but Backends and Dispatcher
// works. A Config must not change once the monitor is spawned.
type Config struct {
	// Backends is the fixed list of upstream servers, in listing order; reports are indexed
	// like it.
	Backends []messages.Backend
	// Dispatcher receives a *messages.HealthReport at the end of every round. Nil sends
	// nothing (the rounds still run, and transitions are still logged).
	Dispatcher *actor.PID
	// Interval is the time between two periodic rounds (the contract's 3 seconds), counted
	// from the moment the previous periodic tick was handled. Rounds started by notices do
	// not move the schedule. Zero means 3s.
	Interval time.Duration
	// Timeout bounds one probe: connect, writing the request and reading the whole answer
	// must all finish within it, or the backend is down. Zero means 2s. It may exceed
	// Interval; a tick that fires while a round is still running is then skipped.
	Timeout time.Duration
	// Logger receives backend up/down transitions at Info and one line per round at Debug.
	// Nil discards.
	Logger *slog.Logger
	// Dial opens the probe connections. Nil means a net.Dialer; tests inject failures here.
	// It is called from probe goroutines, concurrently, so it must be safe for that.
	Dial DialFunc
}

func (c *Config) interval() time.Duration {
	if c.Interval <= 0 {
		return DefaultInterval
	}
	return c.Interval
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Config) dial() DialFunc {
	if c.Dial == nil {
		var d net.Dialer
		return d.DialContext
	}
	return c.Dial
}

// Validate reports every problem with the configuration, not just the first.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("health: no backend configured"))
	}
	for i, b := range c.Backends {
		if _, _, err := net.SplitHostPort(b.Addr); err != nil {
			errs = append(errs, fmt.Errorf("health: backend %d: address %q: %w", i, b.Addr, err))
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("health: interval must not be negative, got %v", c.Interval))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("health: timeout must not be negative, got %v", c.Timeout))
	}
	return errors.Join(errs...)
}
