package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
	// reloads and failures count the reloads applied and refused.
	reloads, failures int
}

// reload re-reads the configuration and applies what it can.
func (r *reloader) reload() reloadResult {
	r.log.Info("reloading", "config", r.cur.configPath)
	res := reloadResult{ConfigPath: r.cur.configPath}
	next, err := parseArgs(r.args, io.Discard)
	if err == nil && next.checkOnly {
		err = fmt.Errorf("--check makes no sense in a reload")
	}
	if err != nil {
		return r.refuse(res, err)
	}
	res.NeedsRestart = restartOnly(r.cur, next)
	changed := changedSettings(r.cur, next)
	// Everything that can refuse the reload (the backends' checks, resolving their names) comes
	// before anything is applied: a reload applies whole or not at all.
	list, dial, err := r.prepare(next.backends, next.check)
	if err != nil {
		return r.refuse(res, err)
	}
	// The settings first, then the backends: a backend's own check settings may need the new
	// check, and a backend added gets its first probe with it.
	if len(changed) > 0 {
		r.applySettings(next)
	}
	applied := r.applyPrepared(list, dial)
	// What runs now: next's settings, but those that need a restart as they started, and the
	// backends as apply normalised them.
	running := *next
	keepRestartOnly(&running, r.cur)
	running.backends = r.cur.backends
	running.values = maps.Clone(next.values)
	for _, k := range restartKeys {
		if v, ok := r.cur.values[k]; ok {
			running.values[k] = v
		}
	}
	r.cur = &running
	r.reloads++
	res.Applied = applied
	res.BackendsCount = len(next.backends)
	args := []any{"backends", res.BackendsCount}
	if a := res.Applied; a != nil {
		args = append(args, "added", a.Added, "removed", a.Removed, "changed", a.Changed)
	}
	if len(changed) > 0 {
		args = append(args, "settings_changed", changed)
	}
	if len(res.NeedsRestart) > 0 {
		args = append(args, "needs_restart", res.NeedsRestart)
	}
	r.log.Info("reloaded", args...)
	return res
}

// refuse counts a refused reload, logs every error in err and returns res with them.
func (r *reloader) refuse(res reloadResult, err error) reloadResult {
	r.failures++
	for _, e := range splitErrors(err) {
		res.Errors = append(res.Errors, e.Error())
	}
	r.log.Error("reload refused; the running configuration stays", "errors", res.Errors, "failures", r.failures)
	return res
}

// restartFields are the options a running load balancer cannot change: the sockets it listens
// on, its threads, its files and its logger, and what main reads once (the drain's time).
var restartFields = []string{"port", "bind", "loops", "adminAddr", "adminTokenFile", "pprofAddr",
	"accessLog", "accessLogFormat", "logLevel", "logFormat", "drainTimeout"}

// restartKeys are restartFields as config keys (GET /api/config shows what runs).
var restartKeys = []string{"bind", "loops", "admin_addr", "admin_token_file", "pprof_addr", "access_log",
	"access_log_format", "log_level", "log_format", "drain_timeout"}

// notSettings are the options that are not settings to compare (the backends go their own way).
var notSettings = []string{"backends", "file", "backendsFromFile", "checkOnly", "configPath", "values"}

// differing names (as config keys) the options fields, among those keep says, that differ.
func differing(cur, next *options, keep func(field string) bool) []string {
	var out []string
	a, b := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	t := a.Type()
	for i := range t.NumField() {
		name := t.Field(i).Name
		if slices.Contains(notSettings, name) || !keep(name) {
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

// restartOnly names the settings that differ and need a restart.
func restartOnly(cur, next *options) []string {
	return differing(cur, next, func(f string) bool { return slices.Contains(restartFields, f) })
}

// changedSettings names the settings that differ and a reload applies.
func changedSettings(cur, next *options) []string {
	return differing(cur, next, func(f string) bool { return !slices.Contains(restartFields, f) })
}

// keepRestartOnly copies from cur into next the settings that need a restart: what runs.
func keepRestartOnly(next, cur *options) {
	a, b := reflect.ValueOf(next).Elem(), reflect.ValueOf(cur).Elem()
	for _, f := range restartFields {
		dst := a.FieldByName(f)
		reflect.NewAt(dst.Type(), dst.Addr().UnsafePointer()).Elem().Set(
			reflect.NewAt(dst.Type(), b.FieldByName(f).Addr().UnsafePointer()).Elem())
	}
}

// applySettings sends the settings a reload applies to the actors that own them (for what
// follows: requests picked, rounds started, connections accepted from now on).
func (r *reloader) applySettings(next *options) {
	cfg := next.config(nil, r.log)
	ep := reply.New(r.system, 1)
	defer ep.Close()
	r.system.Root.Send(r.root, &messages.ApplySettings{Dispatcher: &cfg.Dispatcher, Health: &cfg.Health,
		Forwarder: cfg.Acceptor.Forwarder, MaxConns: cfg.Acceptor.MaxConns, ReplyTo: ep.PID()})
	select {
	case <-ep.C:
	case <-time.After(5 * time.Second):
		r.log.Warn("the supervisor did not confirm the new settings within 5s")
	}
}

// splitErrors undoes errors.Join, for a list.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// reloadOnHUP reloads on every SIGHUP until stop is closed, on the controller's goroutine (one
// change at a time, in order, with the runtime API's).
func reloadOnHUP(c *controller, stop <-chan struct{}) {
	onSignal(syscall.SIGHUP, stop, func() { c.Reload(context.Background()) })
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
