package forwarder

import (
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/messages"
)

// session is the state of one client connection that outlives a restart of its Forwarder: the
// producer captures it, and only the Forwarder's Receive touches it (one incarnation at a time).
type session struct {
	conn    net.Conn
	started bool // an I/O goroutine was started
	ioDone  bool // the connection is closed: an I/O goroutine sent ServeEnded, or a parked one was closed
	parked  bool // no I/O goroutine: the IdleWatcher watches the connection
	// abort and drain belong to the running I/O goroutine (made for each, dropped when it
	// parks: a parked connection holds no channel).
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
	s := &session{conn: conn}
	return actor.PropsFromProducerWithActorSystem(func(*actor.ActorSystem) actor.Actor {
		return &Forwarder{cfg: cfg, s: s, log: cfg.logger()}
	}, actor.WithMailbox(mailbox), actor.WithDispatcher(inline))
}

// mailbox makes each Forwarder's mailbox: lock-free linked queues, a few dozen bytes while
// empty, where the default's ring buffer costs about 300 bytes per connection. A Forwarder gets
// a handful of messages in its life (none per request), so the queue's allocation per message
// does not matter.
var mailbox = actor.UnboundedLockfree()

// inline runs a Forwarder's mailbox on the goroutine of whoever sends to it while it is idle
// (protoactor's synchronized dispatcher): its Started on the Acceptor's, its ServeEnded (and the
// stop that follows) on its I/O goroutine's, a wake on the IdleWatcher's. protoactor's default
// starts a goroutine each time an idle mailbox gets a message, two or three times in a
// Forwarder's life, each growing its stack down the actor call chain; a pool of waiting
// goroutines (what this replaced) still cost a hand-off each. Receive never blocks: it starts
// or stops the I/O goroutine, closes or pokes the socket and sends messages, so a sender pays
// only for that. With a new connection per request this was 4% less CPU per request than the
// pool, in the same tests/bench run.
var inline = actor.NewSynchronizedDispatcher(300)

// Receive implements actor.Actor.
func (f *Forwarder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		f.handleStarted(ctx)
	case *actor.Stopping:
		f.abortIO()
		f.closeParked()
		// A goroutine that parks just now sends ConnParked to a stopped actor: close the
		// connection here, so it never outlives the Forwarder. Closing twice is harmless.
		_ = f.s.conn.Close()
	case *messages.ServeEnded:
		f.handleServeEnded(ctx, m)
	case *messages.ConnParked:
		f.handleParked(ctx, m)
	case *messages.IdleWake:
		f.handleWake(ctx, m)
	case *messages.Drain:
		f.handleDrain(ctx)
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
		f.startIO(ctx)
	case s.parked:
		// Restarted while the IdleWatcher watches the connection: its wake comes here.
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

func (f *Forwarder) startIO(ctx actor.Context) {
	s := f.s
	s.abort, s.drain = make(chan struct{}), make(chan struct{})
	runIO(ioJob{cfg: f.cfg, system: ctx.ActorSystem(), self: ctx.Self(), conn: s.conn, abort: s.abort, drain: s.drain})
}

// ioJob is a connection handed to an I/O goroutine, with what it needs to serve it.
type ioJob struct {
	cfg    *Config
	system *actor.ActorSystem
	self   *actor.PID // the connection's Forwarder
	conn   net.Conn
	abort  <-chan struct{}
	drain  <-chan struct{}
}

// ioWork hands a connection to an I/O goroutine that has finished serving its previous one
// and waits for another (see ioWorker). It is unbuffered: a send succeeds only when such a
// goroutine is waiting.
var ioWork = make(chan ioJob)

// ioWorkerIdle is how long an I/O goroutine waits for another connection before it ends.
const ioWorkerIdle = 2 * time.Second

// runIO serves j on a waiting I/O goroutine, or on a new one. Reusing goroutines matters when
// every request brings a new connection: a new goroutine's stack grows (and is copied) twice on
// the way down to the socket calls, about 7% of the CPU in that profile; a reused one has grown
// already. So does reusing what a goroutine allocated to serve a connection (see clientConn.reset).
func runIO(j ioJob) {
	select {
	case ioWork <- j:
	default:
		go ioWorker(j)
	}
}

// ioWorker serves connections one after the other with one clientConn, which it owns: the
// connection state, head buffers, timer and reply endpoint are made once per goroutine, not once
// per connection. serve recovers its own panics and reports them to its Forwarder; a clientConn
// that panicked is thrown away, so a crash in one connection never reaches the next.
func ioWorker(j ioJob) {
	c := new(clientConn)
	defer func() { c.dispose() }()
	t := time.NewTimer(ioWorkerIdle)
	defer t.Stop()
	for {
		if !c.serve(j) {
			c.dispose()
			c = new(clientConn)
		}
		t.Reset(ioWorkerIdle)
		select {
		case j = <-ioWork:
		case <-t.C:
			return
		}
	}
}

// handleParked takes the connection from an I/O goroutine that ended while it idled, and has
// the IdleWatcher watch it (or closes it when the load balancer drains or this actor stops).
func (f *Forwarder) handleParked(ctx actor.Context, m *messages.ConnParked) {
	s := f.s
	s.parked = true
	s.abort, s.drain = nil, nil
	if s.draining || s.aborted {
		f.closeParked()
		ctx.Stop(ctx.Self())
		return
	}
	// No lease while parked: the Dispatcher can forget this holder until the next pick.
	ctx.Send(f.cfg.Dispatcher, &messages.ForgetHolder{Holder: ctx.Self()})
	ctx.Send(f.cfg.Idle, &messages.WatchIdle{Conn: s.conn.(syscall.Conn), Holder: ctx.Self(), Deadline: m.IdleUntil})
}

// handleWake starts a new I/O goroutine on a parked connection with something to read (or a
// client that hung up: the goroutine sees it), or closes one whose idle timeout passed.
func (f *Forwarder) handleWake(ctx actor.Context, m *messages.IdleWake) {
	s := f.s
	if !s.parked {
		return // a report about a descriptor this connection reused, or a closed one
	}
	if m.Expired {
		f.closeParked()
		ctx.Stop(ctx.Self())
		return
	}
	s.parked = false
	f.startIO(ctx)
}

// closeParked closes a parked connection.
func (f *Forwarder) closeParked() {
	s := f.s
	if s.parked {
		s.parked = false
		s.ioDone = true
		_ = s.conn.Close()
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

func (f *Forwarder) handleDrain(ctx actor.Context) {
	s := f.s
	if s.draining || s.ioDone {
		return
	}
	s.draining = true
	if s.drain != nil {
		close(s.drain)
	}
	if s.parked {
		f.closeParked()
		ctx.Stop(ctx.Self())
		return
	}
	// Wake an idle read; the goroutine re-arms its deadline if a request is in progress.
	_ = s.conn.SetReadDeadline(time.Now())
}

// abortIO makes a running I/O goroutine give up as soon as it can.
func (f *Forwarder) abortIO() {
	s := f.s
	if s.aborted || s.ioDone || !s.started || s.parked {
		return
	}
	s.aborted = true
	if s.abort != nil {
		close(s.abort)
	}
	_ = s.conn.SetDeadline(time.Now())
}
