package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/loadbalancer/loadbalancer/actors/reply"
	"github.com/loadbalancer/loadbalancer/messages"
)

// Reloading (SIGHUP): the command line is parsed again, and with it the --config file, by the
// same parseArgs as at start-up, so a reload accepts exactly what a start accepts. A bad result
// changes nothing. A good one applies its backends (added ones are probed before they take
// requests, removed ones drain); every other setting that differs is named in the log as
// needing a restart.

// reloadResult says what a reload did.
type reloadResult struct {
	Applied       *messages.BackendsApplied
	NeedsRestart  []string // settings that differ and apply only at start-up
	Errors        []string // why the new configuration was refused
	ConfigPath    string
	BackendsCount int
}

// reloader holds what a reload compares with: the options in force.
type reloader struct {
	args   []string
	cur    *options
	system *actor.ActorSystem
	root   *actor.PID
	log    *slog.Logger
	// failures counts refused reloads (for the log; the metric is the admin listener's).
	failures int
}

// reload re-reads the configuration and applies what it can.
func (r *reloader) reload() reloadResult {
	res := reloadResult{ConfigPath: r.cur.configPath}
	next, err := parseArgs(r.args, io.Discard)
	if err == nil && next.checkOnly {
		err = fmt.Errorf("--check makes no sense in a reload")
	}
	if err != nil {
		r.failures++
		for _, e := range splitErrors(err) {
			res.Errors = append(res.Errors, e.Error())
		}
		r.log.Error("reload refused; the running configuration stays", "errors", res.Errors, "failures", r.failures)
		return res
	}
	dial, err := resolveBackends(next.backends)
	if err != nil {
		r.failures++
		res.Errors = []string{err.Error()}
		r.log.Error("reload refused; the running configuration stays", "errors", res.Errors, "failures", r.failures)
		return res
	}
	res.NeedsRestart = restartOnly(r.cur, next)
	ep := reply.New(r.system, 1)
	defer ep.Close()
	r.system.Root.Send(r.root, &messages.ApplyBackends{Backends: slices.Clone(next.backends), Dial: dial, ReplyTo: ep.PID()})
	select {
	case m := <-ep.C:
		if a, ok := m.(*messages.BackendsApplied); ok {
			res.Applied = a
		}
	case <-time.After(5 * time.Second):
		res.Errors = []string{"the actors did not confirm the new backends within 5s; they apply them when they can"}
	}
	res.BackendsCount = len(next.backends)
	keep := *r.cur
	keep.backends = next.backends // what runs now; the other settings stay as they started
	r.cur = &keep
	args := []any{"backends", res.BackendsCount}
	if a := res.Applied; a != nil {
		args = append(args, "added", a.Added, "removed", a.Removed, "changed", a.Changed)
	}
	if len(res.NeedsRestart) > 0 {
		args = append(args, "needs_restart", res.NeedsRestart)
	}
	r.log.Info("reloaded", args...)
	return res
}

// restartOnly names the settings (as flag names) that differ between cur and next, the backends
// aside: those a running load balancer does not change yet.
func restartOnly(cur, next *options) []string {
	var out []string
	a, b := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	t := a.Type()
	for i := range t.NumField() {
		name := t.Field(i).Name
		switch name {
		case "backends", "file", "backendsFromFile", "checkOnly", "configPath", "rExplicit":
			continue
		}
		if fmt.Sprintf("%#v", a.Field(i)) != fmt.Sprintf("%#v", b.Field(i)) {
			if n := settingName(name); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// splitErrors undoes errors.Join, for a list.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// reloadOnHUP reloads on every SIGHUP until stop is closed (one reload at a time, in order).
func reloadOnHUP(r *reloader, stop <-chan struct{}) {
	hup := make(chan os.Signal, 4)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				r.log.Info("SIGHUP: reloading", "config", r.cur.configPath)
				r.reload()
			}
		}
	}()
}

// settingName turns an options field into the flag (and config key) it comes from.
func settingName(field string) string {
	if n, ok := map[string]string{"n": "connections", "r": "requests", "port": "listen", "bind": "listen",
		"check": "health_check (and health_path, health_method, health_status, health_body, health_host)",
		"eject": "eject_*", "hash": "hash_key", "noReqID": "no_request_id", "errorMode": "error_codes",
		"logLevel": "log_level", "logFormat": "log_format"}[field]; ok {
		return n
	}
	var b []byte
	for _, c := range field {
		if c >= 'A' && c <= 'Z' {
			b = append(b, '_', byte(c-'A'+'a'))
			continue
		}
		b = append(b, byte(c))
	}
	return string(b)
}
