package dispatcher

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/loadbalancer/loadbalancer/messages"
)

// backend is the Dispatcher's view of one upstream server (its Candidate is kept beside it, in
// Dispatcher.cands, as the policy reads it).
type backend struct {
	addr    string
	dial    netip.AddrPort // where to connect (zero: the Forwarder resolves addr)
	limit   int            // its cap on requests in flight (0: none)
	backup  bool           // a backup: used only while no primary backend is usable
	removed bool           // no longer configured: takes no request, drains (see table.go)
	pending bool           // added at run time, not covered by a health report yet
	own     int            // its own MaxInFlight (0: the global cap applies; limit is the result)
	probed  bool           // a health report has covered it
	reason  string         // why it is down, for logs
	// since is when it last went up, down or into ejection (start-up until then), and
	// ejectReason why it was ejected; ejectedTotal counts its ejections since start-up.
	since        time.Time
	ejectReason  string
	ejectedTotal uint64

	// Passive health: consecutive failures of real requests by kind (reset by a success of
	// that kind), and the ejection state (see eject.go).
	run5xx, runConnect, runTimeout int
	ejected                        bool
	stallEjected                   bool // ejected for a stall: a health round may end it early
	ejectedAt, ejectedUntil        time.Time
	ejections                      int       // ejections in a row (the multiplier)
	returnedAt                     time.Time // when the last ejection ended

	// lastAnswer is when the backend last answered a request (a release with a response), and
	// overdue how many leases still in flight on it have asked CheckLease since (counted in the
	// epoch answers, the number of answers so far).
	lastAnswer time.Time
	overdue    int
	answers    uint64
	// lat is the peak-EWMA of request latency in nanoseconds, as of latAt.
	lat   float64
	latAt time.Time
	// slowUntil is when slow start ends (zero: not ramping); slowFrom when it began.
	slowFrom, slowUntil time.Time
}

// holder is a Forwarder with a connection in use, from its first pick until ForgetHolder. It
// holds at most one lease at a time (a connection serves its requests one after the other).
type holder struct {
	pid   *actor.PID
	lease messages.Lease
	// picked is the reply reused for every grant to this holder (it reads it before its next
	// pick): no allocation per request.
	picked messages.BackendPicked
	// waiting is true while a pick of this holder sits in the queue, in the entry numbered
	// waitSeq.
	waiting bool
	waitSeq uint64
	// key and hasKey are the current pick's hash key.
	key    uint64
	hasKey bool
	// tried lists the backends the current request has been granted, so a retry goes elsewhere.
	tried []int
	// checked: the current lease has asked CheckLease (it waited its CheckAfter unanswered).
	checked    bool
	checkEpoch uint64 // its backend's answers when it was counted overdue
}

// Dispatcher is the actor; all its fields are owned by its Receive.
type Dispatcher struct {
	cfg    *Config
	log    *slog.Logger
	policy Policy
	timers *scheduler.TimerScheduler
	self   *actor.PID

	backends []backend
	cands    []Candidate // parallel to backends; what the policy sees
	inUse    int         // slots of the N budget in use
	leaseSeq uint64
	picks    uint64
	holders  map[string]*holder // keyed by PID.Id
	queue    waitQueue

	ready bool // the first health report came (or the wait for it ended)
	// hasBackup: some backend is a backup; primaryUsable: some backend that is not one is up
	// and not ejected (while so, the backups take nothing). See refreshBackups.
	hasBackup, primaryUsable bool
	// live is how many backends are configured (not removed).
	live     int
	ejected  int    // backends ejected now
	ramping  int    // backends in slow start now
	waitSeq  uint64 // numbers queue entries
	waitingN int    // live entries in the queue (the queue also holds dead ones)

	// queueWait is how long queued picks waited for their answer (StatsRequest).
	queueWait messages.Histogram

	queueTimerGen    uint64
	queueTimerCancel scheduler.CancelFunc
	ejectGen         uint64
	ejectCancel      scheduler.CancelFunc
	ejectAt          time.Time // when the armed ejection timer fires
	startupGen       uint64
	startupCancel    scheduler.CancelFunc
	lateReplies      *eventstream.Subscription
}

