package lb

import (
	"net/netip"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/acceptor"
	"github.com/loadbalancer/loadbalancer/actors/dispatcher"
	"github.com/loadbalancer/loadbalancer/actors/forwarder"
	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/messages"
)

// The backend table: the supervisor owns it (see messages.BackendSlot). It starts as the
// configured list, changes by ApplyBackends, and goes to the Dispatcher and the HealthMonitor
// as SetBackends, also to one that asks (GetBackends) when it starts again after a crash.

// pendingApply is an ApplyBackends sent on to the children, waiting for their BackendsSet.
type pendingApply struct {
	replyTo            *actor.PID
	dispatcher, health bool // each child's BackendsSet has come
	result             messages.BackendsApplied
}

// initialTable is the table of the start-up configuration.
func initialTable(cfg *Config) []messages.BackendSlot {
	table := make([]messages.BackendSlot, len(cfg.Dispatcher.Backends))
	for i, b := range cfg.Dispatcher.Backends {
		table[i] = messages.BackendSlot{Backend: b, Dial: dialOf(b.Addr, cfg.Acceptor.Forwarder.Resolved)}
	}
	return table
}

// dialOf is where to connect for addr: its resolution, or the address itself.
func dialOf(addr string, resolved map[string]netip.AddrPort) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap
	}
	return resolved[addr]
}

// apply computes the table for m's backends: kept ones get their new settings, new ones are
// appended (or revived at their old index), the others are marked removed.
func (s *Supervisor) apply(m *messages.ApplyBackends) messages.BackendsApplied {
	var res messages.BackendsApplied
	index := make(map[string]int, len(s.table))
	for i, slot := range s.table {
		index[slot.Backend.Addr] = i
	}
	keep := make([]bool, len(s.table))
	for _, b := range m.Backends {
		dial := dialOf(b.Addr, m.Dial)
		i, ok := index[b.Addr]
		if !ok {
			s.table = append(s.table, messages.BackendSlot{Backend: b, Dial: dial})
			keep = append(keep, true)
			index[b.Addr] = len(s.table) - 1
			res.Added = append(res.Added, b.Addr)
			continue
		}
		old := &s.table[i]
		switch {
		case old.Removed:
			res.Added = append(res.Added, b.Addr)
		case old.Backend != b || old.Dial != dial:
			res.Changed = append(res.Changed, b.Addr)
		}
		*old = messages.BackendSlot{Backend: b, Dial: dial}
		keep[i] = true
	}
	for i := range s.table {
		if !keep[i] && !s.table[i].Removed {
			s.table[i].Removed = true
			res.Removed = append(res.Removed, s.table[i].Backend.Addr)
		}
	}
	return res
}

func (s *Supervisor) handleApply(ctx actor.Context, m *messages.ApplyBackends) {
	res := s.apply(m)
	s.pending = append(s.pending, pendingApply{replyTo: m.ReplyTo, result: res})
	table := slices.Clone(s.table) // each child gets its own copy: messages are not shared state
	ctx.Send(s.dispatcher, &messages.SetBackends{Table: table, ReplyTo: ctx.Self()})
	ctx.Send(s.health, &messages.SetBackends{Table: slices.Clone(table), ReplyTo: ctx.Self()})
	s.log.Info("backends applied", "added", res.Added, "removed", res.Removed, "changed", res.Changed)
}

// handleSet takes a child's BackendsSet for its oldest apply not yet answered (a child handles
// its SetBackends in the order sent); applies both children have answered are done, in order.
func (s *Supervisor) handleSet(ctx actor.Context, from *actor.PID) {
	for i := range s.pending {
		p := &s.pending[i]
		if from.Equal(s.dispatcher) && !p.dispatcher {
			p.dispatcher = true
			break
		}
		if from.Equal(s.health) && !p.health {
			p.health = true
			break
		}
	}
	s.answerApplied(ctx)
}

// settled counts every pending apply as answered by child, which has started again and asked
// for the table (GetBackends): it gets the latest, and no answer to what it lost.
func (s *Supervisor) settled(ctx actor.Context, child *actor.PID) {
	for i := range s.pending {
		p := &s.pending[i]
		p.dispatcher = p.dispatcher || child.Equal(s.dispatcher)
		p.health = p.health || child.Equal(s.health)
	}
	s.answerApplied(ctx)
}

// answerApplied answers the applies at the head of the line that both children have applied.
func (s *Supervisor) answerApplied(ctx actor.Context) {
	for len(s.pending) > 0 && s.pending[0].dispatcher && s.pending[0].health {
		if p := s.pending[0]; p.replyTo != nil {
			res := p.result
			ctx.Send(p.replyTo, &res)
		}
		s.pending = s.pending[1:]
	}
}

// handleSettings passes a reload's settings on to the children that own them, with the PIDs
// each needs, and answers at once: each applies them to what follows.
func (s *Supervisor) handleSettings(ctx actor.Context, m *messages.ApplySettings) {
	if d, ok := m.Dispatcher.(*dispatcher.Config); ok {
		dcfg := *d
		dcfg.Health, dcfg.Logger = s.health, s.cfg.Logger
		s.dcfg = &dcfg
		sent := dcfg
		ctx.Send(s.dispatcher, &messages.Reconfigure{Config: &sent})
	}
	if h, ok := m.Health.(*health.Config); ok {
		hcfg := *h
		hcfg.Dispatcher, hcfg.Logger = s.dispatcher, s.cfg.Logger
		s.hcfg = &hcfg
		sent := hcfg
		ctx.Send(s.health, &messages.Reconfigure{Config: &sent})
	}
	acfg := &acceptor.Config{MaxConns: m.MaxConns}
	if f, ok := m.Forwarder.(*forwarder.Config); ok {
		fcfg := *f
		fcfg.Dispatcher, fcfg.Logger = s.dispatcher, s.cfg.Logger
		acfg.Forwarder = &fcfg
	}
	ctx.Send(s.acceptor, &messages.Reconfigure{Config: acfg})
	if m.ReplyTo != nil {
		ctx.Send(m.ReplyTo, &messages.SettingsApplied{})
	}
}
