package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Snapshot is what the owners answered to one StatsRequest each, taken at At. A field is nil
// when its owner did not answer in time (or, for AccessLog, when there is no access log).
type Snapshot struct {
	At         time.Time
	Dispatcher *messages.DispatcherStats
	Health     *messages.HealthStats
	Conns      *messages.ConnStats
	// Traffic is the sum of every event loop's counts (valid when Conns is set and every loop
	// answered).
	Traffic  messages.TrafficStats
	AccessLg *messages.AccessLogStats
}

// errIncomplete says some owner did not answer a snapshot in time.
var errIncomplete = errors.New("admin: some actors did not answer in time")

// gather asks every owner for its counts and waits up to timeout for the answers. The answers
// land on a reply endpoint of its own (no future, no shared state); a late one is dropped with
// the endpoint. It returns what came, with errIncomplete when something is missing.
func gather(sys *actor.ActorSystem, t *Targets, timeout time.Duration) (*Snapshot, error) {
	ep := reply.New(sys, 64)
	defer ep.Close()
	req := &messages.StatsRequest{ReplyTo: ep.PID()}
	sys.Root.Send(t.Dispatcher, req)
	sys.Root.Send(t.Health, req)
	sys.Root.Send(t.Acceptor, req)
	if t.AccessLog != nil {
		sys.Root.Send(t.AccessLog, req)
	}
	s := &Snapshot{}
	// The loops answer on their own threads, so their LoopStats may come before the Acceptor's
	// ConnStats, which says how many to expect: the owners and the loops are counted apart.
	loops := 0
	complete := func() bool {
		return s.Dispatcher != nil && s.Health != nil && s.Conns != nil && loops >= s.Conns.Loops &&
			(t.AccessLog == nil || s.AccessLg != nil)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !complete() {
		select {
		case m := <-ep.C:
			switch m := m.(type) {
			case *messages.DispatcherStats:
				s.Dispatcher = m
			case *messages.HealthStats:
				s.Health = m
			case *messages.ConnStats:
				s.Conns = m
			case *messages.LoopStats:
				loops++
				s.Traffic.Add(&m.Traffic)
			case *messages.AccessLogStats:
				s.AccessLg = m
			}
		case <-deadline.C:
			s.At = time.Now()
			missing := missingOwners(s, t)
			if s.Conns != nil && loops < s.Conns.Loops {
				missing = append(missing, fmt.Sprintf("%d of %d event loops", s.Conns.Loops-loops, s.Conns.Loops))
			}
			if s.Conns == nil || loops < s.Conns.Loops {
				// A partial sum of the loops would make counters go backwards.
				s.Conns, s.Traffic = nil, messages.TrafficStats{}
			}
			return s, fmt.Errorf("%w: %v", errIncomplete, missing)
		}
	}
	s.At = time.Now()
	return s, nil
}

// missingOwners names the owners that have not answered.
func missingOwners(s *Snapshot, t *Targets) []string {
	var out []string
	if s.Dispatcher == nil {
		out = append(out, "dispatcher")
	}
	if s.Health == nil {
		out = append(out, "health monitor")
	}
	if s.Conns == nil {
		out = append(out, "acceptor")
	}
	if t.AccessLog != nil && s.AccessLg == nil {
		out = append(out, "access log writer")
	}
	return out
}

// Targets are the actors the admin listener asks for their counts.
type Targets struct {
	Dispatcher, Health, Acceptor *actor.PID
	// AccessLog is the access log writer; nil without an access log.
	AccessLog *actor.PID
}