// New returns a producer for a Dispatcher with cfg, which must not change afterwards (and must
// be valid: see Config.Validate).
func New(cfg *Config) actor.Producer {
	return func() actor.Actor {
		policy, err := NewPolicy(cfg.Policy)
		if err != nil {
			panic(err) // Validate reports it before anything is spawned
		}
		d := &Dispatcher{
			cfg:      cfg,
			log:      cfg.logger().With("actor", "dispatcher"),
			policy:   policy,
			backends: make([]backend, len(cfg.Backends)),
			cands:    make([]Candidate, len(cfg.Backends)),
			holders:  make(map[string]*holder),
			ready:    cfg.HealthTimeout <= 0,
			// Timer generations count from a random base per incarnation: the PID and the
			// mailbox survive a restart, so a timer of the previous incarnation may still
			// arrive, and must match nothing here.
			queueTimerGen: rand.Uint64() >> 1,
			ejectGen:      rand.Uint64() >> 1,
			startupGen:    rand.Uint64() >> 1,
		}
		now := time.Now()
		for i, b := range cfg.Backends {
			d.backends[i].addr, d.backends[i].since = b.Addr, now
			d.backends[i].own, d.backends[i].backup = b.MaxInFlight, b.Backup
			d.backends[i].limit = cfg.limitOf(b)
			d.hasBackup = d.hasBackup || b.Backup
			w := max(b.Weight, 1)
			d.cands[i] = Candidate{Up: true, Weight: w, Eff: float64(w)} // not yet probed counts as up
			d.refresh(i)
		}
		d.live = len(cfg.Backends)
		d.refreshBackups()
		return d
	}
}

// Props returns the Dispatcher's props: New(cfg), run inline.
func Props(cfg *Config) *actor.Props {
	return actor.PropsFromProducer(New(cfg), actor.WithDispatcher(inline))
}

// inline runs the Dispatcher's mailbox on the goroutine of whoever sends to it while it is idle,
// up to 300 messages before that goroutine yields (protoactor's synchronized dispatcher); one
// that arrives while the mailbox runs is handled by the goroutine already running it. The
// mailbox still lets one goroutine at a time into Receive, so the Dispatcher keeps its state to
// itself as before.
//
// Nearly every pick comes from a Forwarder on an event loop. Run inline, the pick is handled at
// once on the loop's thread and the answer is in the loop's inbox before the loop looks: no
// goroutine is woken to run the mailbox and no thread to take the answer, where a mailbox
// goroutine of its own cost two hand-offs per request (BenchmarkPickRelease compares the two). This is safe because Receive never blocks (house rule 1): a sender pays for the
// messages it handles, a microsecond or two each, never for a wait.
var inline = actor.NewSynchronizedDispatcher(300)

// Receive implements actor.Actor.
func (d *Dispatcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		d.handleStopping(ctx)
	case *messages.ForgetHolder:
		d.handleForget(ctx, m)
	case *messages.PickBackend:
		d.handlePick(ctx, m)
	case *messages.ReleaseLease:
		d.handleRelease(ctx, m)
	case *messages.CheckLease:
		d.handleCheckLease(ctx, m)
	case *messages.HealthReport:
		d.handleHealthReport(ctx, m)
	case *messages.QueueDeadline:
		d.handleQueueDeadline(ctx, m)
	case *messages.EjectionDue:
		d.handleEjectionDue(ctx, m)
	case *messages.StartupDue:
		d.handleStartupDue(ctx, m)
	case *messages.StatsRequest:
		ctx.Send(m.ReplyTo, d.stats())
	case *messages.SetBackends:
		d.handleSetBackends(ctx, m)
	case *messages.Reconfigure:
		if cfg, ok := m.Config.(*Config); ok {
			d.reconfigure(ctx, cfg)
		}
	}
}

