package acceptor

import (
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
	ln        net.Listener
	listening bool // the loops accept on the listener
	closed    bool
	// accepting: the loops may still send SocketAccepted (until AcceptingStopped).
	accepting bool
	draining  bool
	drainTo   *actor.PID
	// engine runs the Forwarders on the event loops; made at the first Started, it outlives a
	// restart, like the listener, and so do the counts of its connections.
	engine *forwarder.Engine
	conns  int // open client connections (adopted, not yet ended)
	// maxConns, when not zero, is a reload's cap on connections (Config.MaxConns until then).
	maxConns int
	// crashes counts the Forwarders that ended in a panic; accepted and refused the connections
	// admitted and closed at once.
	crashes           int
	accepted, refused uint64
	// peak is the most connections open since memory was last given back (see reclaim), and
	// reclaimedAt when that was.
	peak        int
	reclaimedAt time.Time
}

// Acceptor is the actor; its fields are owned by Receive.
type Acceptor struct {
	cfg *Config
	st  *listenerState
	log *slog.Logger
}

// Props returns the Acceptor's props.
func Props(cfg *Config) *actor.Props {
	st := &listenerState{ln: cfg.Listener}
	return actor.PropsFromProducer(func() actor.Actor {
		return &Acceptor{cfg: cfg, st: st, log: cfg.logger().With("actor", "acceptor")}
	}, actor.WithDispatcher(inline))
}

// inline runs the Acceptor's mailbox on the goroutine of whoever sends to it while it is idle
// (protoactor's synchronized dispatcher): the event loop's thread that accepted a connection or
// saw one end. Each connection otherwise cost two goroutine starts,
// each growing a fresh stack down the actor call chain (4% of the CPU with a connection per
// request). Receive never blocks, so a sender only pays for the handling itself.
var inline = actor.NewSynchronizedDispatcher(300)

// Receive implements actor.Actor.
func (a *Acceptor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.handleStarted(ctx)
	case *actor.Stopping:
		a.closeListener()
		if e := a.st.engine; e != nil {
			e.Close()
			a.st.engine = nil
			if done := a.cfg.Stopped; done != nil {
				go func() {
					defer func() { _ = recover() }() // waits and closes a channel: nothing to report
					e.Wait()
					close(done)
				}()
			}
		}
	case *messages.SocketAccepted:
		a.handleSocket(m)
	case *messages.ConnEnded:
		a.handleConnEnded(ctx, m)
	case *messages.Drain:
		a.handleDrain(ctx, m)
	case *messages.AcceptingStopped:
		a.st.accepting = false
		a.maybeDrained(ctx)
	case *messages.StatsRequest:
		a.handleStats(ctx, m)
	case *messages.Reconfigure:
		if cfg, ok := m.Config.(*Config); ok {
			a.reconfigure(cfg)
		}
	}
}

func (a *Acceptor) handleStarted(ctx actor.Context) {
	if a.st.listening || a.st.closed {
		return
	}
	if a.st.engine == nil {
		e, err := forwarder.NewEngine(a.cfg.Forwarder, ctx.ActorSystem(), ctx.Self(), forwarder.EngineOptions{Loops: a.cfg.loops(), RawWait: a.cfg.RawWait})
		if err != nil {
			// Without loops nothing can be served: say so, and fail (the lb logs the stop).
			a.log.Error("cannot start the event loops; no connection will be served", "err", err)
			panic(fmt.Sprintf("acceptor: %v", err))
		}
		a.st.engine = e
		noDelay(a.st.ln)
	}
	if err := a.st.engine.Listen(a.st.ln); err != nil {
		a.log.Error("cannot accept on the listener; no connection will be served", "err", err)
		panic(fmt.Sprintf("acceptor: %v", err))
	}
	a.st.listening, a.st.accepting = true, true
}

// handleSocket gives a socket an event loop accepted back to that loop to serve, or closes it
// when MaxConns connections are open. While the load balancer drains, the loops' last accepts
// (the listener's backlog) are served too, one request each, rather than reset.
func (a *Acceptor) handleSocket(m *messages.SocketAccepted) {
	if a.st.conns >= a.maxConns() {
		closeSocket(m.Fd)
		a.st.refused++
		a.log.Warn("connection refused: too many connections", "max_conns", a.maxConns())
		return
	}
	a.st.conns++
	a.st.accepted++
	a.st.peak = max(a.st.peak, a.st.conns)
	a.st.engine.AdoptOn(m.Loop, m.Fd, m.Peer)
}

