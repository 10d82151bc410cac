package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/admin"
	"github.com/loadbalancer/loadbalancer/actors/health"
	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// controller is admin.Control for this process: every change (a SIGHUP reload, a call of the
// runtime API) runs on its one goroutine, in order, so they never interleave, and the reloader's
// state (the options in force) has one owner.
type controller struct {
	r    *reloader
	jobs chan func()
	stop <-chan struct{}
}

func newController(r *reloader, stop <-chan struct{}) *controller {
	c := &controller{r: r, jobs: make(chan func()), stop: stop}
	go c.run()
	return c
}

func (c *controller) run() {
	for {
		select {
		case <-c.stop:
			return
		case job := <-c.jobs:
			func() {
				defer func() {
					if v := recover(); v != nil {
						c.r.log.Error("configuration change panicked; nothing more of it is applied", "panic", fmt.Sprint(v))
					}
				}()
				job()
			}()
		}
	}
}

// do runs job on the controller's goroutine and waits for it; ctx bounds the wait for the
// controller to take it.
//
// Once the controller has taken the job, do waits for it whatever ctx says: the job writes the
// caller's variables, which must not be read before it is done (jobs are bounded: they wait for
// the actors with timeouts of their own).
func (c *controller) do(ctx context.Context, job func()) error {
	done := make(chan struct{})
	select {
	case c.jobs <- func() { defer close(done); job() }:
	case <-c.stop:
		return fmt.Errorf("stopping")
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// Backends implements admin.Control.
func (c *controller) Backends(ctx context.Context) ([]messages.BackendState, []messages.Backend, error) {
	var list []messages.Backend
	if err := c.do(ctx, func() { list = slices.Clone(c.r.cur.backends) }); err != nil {
		return nil, nil, err
	}
	s, err := dispatcherStats(ctx, c.r.system, c.r.root, 2*time.Second)
	if err != nil {
		return nil, list, err
	}
	states := s.Backends[:0:0]
	for _, b := range s.Backends {
		if !b.Removed || b.InFlight > 0 { // a removed backend that has drained is gone
			states = append(states, b)
		}
	}
	return states, list, nil
}

// SetBackends implements admin.Control.
func (c *controller) SetBackends(ctx context.Context, expected, list []messages.Backend) (*messages.BackendsApplied, error) {
	var res *messages.BackendsApplied
	var err error
	job := func() {
		if expected != nil && !slices.Equal(expected, c.r.cur.backends) {
			err = admin.ErrConflict // read, changed and set in one job would need a callback
			return
		}
		res, err = c.r.apply(list)
	}
	if derr := c.do(ctx, job); derr != nil {
		return nil, derr
	}
	return res, err
}

// Reload implements admin.Control.
func (c *controller) Reload(ctx context.Context) admin.ReloadResult {
	var res reloadResult
	if err := c.do(ctx, func() { res = c.r.reload() }); err != nil {
		return admin.ReloadResult{Errors: []string{err.Error()}}
	}
	return admin.ReloadResult{OK: len(res.Errors) == 0, Applied: res.Applied, NeedsRestart: res.NeedsRestart, Errors: res.Errors}
}

// Config implements admin.Control: the running settings by config key, with listen and the
// backends as the file would list them.
func (c *controller) Config(ctx context.Context) map[string]any {
	out := map[string]any{}
	_ = c.do(ctx, func() {
		o := c.r.cur
		for k, v := range maps.All(o.values) {
			out[k] = v
		}
		out["listen"] = net.JoinHostPort(o.bind, strconv.Itoa(o.port))
		var bs []map[string]any
		for _, b := range o.backends {
			m := map[string]any{"address": b.Addr, "weight": max(b.Weight, 1)}
			if b.MaxInFlight > 0 {
				m["max_in_flight"] = b.MaxInFlight
			}
			if b.Backup {
				m["backup"] = true
			}
			if b.Health != (messages.HealthOverride{}) {
				m["health"] = b.Health
			}
			bs = append(bs, m)
		}
		out["backends"] = bs
		if o.configPath != "" {
			out["config_file"] = o.configPath
		}
	})
	return out
}

// Reloads implements admin.Control.
func (c *controller) Reloads(ctx context.Context) (applied, refused int) {
	applied, refused = -1, -1 // unknown: the controller is busy
	_ = c.do(ctx, func() { applied, refused = c.r.reloads, c.r.failures })
	return applied, refused
}

// child is the PID of the lb supervisor's child name.
func child(root *actor.PID, name string) *actor.PID {
	return actor.NewPID(root.Address, root.Id+"/"+name)
}

// checkBackends validates a backend list as the config file's backends are validated, and
// normalises it (a bare port is 127.0.0.1:PORT, weight 0 is 1). Every problem is returned.
func (r *reloader) checkBackends(list []messages.Backend, check health.Check) ([]messages.Backend, error) {
	var problems []string
	out := make([]messages.Backend, len(list))
	seen := map[string]bool{}
	for i, b := range list {
		addr, err := parseBackend(b.Addr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("backend %q: %v", b.Addr, err))
			continue
		}
		b.Addr = addr
		if b.Weight == 0 {
			b.Weight = 1
		}
		if b.Weight < 1 || b.Weight > 1000 {
			problems = append(problems, fmt.Sprintf("backend %s: weight: want a whole number from 1 to 1000, got %d", addr, b.Weight))
		}
		if b.MaxInFlight < 0 {
			problems = append(problems, fmt.Sprintf("backend %s: max_in_flight must not be negative, got %d", addr, b.MaxInFlight))
		}
		if _, err := check.For(b.Health); err != nil {
			problems = append(problems, fmt.Sprintf("backend %s: health: %v", addr, err))
		}
		if seen[addr] {
			problems = append(problems, fmt.Sprintf("backend %s listed twice", addr))
		}
		seen[addr] = true
		out[i] = b
	}
	if len(list) == 0 {
		problems = append(problems, "at least one backend is needed")
	}
	if len(problems) > 0 {
		return nil, &admin.ValidationError{Problems: problems}
	}
	return out, nil
}

// apply makes list the configured backends: validated, resolved, sent to the lb supervisor and
// waited for. The one path both a reload and the runtime API take.
func (r *reloader) apply(list []messages.Backend) (*messages.BackendsApplied, error) {
	return r.applyWith(list, r.cur.check)
}

// applyWith is apply, with the backends' own check settings validated against check (a
// reload's, which it applies first).
func (r *reloader) applyWith(list []messages.Backend, check health.Check) (*messages.BackendsApplied, error) {
	list, dial, err := r.prepare(list, check)
	if err != nil {
		return nil, err
	}
	return r.applyPrepared(list, dial), nil
}

// prepare validates and normalises list (see checkBackends) and resolves its names.
func (r *reloader) prepare(list []messages.Backend, check health.Check) ([]messages.Backend, map[string]netip.AddrPort, error) {
	list, err := r.checkBackends(list, check)
	if err != nil {
		return nil, nil, err
	}
	dial, err := resolveBackends(list)
	if err != nil {
		return nil, nil, &admin.ValidationError{Problems: []string{err.Error()}}
	}
	return list, dial, nil
}

// applyPrepared sends a prepared list to the lb supervisor and waits for its answer (nil when
// it did not come in time: the supervisor has the table, and the children apply it when they
// can).
func (r *reloader) applyPrepared(list []messages.Backend, dial map[string]netip.AddrPort) *messages.BackendsApplied {
	ep := reply.New(r.system, 1)
	defer ep.Close()
	r.system.Root.Send(r.root, &messages.ApplyBackends{Backends: slices.Clone(list), Dial: dial, ReplyTo: ep.PID()})
	var res *messages.BackendsApplied
	select {
	case m := <-ep.C:
		res, _ = m.(*messages.BackendsApplied)
	case <-time.After(5 * time.Second):
		// The supervisor has the table; the children apply it when they can.
		r.log.Warn("the actors did not confirm the new backends within 5s")
	}
	keep := *r.cur
	keep.backends = list
	r.cur = &keep
	return res
}