func (d *Dispatcher) handleStarted(ctx actor.Context) {
	d.timers = scheduler.NewTimerScheduler(ctx)
	d.self = ctx.Self()
	d.lateReplies = settleUndelivered(ctx.ActorSystem(), ctx.Self())
	if p := ctx.Parent(); p != nil {
		// The table may have changed since start-up (a reload): the supervisor has it.
		ctx.Send(p, &messages.GetBackends{ReplyTo: d.self})
	}
	if !d.ready {
		d.startupCancel = d.timers.SendOnce(d.cfg.HealthTimeout, d.self, &messages.StartupDue{Gen: d.startupGen})
	}
}

func (d *Dispatcher) handlePick(ctx actor.Context, m *messages.PickBackend) {
	h := d.holderFor(m.Holder)
	h.key, h.hasKey = m.Key, m.HasKey
	if !m.Retry {
		h.tried = h.tried[:0]
	}
	if m.Release.Lease.ID != 0 {
		released := d.release(h, &m.Release)
		if m.Retry && released && d.ready {
			// The same request tries again: it takes its slot back before any waiter can,
			// on a backend it has not tried yet.
			if b := d.choose(h); b >= 0 {
				d.grant(ctx, h, m.ReplyTo, b)
				d.serveQueue(ctx) // its old backend has room now
				return
			}
			if !d.usable(h) {
				ctx.Send(m.ReplyTo, noBackendDown)
				d.serveQueue(ctx)
				return
			}
			// Every other backend is at its cap: wait like any other pick.
		}
	}
	if h.lease.ID != 0 {
		// A holder has one request at a time; a pick without releasing the previous lease
		// means the previous exchange is over without a word. Take the slot back.
		d.release(h, &messages.Release{Lease: h.lease, Outcome: messages.OutcomeNone})
	}
	d.serveQueue(ctx)
	if !d.ready {
		d.enqueue(ctx, h, m.ReplyTo)
		return
	}
	b := d.choose(h)
	switch {
	case b >= 0 && d.inUse < d.cfg.n():
		// A slot is free after serveQueue, so whoever still waits waits for a backend at its
		// cap that this request does not need: FIFO order is kept.
		d.grant(ctx, h, m.ReplyTo, b)
	case b < 0 && !d.usable(h):
		ctx.Send(m.ReplyTo, noBackendDown)
	default:
		// Every slot is in use, or every usable backend is at its cap.
		d.enqueue(ctx, h, m.ReplyTo)
	}
}

// enqueue puts h's pick at the back of the queue, or answers it at once when the queue is full.
func (d *Dispatcher) enqueue(ctx actor.Context, h *holder, replyTo *actor.PID) {
	if d.waitingN >= d.cfg.maxQueue() || h.waiting {
		ctx.Send(replyTo, noBackendQueueFull)
		return
	}
	h.waiting = true
	d.waitingN++
	d.waitSeq++
	h.waitSeq = d.waitSeq
	d.queue.push(waiter{holder: h, seq: h.waitSeq, replyTo: replyTo, deadline: time.Now().Add(d.cfg.queueTimeout())})
	d.armQueueTimer(ctx)
}

// choose asks the policy for a backend for h's request, among the available ones it has not
// tried, after bringing slow-start weights up to date.
func (d *Dispatcher) choose(h *holder) int {
	if d.ramping > 0 {
		d.ramp(time.Now())
	}
	for _, b := range h.tried {
		d.cands[b].Avail = false
	}
	b := d.policy.Choose(d.cands, h.key, h.hasKey)
	for _, t := range h.tried {
		d.refresh(t)
	}
	return b
}

// usable reports whether some backend is up, not ejected and not yet tried by h's request: one
// that can take it once it is below its cap.
func (d *Dispatcher) usable(h *holder) bool {
	for i := range d.cands {
		be := &d.backends[i]
		// A backend added at run time and not checked yet is usable too: a request waits for
		// its check rather than failing at once (as every request does at start-up).
		if (d.cands[i].Up || be.pending) && !be.ejected && !be.removed && !h.hasTried(i) && d.inRotation(i) {
			return true
		}
	}
	return false
}

