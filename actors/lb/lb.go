// Package lb implements the supervisor at the top of the load balancer: it starts the
// Dispatcher, the HealthMonitor and the Acceptor in that order
// (protoactor stops children in reverse on shutdown), restarts one that fails within a budget
// (except the Acceptor, which it resumes: see childStrategy), and runs a graceful drain.
//
// Messages it takes: *messages.Drain from main (passed to the Acceptor with itself as ReplyTo;
// *messages.Drained goes back to the original ReplyTo when the last connection is gone);
// *messages.ApplyBackends from main's controller (a reload, the runtime API), which changes the
// backend table it owns and goes on to the Dispatcher and the HealthMonitor as SetBackends
// (their *messages.BackendsSet make its *messages.BackendsApplied answer); *messages.GetBackends
// from a child that starts again (answered with the table, and the last reload's settings);
// *messages.ApplySettings from main's reload, passed on as *messages.Reconfigure to the
// Dispatcher, the HealthMonitor and the Acceptor (answered with *messages.SettingsApplied).
package lb

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/acceptor"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Config wires the actors. The lb fills in the PIDs each one needs of the others.
type Config struct {
	Dispatcher dispatcher.Config
	Health     health.Config
	Acceptor   acceptor.Config
	Logger     *slog.Logger
}

// Supervisor is the lb actor.
type Supervisor struct {
	cfg      *Config
	log      *slog.Logger
	acceptor *actor.PID
	// The backend table and where it goes (table.go); pending are the ApplyBackends waiting for
	// both children's BackendsSet.
	table              []messages.BackendSlot
	dispatcher, health *actor.PID
	pending            []pendingApply
	// dcfg and hcfg are the last reload's settings of the Dispatcher and the HealthMonitor (nil
	// before one), sent again to one that starts again.
	dcfg     *dispatcher.Config
	hcfg     *health.Config
	drainTo  *actor.PID
	stopping bool
}

// Props returns the supervisor's props. Its children get a restart on failure, at most 10 in a
// minute; past that they are stopped, and the log says so. The Acceptor is resumed instead (see
// childStrategy).
func Props(cfg *Config) *actor.Props {
	strategy := newChildStrategy()
	return actor.PropsFromProducer(func() actor.Actor {
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		return &Supervisor{cfg: cfg, log: log.With("actor", "lb"), table: initialTable(cfg)}
	}, actor.WithSupervisor(strategy))
}

// childStrategy restarts a failed child, except the Acceptor, which is resumed: its state (the
// listener, the event loops and every connection on them, the counts) lives outside the actor
// and stays valid across a panic in its Receive, so there is nothing a restart would renew; the
// message that caused the panic is dropped.
type childStrategy struct {
	restart, resume actor.SupervisorStrategy
}

func newChildStrategy() childStrategy {
	return childStrategy{
		restart: actor.NewOneForOneStrategy(10, time.Minute, func(any) actor.Directive { return actor.RestartDirective }),
		resume:  actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.ResumeDirective }),
	}
}

// acceptorName is the Acceptor's name under the supervisor.
const acceptorName = "acceptor"

func (c childStrategy) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	if strings.HasSuffix(child.Id, "/"+acceptorName) {
		c.resume.HandleFailure(sys, sup, child, rs, reason, message)
		return
	}
	c.restart.HandleFailure(sys, sup, child, rs, reason, message)
}

// Receive implements actor.Actor.
func (s *Supervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.handleStarted(ctx)
	case *messages.Drain:
		s.drainTo = m.ReplyTo
		ctx.Send(s.acceptor, &messages.Drain{Deadline: m.Deadline, ReplyTo: ctx.Self()})
	case *messages.Drained:
		if s.drainTo != nil {
			ctx.Send(s.drainTo, m)
		}
	case *messages.ApplyBackends:
		s.handleApply(ctx, m)
	case *messages.BackendsSet:
		s.handleSet(ctx, m.From)
	case *messages.ApplySettings:
		s.handleSettings(ctx, m)
	case *messages.GetBackends:
		// A child that started again: the table, and a reload's settings if there was one.
		ctx.Send(m.ReplyTo, &messages.SetBackends{Table: slices.Clone(s.table)})
		s.settled(ctx, m.ReplyTo)
		switch {
		case m.ReplyTo.Equal(s.dispatcher) && s.dcfg != nil:
			dcfg := *s.dcfg // each message its own copy
			ctx.Send(m.ReplyTo, &messages.Reconfigure{Config: &dcfg})
		case m.ReplyTo.Equal(s.health) && s.hcfg != nil:
			hcfg := *s.hcfg
			ctx.Send(m.ReplyTo, &messages.Reconfigure{Config: &hcfg})
		}
	case *actor.Stopping:
		s.stopping = true
	case *actor.Terminated:
		if !s.stopping {
			s.log.Error("actor stopped after repeated failures", "child", m.Who.Id)
		}
	}
}

func (s *Supervisor) handleStarted(ctx actor.Context) {
	// The HealthMonitor's address is known before it exists, so the Dispatcher (spawned first,
	// it must be up before any probe reports) can be told where to send R-request notices.
	healthPID := actor.NewPID(ctx.Self().Address, ctx.Self().Id+"/health")
	dcfg := s.cfg.Dispatcher
	dcfg.Health = healthPID
	dcfg.Logger = s.cfg.Logger
	d, err := ctx.SpawnNamed(dispatcher.Props(&dcfg), "dispatcher")
	if err != nil {
		panic(err)
	}
	s.dispatcher, s.health = d, healthPID
	hcfg := s.cfg.Health
	hcfg.Dispatcher = d
	hcfg.Logger = s.cfg.Logger
	if _, err := ctx.SpawnNamed(health.Props(&hcfg), "health"); err != nil {
		panic(err)
	}
	acfg := s.cfg.Acceptor
	fcfg := *acfg.Forwarder
	fcfg.Dispatcher = d
	fcfg.Logger = s.cfg.Logger
	acfg.Forwarder = &fcfg
	acfg.Logger = s.cfg.Logger
	s.acceptor, err = ctx.SpawnNamed(acceptor.Props(&acfg), acceptorName)
	if err != nil {
		panic(err)
	}
}
