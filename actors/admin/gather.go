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
//
// The endpoint has room for every answer (loops is how many loops there are): the Acceptor's
// mailbox may run on this very goroutine, and its loops answer at once, before anyone reads.
func gather(sys *actor.ActorSystem, t *Targets, timeout time.Duration, loops int) (*Snapshot, error) {
	ep := reply.New(sys, loops+8)
	defer ep.Close()
	req := &messages.StatsRequest{ReplyTo: ep.PID(), Brief: t.brief}
	for _, pid := range []*actor.PID{t.Dispatcher, t.Health, t.Acceptor, t.AccessLog} {
		if pid != nil {
			sys.Root.Send(pid, req)
		}
	}
	s := &Snapshot{}
	// The loops answer on their own threads, so their LoopStats may come before the Acceptor's
	// ConnStats, which says how many to expect: the owners and the loops are counted apart.
	answered := 0
	complete := func() bool {
		return (t.Dispatcher == nil || s.Dispatcher != nil) && (t.Health == nil || s.Health != nil) &&
			(t.Acceptor == nil || s.Conns != nil && answered >= s.Conns.Loops) &&
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
				answered++
				s.Traffic.Add(&m.Traffic)
			case *messages.AccessLogStats:
				s.AccessLg = m
			}
		case <-deadline.C:
			s.At = time.Now()
			missing := missingOwners(s, t)
			if s.Conns != nil && answered < s.Conns.Loops {
				missing = append(missing, fmt.Sprintf("%d of %d event loops", s.Conns.Loops-answered, s.Conns.Loops))
			}
			if s.Conns == nil || answered < s.Conns.Loops {
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
	if t.Dispatcher != nil && s.Dispatcher == nil {
		out = append(out, "dispatcher")
	}
	if t.Health != nil && s.Health == nil {
		out = append(out, "health monitor")
	}
	if t.Acceptor != nil && s.Conns == nil {
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
	// brief asks the Acceptor for its own counts only, without the loops' (readiness).
	brief bool
}