// inRotation reports whether backend b may take requests as far as backups go: a primary
// always, a backup only while no primary is usable.
func (d *Dispatcher) inRotation(b int) bool {
	return !d.backends[b].backup || !d.primaryUsable
}

// refreshBackups recomputes whether a primary backend is usable and, when that changed, which
// backups are available. Called wherever a backend goes up, down, into or out of ejection.
func (d *Dispatcher) refreshBackups() {
	if !d.hasBackup {
		return
	}
	usable := false
	for i := range d.cands {
		if !d.backends[i].backup && d.cands[i].Up && !d.backends[i].ejected && !d.backends[i].removed {
			usable = true
			break
		}
	}
	if usable == d.primaryUsable {
		return
	}
	d.primaryUsable = usable
	for i := range d.backends {
		if d.backends[i].backup {
			d.refresh(i)
		}
	}
	if !usable {
		d.log.Warn("no primary backend is usable; the backups take the requests")
	} else {
		d.log.Info("a primary backend is usable again; the backups take no new requests")
	}
}

// hasTried reports whether h's current request has been granted backend b.
func (h *holder) hasTried(b int) bool {
	for _, t := range h.tried {
		if t == b {
			return true
		}
	}
	return false
}

// refresh recomputes whether backend b is available to the policy.
func (d *Dispatcher) refresh(b int) {
	c := &d.cands[b]
	be := &d.backends[b]
	c.Avail = c.Up && !be.ejected && !be.removed && (be.limit <= 0 || c.InFlight < be.limit) && d.inRotation(b)
}

func (d *Dispatcher) handleRelease(ctx actor.Context, m *messages.ReleaseLease) {
	h, ok := d.holders[m.Holder.Id]
	if !ok {
		// Forgotten already (a ForgetHolder from the Acceptor overtook the release) and its
		// slot freed; what the release says of the backend, and the connection it gives
		// back, still count.
		d.judge(&m.Release)
		return
	}
	if d.release(h, &m.Release) {
		d.serveQueue(ctx)
	}
}

// handleForget releases the lease of a holder that is gone or idle, and forgets it.
func (d *Dispatcher) handleForget(ctx actor.Context, m *messages.ForgetHolder) {
	h, ok := d.holders[m.Holder.Id]
	if !ok {
		return
	}
	delete(d.holders, m.Holder.Id)
	if h.waiting {
		d.waitingN--
	}
	h.waiting = false // its queue entry is skipped when reached
	if h.lease.ID != 0 {
		d.release(h, &messages.Release{Lease: h.lease, Outcome: messages.OutcomeClientFailed})
		d.serveQueue(ctx)
	}
}

func (d *Dispatcher) holderFor(pid *actor.PID) *holder {
	if h, ok := d.holders[pid.Id]; ok {
		return h
	}
	h := &holder{pid: pid}
	d.holders[pid.Id] = h
	return h
}

// grant gives holder h a slot on backend b and answers replyTo.
func (d *Dispatcher) grant(ctx actor.Context, h *holder, replyTo *actor.PID, b int) {
	d.inUse++
	d.leaseSeq++
	be := &d.backends[b]
	c := &d.cands[b]
	c.Entries++
	c.InFlight++
	d.refresh(b)
	h.lease = messages.Lease{ID: d.leaseSeq, Backend: b}
	h.checked = false
	h.tried = append(h.tried, b)
	h.picked = messages.BackendPicked{Lease: h.lease, Holder: h.pid, Addr: be.addr, Dial: be.dial, CheckAfter: d.checkAfter(b)}
	ctx.Send(replyTo, &h.picked)
	d.picks++
	if d.picks%d.cfg.r() == 0 && d.cfg.Health != nil && !d.cfg.NoHealthNotices {
		ctx.Send(d.cfg.Health, healthCheckDue)
	}
}

