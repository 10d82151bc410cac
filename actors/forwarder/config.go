package forwarder

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
)

// ErrorMode chooses what the load balancer answers when it cannot get a response from a backend.
type ErrorMode uint8

const (
	// ErrorsClassic answers every such failure with the classic contract's exact bytes:
	// "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".
	ErrorsClassic ErrorMode = iota
	// ErrorsGateway answers 502 for a failed or malformed upstream response, 503 when no backend
	// is up or the wait for a slot failed, 504 for an upstream timeout, each with a one-line body.
	ErrorsGateway
)

// ParseErrorMode parses "classic" or "gateway".
func ParseErrorMode(s string) (ErrorMode, error) {
	switch s {
	case "classic", "":
		return ErrorsClassic, nil
	case "gateway":
		return ErrorsGateway, nil
	}
	return 0, fmt.Errorf("forwarder: unknown error mode %q (want classic or gateway)", s)
}

// Config configures every Forwarder; it is shared read-only by all of them. The zero value of
// every field but Dispatcher works.
type Config struct {
	// Dispatcher answers PickBackend and takes ReleaseLease.
	Dispatcher *actor.PID
	// MaxAttempts caps how many backends one request may try when connects fail. Zero means
	// no cap: the Dispatcher never gives a request a backend it has tried, so a request tries
	// each at most once.
	MaxAttempts int
	// ConnectTimeout bounds a dial to a backend. Zero means 2s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for a response head once the request is sent; a backend
	// that misses it is out of rotation until it passes a health check (classic failures) or
	// counts it toward ejection. Zero means 10s. Before it passes, a request asks the
	// Dispatcher whether to go on waiting (see BackendPicked.CheckAfter).
	ResponseTimeout time.Duration
	// HeaderTimeout bounds the arrival of a whole request head once its first byte is in
	// (slowloris defence). Zero means 10s.
	HeaderTimeout time.Duration
	// IdleTimeout is how long a client connection may wait between requests. Zero means 60s.
	IdleTimeout time.Duration
	// BodyTimeout is the longest pause allowed while a body moves, in either direction.
	// Zero means 60s.
	BodyTimeout time.Duration
	// PickTimeout bounds the wait for the Dispatcher's answer; it only matters if the Dispatcher
	// is lost (its own queue timeout answers first). Zero means 2m.
	PickTimeout time.Duration
	// Limits bound request heads (414 and 431 above them).
	Limits wire.Limits
	// Errors selects the answers the load balancer makes itself.
	Errors ErrorMode
	// NoForwardedFor, NoForwardedProto and NoRequestID switch off the X-Forwarded-For,
	// X-Forwarded-Proto and X-Request-ID headers added to requests going upstream.
	NoForwardedFor, NoForwardedProto, NoRequestID bool
	// Hash says what the hash policy's key is made of (a header, a cookie or the client's
	// address); the zero value sends no key.
	Hash HashKey
	// UpstreamIdleTimeout is how long an idle upstream connection stays pooled on an event
	// loop. Zero means 30s.
	UpstreamIdleTimeout time.Duration
	// MaxIdlePerBackend caps the idle upstream connections each event loop keeps per backend.
	// Zero means 64; negative keeps none.
	MaxIdlePerBackend int
	// Resolved maps each backend given by name ("localhost:8080") to the address it was resolved
	// to at start-up; the loops never look a name up. Backends given as IP and port need no
	// entry.
	Resolved map[string]netip.AddrPort
	// Logger receives a Forwarder's crash (Error, with the stack). Nil discards.
	Logger *slog.Logger
	// AccessLog, when set, is the access log writer: each event loop sends it its lines in
	// batches (messages.AccessLogBatch), formatted as AccessLogFormat says (zero: JSON).
	AccessLog       *actor.PID
	AccessLogFormat LogFormat
	// AccessLogFree is where the writer gives batch buffers back for the loops to reuse; nil
	// makes a fresh buffer per batch.
	AccessLogFree chan []byte

	// testCrash lets requests carrying an X-Crash-Test header crash the Forwarder (tests only).
	testCrash bool
}

func (c *Config) connectTimeout() time.Duration  { return dur(c.ConnectTimeout, 2*time.Second) }
func (c *Config) responseTimeout() time.Duration { return dur(c.ResponseTimeout, 10*time.Second) }
func (c *Config) headerTimeout() time.Duration   { return dur(c.HeaderTimeout, 10*time.Second) }
func (c *Config) idleTimeout() time.Duration     { return dur(c.IdleTimeout, 60*time.Second) }
func (c *Config) bodyTimeout() time.Duration     { return dur(c.BodyTimeout, 60*time.Second) }
func (c *Config) pickTimeout() time.Duration     { return dur(c.PickTimeout, 2*time.Minute) }
func (c *Config) upstreamIdle() time.Duration    { return dur(c.UpstreamIdleTimeout, 30*time.Second) }
func (c *Config) crashEnabled() bool             { return crashBuild || c.testCrash }

func (c *Config) maxIdlePerBackend() int {
	switch {
	case c.MaxIdlePerBackend < 0:
		return 0
	case c.MaxIdlePerBackend == 0:
		return 64
	}
	return c.MaxIdlePerBackend
}

// discardLogger stands in for a nil Config.Logger (one for all connections).
var discardLogger = slog.New(slog.DiscardHandler)

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return discardLogger
	}
	return c.Logger
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Dispatcher == nil {
		errs = append(errs, errors.New("forwarder: no dispatcher"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"connect timeout", c.ConnectTimeout}, {"response timeout", c.ResponseTimeout},
		{"header timeout", c.HeaderTimeout}, {"idle timeout", c.IdleTimeout}, {"body timeout", c.BodyTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("forwarder: %s must not be negative, got %v", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

func dur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
