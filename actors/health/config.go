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
	DefaultInterval  = 3 * time.Second
	DefaultTimeout   = 2 * time.Second
	DefaultNoticeGap = 100 * time.Millisecond
)

// Config configures a HealthMonitor. The zero value of every field but Backends and Dispatcher
// works. A Config must not change once the monitor is spawned (or once sent in a
// *messages.Reconfigure, which gives the running monitor a new one).
type Config struct {
	// Backends is the list of upstream servers the monitor starts with, in listing order;
	// reports are indexed like it. At run time the backend table grows from it: see
	// *messages.SetBackends and the package documentation.
	Backends []messages.Backend
	// Dispatcher receives a *messages.HealthReport at the end of every round. Nil sends
	// nothing (the rounds still run, and transitions are still logged).
	Dispatcher *actor.PID
	// Check says how a backend is probed: the kind of check and, for the http check, its
	// request and what passes. The zero value is the classic check (GET /healthcheck, body
	// "<errors>\n<entries>"). With KindNone nothing is probed and every backend is reported up
	// (at start-up, and after each change of the backend table); Interval, Timeout, Rise, Fall
	// and NoticeGap then do nothing.
	Check Check
	// Interval is the time between two periodic rounds (the contract's 3 seconds), counted
	// from the moment the previous periodic tick was handled. Rounds started by notices do
	// not move the schedule. Zero means 3s.
	Interval time.Duration
	// Timeout bounds one probe: connect, writing the request and reading the whole answer
	// (for the tcp check: connect) must all finish within it, or the probe fails. Zero means
	// 2s. It may exceed Interval; a tick that fires while a round is still running is then
	// skipped.
	Timeout time.Duration
	// Rise is how many passed probes in a row bring a backend that is down back up. Zero
	// means 1. The first probe of a backend (at start-up, or after a restart of the monitor)
	// decides its state at once, whatever Rise and Fall say.
	Rise int
	// Fall is how many failed probes in a row take a backend that is up down. Zero means 1
	// (one failed probe is enough, the classic behaviour). While a backend stays up within
	// its fall threshold, its reports carry the latest probe's failure as Reason.
	Fall int
	// NoticeGap is the least time between the end of a round and the start of a round asked
	// for by a *messages.HealthCheckDue (the Dispatcher's "R requests served" notice), which
	// bounds the probe rate under heavy traffic. A notice that comes sooner is remembered and
	// its round starts when the gap has passed (or with any round that starts before then);
	// no notice is lost, and any number of them waiting make one round. Zero means 100ms;
	// negative means no gap (a round starts as soon as none is running). Periodic rounds and
	// *messages.RunHealthRound are not held back.
	NoticeGap time.Duration
	// Logger receives backend up/down transitions of the monitor's verdict and one line per
	// round, at Debug. Nil discards.
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

func (c *Config) rise() int {
	if c.Rise <= 0 {
		return 1
	}
	return c.Rise
}

func (c *Config) fall() int {
	if c.Fall <= 0 {
		return 1
	}
	return c.Fall
}

// noticeGap returns the gap; zero or less means none.
func (c *Config) noticeGap() time.Duration {
	switch {
	case c.NoticeGap == 0:
		return DefaultNoticeGap
	case c.NoticeGap < 0:
		return 0
	}
	return c.NoticeGap
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
		if _, err := c.Check.For(b.Health); err != nil {
			errs = append(errs, fmt.Errorf("health: backend %s: %w", b.Addr, err))
		}
	}
	errs = append(errs, c.timingErrors()...)
	errs = append(errs, c.Check.validate()...)
	return errors.Join(errs...)
}

// timingErrors reports negative intervals, timeouts and thresholds (Validate's, and a running
// monitor's new settings').
func (c *Config) timingErrors() []error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("health: interval must not be negative, got %v", c.Interval))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("health: timeout must not be negative, got %v", c.Timeout))
	}
	if c.Rise < 0 {
		errs = append(errs, fmt.Errorf("health: rise must not be negative, got %d", c.Rise))
	}
	if c.Fall < 0 {
		errs = append(errs, fmt.Errorf("health: fall must not be negative, got %d", c.Fall))
	}
	return errs
}