// handleConnEnded settles a Forwarder whose connection closed: the Dispatcher forgets the holder
// (and takes back a slot it may still hold), and the count drops.
func (a *Acceptor) handleConnEnded(ctx actor.Context, m *messages.ConnEnded) {
	if d := a.cfg.Forwarder.Dispatcher; d != nil {
		ctx.Send(d, &messages.ForgetHolder{Holder: m.Holder})
	}
	if a.st.conns > 0 {
		a.st.conns--
	}
	if m.Panic != nil {
		a.st.crashes++ // logged with its stack by the loop; it cost that connection only
	}
	a.reclaim()
	a.maybeDrained(ctx)
}

// reclaimAfter is how many connections must have gone since the peak before reclaim acts, and
// reclaimEvery how often it may.
const (
	reclaimAfter = 2000
	reclaimEvery = 10 * time.Second
)

// reclaim gives memory back to the system after a flood of connections has gone (most of what
// they held is garbage by then, and an idle process would not collect it for minutes): once at
// least half the peak and reclaimAfter connections have closed, a goroutine runs a collection
// and returns the free pages (debug.FreeOSMemory, which stops the world briefly), at most every
// reclaimEvery.
func (a *Acceptor) reclaim() {
	st := a.st
	if st.peak-st.conns < reclaimAfter || st.conns > st.peak/2 || time.Since(st.reclaimedAt) < reclaimEvery {
		return
	}
	st.peak, st.reclaimedAt = st.conns, time.Now()
	go func() {
		// FreeOSMemory does not panic; were it to, this connection-free goroutine has nothing
		// to lose and the next flood tries again (house rule 3 without a message for it).
		defer func() { _ = recover() }()
		debug.FreeOSMemory()
	}()
}

// maxConns is the cap on open connections in force.
func (a *Acceptor) maxConns() int {
	if a.st.maxConns > 0 {
		return a.st.maxConns
	}
	return a.cfg.maxConns()
}

// reconfigure takes a reload's settings: the connection cap, and the Forwarders' configuration
// for the requests that follow (the access log's settings stay: they need a restart).
func (a *Acceptor) reconfigure(cfg *Config) {
	a.st.maxConns = cfg.maxConns()
	if f := cfg.Forwarder; f != nil && a.st.engine != nil {
		if err := f.Validate(); err != nil {
			a.log.Error("new Forwarder settings refused; the running ones stay", "err", err)
			return
		}
		next := *f
		cur := a.cfg.Forwarder
		next.Dispatcher, next.AccessLog, next.AccessLogFormat, next.AccessLogFree = cur.Dispatcher, cur.AccessLog, cur.AccessLogFormat, cur.AccessLogFree
		if next.Logger == nil {
			next.Logger = cur.Logger
		}
		if next.Resolved == nil {
			next.Resolved = cur.Resolved
		}
		a.st.engine.SetConfig(&next)
	}
	a.log.Info("settings changed", "max_conns", a.maxConns())
}

// handleStats answers with the connection counts, and has every event loop answer with its own.
func (a *Acceptor) handleStats(ctx actor.Context, m *messages.StatsRequest) {
	s := &messages.ConnStats{Open: a.st.conns, Accepted: a.st.accepted, Refused: a.st.refused,
		Crashes: uint64(a.st.crashes), Draining: a.st.draining}
	if a.st.engine != nil && !m.Brief {
		s.Loops = a.st.engine.Stats(m)
	}
	ctx.Send(m.ReplyTo, s)
}

func (a *Acceptor) handleDrain(ctx actor.Context, m *messages.Drain) {
	a.st.draining = true
	a.st.drainTo = m.ReplyTo
	a.closeListener()
	if a.st.engine != nil {
		a.st.engine.Drain()
	}
	a.maybeDrained(ctx)
}

func (a *Acceptor) maybeDrained(ctx actor.Context) {
	if a.st.draining && a.st.conns == 0 && !a.st.accepting && a.st.drainTo != nil {
		ctx.Send(a.st.drainTo, &messages.Drained{})
		a.st.drainTo = nil
	}
}

func (a *Acceptor) closeListener() {
	if !a.st.closed {
		a.st.closed = true
		if a.st.engine == nil || !a.st.engine.StopAccepting() {
			a.st.accepting = false
		}
		_ = a.st.ln.Close()
	}
}