// release applies a Release sent by h and frees its slot. It reports whether the lease was h's
// current one; a stale or unknown lease changes nothing.
func (d *Dispatcher) release(h *holder, r *messages.Release) bool {
	if r.Lease.ID == 0 || r.Lease.ID != h.lease.ID || r.Lease.Backend >= len(d.backends) {
		return false
	}
	h.lease = messages.Lease{}
	b := r.Lease.Backend
	if be := &d.backends[b]; h.checked && h.checkEpoch == be.answers && be.overdue > 0 {
		be.overdue-- // it no longer waits
	}
	h.checked = false
	d.cands[b].InFlight--
	d.refresh(b)
	if be := &d.backends[b]; be.removed && d.cands[b].InFlight == 0 {
		d.log.Info("backend drained", "backend", be.addr)
	}
	d.freeSlot()
	d.judge(r)
	return true
}

// judge learns from the outcome of a request on its backend: its latency, and whether it failed
// (see passive in eject.go).
func (d *Dispatcher) judge(r *messages.Release) {
	b := r.Lease.Backend
	if b < 0 || b >= len(d.backends) {
		return
	}
	switch r.Outcome {
	case messages.OutcomeNone, messages.OutcomeClientFailed, messages.OutcomeAbandoned:
		return
	case messages.OutcomeConnectFailed, messages.OutcomeTimeout:
		if d.cfg.ClassicFailures {
			reason := "connect failed"
			if r.Outcome == messages.OutcomeTimeout {
				reason = "response timeout"
			}
			d.markDown(b, reason)
			return
		}
	case messages.OutcomeOK:
		now := time.Now()
		be := &d.backends[b]
		be.lastAnswer, be.overdue = now, 0
		be.answers++
		if r.Latency > 0 {
			d.sample(b, now, r.Latency)
		}
	}
	d.passive(b, r)
}

// sample adds one latency sample to backend b's peak-EWMA: a sample above the estimate replaces
// it at once (peaks count in full), one below pulls it down with a weight that grows with the
// time since the last sample (latencyDecay).
func (d *Dispatcher) sample(b int, now time.Time, rtt time.Duration) {
	be := &d.backends[b]
	s := float64(rtt)
	if s > be.lat || be.latAt.IsZero() {
		be.lat = s
	} else {
		w := decayWeight(now.Sub(be.latAt))
		be.lat = be.lat*w + s*(1-w)
	}
	be.latAt = now
	d.cands[b].Latency = time.Duration(be.lat)
}

func (d *Dispatcher) freeSlot() {
	if d.inUse > 0 {
		d.inUse--
	}
}

// serveQueue grants free slots to waiting picks, oldest first. A waiter whose request has no
// available backend now, but a usable one at its cap, stays in the queue and the ones behind it
// are served past it; one for which no backend is usable at all gets NoBackendDown.
func (d *Dispatcher) serveQueue(ctx actor.Context) {
	if !d.ready {
		return
	}
	d.queue.dropDeadHead()
	for i := 0; i < d.queue.len() && d.inUse < d.cfg.n(); i++ {
		if !d.anyAvail() && d.anyUp() {
			break // every usable backend is at its cap: all wait for room
		}
		w := d.queue.at(i)
		if !w.live() {
			continue
		}
		b := d.choose(w.holder)
		if b < 0 && d.usable(w.holder) {
			continue // waits for its backend to have room
		}
		w.holder.waiting = false
		d.waitingN--
		d.queueWait.Observe(time.Since(w.deadline) + d.cfg.queueTimeout())
		if b < 0 {
			ctx.Send(w.replyTo, noBackendDown)
		} else {
			d.grant(ctx, w.holder, w.replyTo, b)
		}
	}
	d.queue.dropDeadHead()
	if d.queue.len() > 64 && d.queue.len() > 2*d.waitingN {
		d.queue.compact()
	}
}

