package idle

import (
	"container/heap"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Config configures the IdleWatcher.
type Config struct {
	// Logger receives a failure to set up epoll (Error) and connections it could not register
	// (Debug). A crash is not logged here: the IdleWatcher panics and its supervisor decides.
	// Nil discards.
	Logger *slog.Logger
}

// watch is one watched connection.
type watch struct {
	conn     syscall.Conn
	holder   *actor.PID
	deadline time.Time
	fd       int32
	index    int // in the deadline heap
}

// Watcher is the IdleWatcher actor; its fields are owned by Receive.
type Watcher struct {
	log     *slog.Logger
	p       *poller // nil when epoll could not be set up: every watch wakes at once
	self    *actor.PID
	timers  *scheduler.TimerScheduler
	watched map[int32]*watch
	byTime  deadlines

	timerGen    uint64
	timerCancel scheduler.CancelFunc
	timerAt     time.Time
}

// Props returns the IdleWatcher's props.
func Props(cfg *Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		return &Watcher{log: log.With("actor", "idle"), watched: make(map[int32]*watch)}
	})
}

// Receive implements actor.Actor.
func (w *Watcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		w.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		w.handleStopping(ctx)
	case *messages.WatchIdle:
		w.handleWatch(ctx, m)
	case *messages.IdleReady:
		w.handleReady(ctx, m)
	case *messages.IdleDeadline:
		w.handleDeadline(ctx, m)
	case *messages.IdlePollFailed:
		if w.p != nil {
			w.p.stop()
			w.p = nil
		}
		if m.Panic != nil {
			panic(fmt.Sprintf("idle: poll goroutine panicked: %v\n%s", m.Panic, m.Stack))
		}
		panic(fmt.Sprintf("idle: %v", m.Err))
	}
}

func (w *Watcher) handleStarted(ctx actor.Context) {
	w.self = ctx.Self()
	w.timers = scheduler.NewTimerScheduler(ctx)
	p, err := newPoller()
	if err != nil {
		w.log.Error("cannot watch idle connections; they keep a goroutine each", "err", err)
		return
	}
	w.p = p
	go p.run(ctx.ActorSystem(), ctx.Self())
}

// handleStopping wakes every watched connection (after a restart nothing would) and stops the
// poll goroutine.
func (w *Watcher) handleStopping(ctx actor.Context) {
	for fd, wt := range w.watched {
		ctx.Send(wt.holder, messages.IdleReadable)
		delete(w.watched, fd)
	}
	w.byTime = nil
	if w.timerCancel != nil {
		w.timerCancel()
		w.timerCancel = nil
	}
	if w.p != nil {
		w.p.stop()
		w.p = nil
	}
}

func (w *Watcher) handleWatch(ctx actor.Context, m *messages.WatchIdle) {
	if w.p == nil {
		ctx.Send(m.Holder, messages.IdleReadable)
		return
	}
	fd, err := w.p.add(m.Conn)
	if err != nil {
		// Closed by its Forwarder since (it will ignore the wake), or the kernel refused the
		// registration: the Forwarder then waits with a goroutine, as without a watcher.
		w.log.Debug("cannot watch an idle connection", "err", err)
		ctx.Send(m.Holder, messages.IdleReadable)
		return
	}
	if old := w.watched[fd]; old != nil {
		// Its connection was closed while watched, and the descriptor reused.
		w.forget(old)
	}
	wt := &watch{conn: m.Conn, holder: m.Holder, deadline: m.Deadline, fd: fd}
	w.watched[fd] = wt
	heap.Push(&w.byTime, wt)
	w.armTimer()
}

func (w *Watcher) handleReady(ctx actor.Context, m *messages.IdleReady) {
	for _, fd := range m.Fds {
		if wt := w.watched[fd]; wt != nil {
			w.forget(wt)
			ctx.Send(wt.holder, messages.IdleReadable)
		}
	}
	w.armTimer()
}

func (w *Watcher) handleDeadline(ctx actor.Context, m *messages.IdleDeadline) {
	if m.Gen != w.timerGen {
		return
	}
	w.timerCancel = nil
	now := time.Now()
	for len(w.byTime) > 0 && !w.byTime[0].deadline.After(now) {
		wt := w.byTime[0]
		w.forget(wt)
		ctx.Send(wt.holder, messages.IdleExpired)
	}
	w.armTimer()
}

// forget drops a watch from the table and the heap. Its registration stays in the epoll set,
// disabled (one-shot), until the socket closes or the next watch re-arms it.
func (w *Watcher) forget(wt *watch) {
	if w.watched[wt.fd] == wt {
		delete(w.watched, wt.fd)
	}
	heap.Remove(&w.byTime, wt.index)
}

// armTimer makes sure a timer fires by the earliest deadline.
func (w *Watcher) armTimer() {
	if len(w.byTime) == 0 {
		return
	}
	at := w.byTime[0].deadline
	if w.timerCancel != nil {
		if !at.Before(w.timerAt) {
			return
		}
		w.timerCancel()
	}
	w.timerGen++
	w.timerAt = at
	w.timerCancel = w.timers.SendOnce(time.Until(at), w.self, &messages.IdleDeadline{Gen: w.timerGen})
}

// deadlines is a min-heap of watches by deadline (container/heap).
type deadlines []*watch

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h deadlines) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *deadlines) Push(x any) {
	wt := x.(*watch)
	wt.index = len(*h)
	*h = append(*h, wt)
}
func (h *deadlines) Pop() any {
	old := *h
	wt := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return wt
}
