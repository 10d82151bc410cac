package acceptor

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/messages"
)

// listenerState outlives a restart of the Acceptor (the producer captures it); only Receive
// touches it.
type listenerState struct {
	ln       net.Listener
	looping  bool // an accept goroutine is running
	closed   bool
	draining bool
	drainTo  *actor.PID
	// Panics of the accept goroutine: the pause before the next one starts doubles with each
	// panic less than a minute after the previous one.
	loopDelay time.Duration
	lastPanic time.Time
	// engine runs the Forwarders on event loops (Config.Loops > 0); nil with goroutine
	// Forwarders. It outlives a restart, like the listener.
	engine *forwarder.Engine
}

// Acceptor is the actor; its fields are owned by Receive.
type Acceptor struct {
	cfg   *Config
	st    *listenerState
	log   *slog.Logger
	conns int // live Forwarders
}

// Props returns the Acceptor's props, with the supervisor strategy its Forwarders get.
func Props(cfg *Config) *actor.Props {
	st := &listenerState{ln: cfg.Listener}
	decider := func(reason any) actor.Directive { return actor.RestartDirective }
	strategy := actor.NewOneForOneStrategy(cfg.maxRestarts(), cfg.restartWindow(), decider)
	return actor.PropsFromProducer(func() actor.Actor {
		return &Acceptor{cfg: cfg, st: st, log: cfg.logger().With("actor", "acceptor")}
	}, actor.WithSupervisor(strategy), actor.WithDispatcher(inline))
}

// inline runs the Acceptor's mailbox on the goroutine of whoever sends to it while it is idle
// (protoactor's synchronized dispatcher): the accept goroutine for a new connection, a
// Forwarder's for its Terminated. Each connection otherwise cost two goroutine starts, each
// growing a fresh stack down the actor call chain (4% of the CPU with a connection per
// request). Receive never blocks, so a sender only pays for the handling itself.
var inline = actor.NewSynchronizedDispatcher(300)

// Receive implements actor.Actor.
func (a *Acceptor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.handleStarted(ctx)
	case *actor.Stopping:
		a.closeListener()
		if a.st.engine != nil {
			a.st.engine.Close()
			a.st.engine = nil
		}
	case *actor.Terminated:
		a.handleTerminated(ctx, m)
	case *messages.ConnectionAccepted:
		a.handleAccepted(ctx, m)
	case *messages.SocketAccepted:
		a.handleSocket(m)
	case *messages.ConnEnded:
		a.handleConnEnded(ctx, m)
	case *messages.AcceptFailed:
		a.handleAcceptFailed(m)
	case *messages.AcceptLoopPanicked:
		a.handleLoopPanicked(ctx, m)
	case *messages.Drain:
		a.handleDrain(ctx, m)
	}
}

func (a *Acceptor) handleStarted(ctx actor.Context) {
	a.conns = len(ctx.Children())
	if a.st.looping || a.st.closed {
		return
	}
	if a.cfg.Loops > 0 && a.st.engine == nil {
		e, err := forwarder.NewEngine(a.cfg.Forwarder, ctx.ActorSystem(), ctx.Self(), forwarder.EngineOptions{Loops: a.cfg.Loops, RawWait: a.cfg.RawWait})
		if err != nil {
			panic(fmt.Sprintf("acceptor: %v", err))
		}
		a.st.engine = e
		noDelay(a.st.ln)
	}
	a.st.looping = true
	a.startLoop(ctx, 0)
}

// startLoop starts the accept goroutine: raw sockets for event loops, net.Conns otherwise.
func (a *Acceptor) startLoop(ctx actor.Context, delay time.Duration) {
	if a.st.engine != nil {
		go rawAccept(ctx.ActorSystem(), ctx.Self(), a.st.ln, delay)
		return
	}
	go acceptLoop(ctx.ActorSystem(), ctx.Self(), a.st.ln, delay)
}

// handleLoopPanicked starts another accept goroutine after a panic of the last one, after a
// pause (100 ms, doubling while the panics keep coming, up to 5 s) so a listener that panics on
// every accept does not spin, and then re-panics so supervision sees the failure. The lb's
// strategy resumes the Acceptor (restarting it would stop every Forwarder, and so every
// connection already accepted), with the new goroutine already running.
func (a *Acceptor) handleLoopPanicked(ctx actor.Context, m *messages.AcceptLoopPanicked) {
	a.st.looping = false
	if a.st.closed {
		return
	}
	now := time.Now()
	if now.Sub(a.st.lastPanic) > time.Minute {
		a.st.loopDelay = 0
	}
	a.st.loopDelay = min(max(2*a.st.loopDelay, 100*time.Millisecond), 5*time.Second)
	a.st.lastPanic = now
	a.log.Error("accept loop panicked; accepting again", "panic", fmt.Sprint(m.Value),
		"stack", string(m.Stack), "after", a.st.loopDelay)
	a.st.looping = true
	a.startLoop(ctx, a.st.loopDelay)
	panic(fmt.Sprintf("acceptor: accept loop panicked: %v", m.Value))
}