// anyUp reports whether some backend is up and not ejected.
func (d *Dispatcher) anyUp() bool { return d.otherUsable(-1) }

// anyAvail reports whether some backend can take a request now.
func (d *Dispatcher) anyAvail() bool {
	for i := range d.cands {
		if d.cands[i].Avail {
			return true
		}
	}
	return false
}

func (d *Dispatcher) armQueueTimer(ctx actor.Context) {
	if d.queueTimerCancel != nil || d.queue.len() == 0 {
		return
	}
	d.queueTimerGen++
	wait := time.Until(d.queue.head().deadline)
	d.queueTimerCancel = d.timers.SendOnce(wait, ctx.Self(), &messages.QueueDeadline{Gen: d.queueTimerGen})
}

func (d *Dispatcher) handleQueueDeadline(ctx actor.Context, m *messages.QueueDeadline) {
	if m.Gen != d.queueTimerGen {
		return
	}
	d.queueTimerCancel = nil
	now := time.Now()
	for d.queue.len() > 0 {
		w := *d.queue.head()
		if w.live() && w.deadline.After(now) {
			break
		}
		d.queue.pop()
		if w.live() {
			w.holder.waiting = false
			d.waitingN--
			d.queueWait.Observe(now.Sub(w.deadline) + d.cfg.queueTimeout())
			ctx.Send(w.replyTo, noBackendQueueTimeout)
		}
	}
	d.serveQueue(ctx) // the ones that waited ahead may have held others back
	d.armQueueTimer(ctx)
}

func (d *Dispatcher) handleStopping(ctx actor.Context) {
	if d.lateReplies != nil {
		ctx.ActorSystem().EventStream.Unsubscribe(d.lateReplies)
		d.lateReplies = nil
	}
	for _, cancel := range []*scheduler.CancelFunc{&d.queueTimerCancel, &d.ejectCancel, &d.startupCancel} {
		if *cancel != nil {
			(*cancel)()
			*cancel = nil
		}
	}
	d.queueTimerGen++
	d.ejectGen++
	for d.queue.len() > 0 {
		w := d.queue.pop()
		if w.live() {
			w.holder.waiting = false
			d.waitingN--
			ctx.Send(w.replyTo, noBackendStopping)
		}
	}
}

// settleUndelivered settles every BackendPicked that went to dead letters: its ReplyTo was gone
// (the Forwarder gave up on the pick, or stopped, before the grant went out): its holder is
// forgotten, which gives the lease back: the holder's connection is ending, and the
// Acceptor's ForgetHolder may have come before the pick. The handler runs on the sending
// goroutine, whichever is running the Dispatcher, inside its Receive, so it touches only the
// message and sends the ForgetHolder to self (handled after the message in hand). The event
// stream is the system's: with several Dispatchers each forgets the holder, and only the one
// that knows it has anything to do.
func settleUndelivered(sys *actor.ActorSystem, self *actor.PID) *eventstream.Subscription {
	return sys.EventStream.SubscribeWithPredicate(func(e any) {
		p := e.(*actor.DeadLetterEvent).Message.(*messages.BackendPicked)
		if p.Holder != nil {
			sys.Root.Send(self, &messages.ForgetHolder{Holder: p.Holder})
		}
	}, func(e any) bool {
		dl, ok := e.(*actor.DeadLetterEvent)
		if !ok {
			return false
		}
		_, ok = dl.Message.(*messages.BackendPicked)
		return ok
	})
}

// Replies that carry no data are shared: messages are immutable, so one value serves all.
var (
	noBackendDown         = &messages.NoBackend{Reason: messages.NoBackendDown}
	noBackendQueueFull    = &messages.NoBackend{Reason: messages.NoBackendQueueFull}
	noBackendQueueTimeout = &messages.NoBackend{Reason: messages.NoBackendQueueTimeout}
	noBackendStopping     = &messages.NoBackend{Reason: messages.NoBackendStopping}
	healthCheckDue        = &messages.HealthCheckDue{}
)
