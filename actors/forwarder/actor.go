package forwarder

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// session is the state of one client connection that outlives a restart of its Forwarder: the
// producer captures it, and only the Forwarder's Receive touches it (one incarnation at a time).
type session struct {
	conn     net.Conn
	started  bool          // an I/O goroutine was started
	ioDone   bool          // it has sent ServeEnded
	abort    chan struct{} // closed to make the I/O goroutine give up (stop, restart)
	aborted  bool
	drain    chan struct{} // closed to make the I/O goroutine close once idle
	draining bool
}

// Forwarder is the actor for one client connection.
type Forwarder struct {
	cfg *Config
	s   *session
	log *slog.Logger
}

// Props returns the props of a Forwarder for conn, which it owns from now on. cfg is shared and
// must not change.
func Props(cfg *Config, conn net.Conn) *actor.Props {
	s := &session{conn: conn, abort: make(chan struct{}), drain: make(chan struct{})}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Forwarder{cfg: cfg, s: s, log: cfg.logger()}
	})
}

// Receive implements actor.Actor.
func (f *Forwarder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		f.handleStarted(ctx)
	case *actor.Stopping:
		f.abortIO()
	case *messages.ServeEnded:
		f.handleServeEnded(ctx, m)
	case *messages.Drain:
		f.handleDrain()
	case *messages.InjectCrash:
		if f.cfg.crashEnabled() {
			panic("forwarder: crash injected by test")
		}
	}
}

func (f *Forwarder) handleStarted(ctx actor.Context) {
	s := f.s
	switch {
	case !s.started:
		s.started = true
		c := newClientConn(f.cfg, ctx.ActorSystem(), ctx.Self(), s.conn, s.abort, s.drain)
		go c.serve()
	case s.ioDone:
		// Restarted after the I/O goroutine crashed: it has answered the client and closed
		// the connection. Nothing is left to serve.
		ctx.Stop(ctx.Self())
	default:
		// Restarted after a crash in Receive while a request was in flight: make the I/O
		// goroutine give up (it answers the client if nothing was sent) and wait for it.
		f.abortIO()
	}
}

func (f *Forwarder) handleServeEnded(ctx actor.Context, m *messages.ServeEnded) {
	f.s.ioDone = true
	if m.Panic != nil {
		f.log.Error("forwarder crashed", "panic", fmt.Sprint(m.Panic), "stack", string(m.Stack))
		panic(fmt.Sprintf("forwarder: I/O goroutine panicked: %v", m.Panic))
	}
	ctx.Stop(ctx.Self())
}

func (f *Forwarder) handleDrain() {
	s := f.s
	if s.draining || s.ioDone {
		return
	}
	s.draining = true
	close(s.drain)
	// Wake an idle read; the goroutine re-arms its deadline if a request is in progress.
	_ = s.conn.SetReadDeadline(time.Now())
}

// abortIO makes a running I/O goroutine give up as soon as it can.
func (f *Forwarder) abortIO() {
	s := f.s
	if s.aborted || s.ioDone || !s.started {
		return
	}
	s.aborted = true
	close(s.abort)
	_ = s.conn.SetDeadline(time.Now())
}
