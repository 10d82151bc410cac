package acceptor

import (
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/loadbalancer/loadbalancer/actors/forwarder"
)

// Config configures the Acceptor.
type Config struct {
	// Listener is where clients connect; the Acceptor owns it and closes it when it drains or
	// stops.
	Listener net.Listener
	// Forwarder configures every Forwarder.
	Forwarder *forwarder.Config
	// MaxConns caps the client connections open at once; one more is closed at once. Zero
	// means 10000.
	MaxConns int
	// MaxRestarts is how many times a Forwarder may be restarted within RestartWindow before
	// it is stopped. Zero means 3 within 10s.
	MaxRestarts   int
	RestartWindow time.Duration
	// Loops, when positive, runs the Forwarders as state machines on that many event loops
	// (forwarder.Engine); zero runs one goroutine Forwarder per connection.
	Loops int
	// RawWait lets the loops sleep keeping their Ps (forwarder.EngineOptions.RawWait).
	RawWait bool
	// Logger gets accept errors and crashes. Nil discards.
	Logger *slog.Logger
}

func (c *Config) maxConns() int {
	if c.MaxConns <= 0 {
		return 10000
	}
	return c.MaxConns
}

func (c *Config) maxRestarts() int {
	if c.MaxRestarts <= 0 {
		return 3
	}
	return c.MaxRestarts
}

func (c *Config) restartWindow() time.Duration {
	if c.RestartWindow <= 0 {
		return 10 * time.Second
	}
	return c.RestartWindow
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}