func (a *Acceptor) handleAccepted(ctx actor.Context, m *messages.ConnectionAccepted) {
	if a.st.draining || a.conns >= a.cfg.maxConns() {
		_ = m.Conn.Close()
		if !a.st.draining {
			a.log.Warn("connection refused: too many connections", "max_conns", a.cfg.maxConns())
		}
		return
	}
	a.conns++
	ctx.Spawn(forwarder.Props(a.cfg.Forwarder, m.Conn))
}

// handleSocket gives an accepted socket to an event loop, or closes it when the load balancer
// drains or has MaxConns connections open.
func (a *Acceptor) handleSocket(m *messages.SocketAccepted) {
	if a.st.draining || a.conns >= a.cfg.maxConns() || a.st.engine == nil {
		closeSocket(m.Fd)
		if !a.st.draining {
			a.log.Warn("connection refused: too many connections", "max_conns", a.cfg.maxConns())
		}
		return
	}
	a.conns++
	a.st.engine.Adopt(m.Fd, m.Peer)
}

// handleConnEnded settles a Forwarder on an event loop whose connection closed, as
// handleTerminated does for a goroutine Forwarder. A crash has been logged with its stack by
// the loop; it cost that connection only.
func (a *Acceptor) handleConnEnded(ctx actor.Context, m *messages.ConnEnded) {
	if d := a.cfg.Forwarder.Dispatcher; d != nil {
		ctx.Send(d, &messages.ForgetHolder{Holder: m.Holder})
	}
	if a.conns > 0 {
		a.conns--
	}
	a.maybeDrained(ctx)
}

func (a *Acceptor) handleTerminated(ctx actor.Context, m *actor.Terminated) {
	// The Dispatcher takes back a slot the Forwarder may still hold (it does not watch them).
	if d := a.cfg.Forwarder.Dispatcher; d != nil {
		ctx.Send(d, &messages.ForgetHolder{Holder: m.Who})
	}
	// A count, not len(ctx.Children()): that copies every child's PID, per connection closed.
	if a.conns > 0 {
		a.conns--
	}
	a.maybeDrained(ctx)
}

func (a *Acceptor) handleAcceptFailed(m *messages.AcceptFailed) {
	a.st.looping = false
	if m.Err != nil && !a.st.closed {
		a.log.Error("listener failed; no new connections", "err", m.Err)
	}
}

func (a *Acceptor) handleDrain(ctx actor.Context, m *messages.Drain) {
	a.st.draining = true
	a.st.drainTo = m.ReplyTo
	a.closeListener()
	if a.st.engine != nil {
		a.st.engine.Drain()
	}
	for _, child := range ctx.Children() {
		ctx.Send(child, m)
	}
	a.maybeDrained(ctx)
}

func (a *Acceptor) maybeDrained(ctx actor.Context) {
	if a.st.draining && a.conns == 0 && a.st.drainTo != nil {
		ctx.Send(a.st.drainTo, &messages.Drained{})
		a.st.drainTo = nil
	}
}

func (a *Acceptor) closeListener() {
	if !a.st.closed {
		a.st.closed = true
		_ = a.st.ln.Close()
	}
}

// acceptLoop accepts connections, after a pause of delay, until the listener is closed,
// backing off on temporary errors (out of file descriptors) instead of spinning. A panic ends
// it with AcceptLoopPanicked.
func acceptLoop(system *actor.ActorSystem, self *actor.PID, ln net.Listener, delay time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			system.Root.Send(self, &messages.AcceptLoopPanicked{Value: r, Stack: debug.Stack()})
		}
	}()
	time.Sleep(delay)
	backoff := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				system.Root.Send(self, &messages.AcceptFailed{})
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			system.Root.Send(self, &messages.AcceptFailed{Err: err})
			return
		}
		backoff = 0
		system.Root.Send(self, &messages.ConnectionAccepted{Conn: conn})
	}
}

// isTemporary reports errors an accept loop should wait out (EMFILE, ENFILE, ECONNABORTED...).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
