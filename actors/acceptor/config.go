package acceptor

import (
	"io"
	"log/slog"
	"net"
	"runtime"

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
	// Loops is how many event loops serve the connections (forwarder.Engine). Zero means one
	// per P (GOMAXPROCS).
	Loops int
	// RawWait lets the loops sleep keeping their Ps (forwarder.EngineOptions.RawWait).
	RawWait bool
	// Stopped, when set, is closed once the event loops have ended after the Acceptor stopped
	// (their last access log lines sent): main waits for it before closing the access log.
	Stopped chan struct{}
	// Logger gets refused connections and failures to start the loops. Nil discards.
	Logger *slog.Logger
}

func (c *Config) maxConns() int {
	if c.MaxConns <= 0 {
		return 10000
	}
	return c.MaxConns
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}

func (c *Config) loops() int {
	if c.Loops > 0 {
		return c.Loops
	}
	return runtime.GOMAXPROCS(0)
}
