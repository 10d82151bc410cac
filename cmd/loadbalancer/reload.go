package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"syscall"

	"github.com/asynkron/protoactor-go/actor"

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
		r.failures++
		for _, e := range splitErrors(err) {
			res.Errors = append(res.Errors, e.Error())
		}
		r.log.Error("reload refused; the running configuration stays", "errors", res.Errors, "failures", r.failures)
		return res
	}
	res.NeedsRestart = restartOnly(r.cur, next)
	applied, err := r.apply(next.backends) // what runs now; the other settings stay as they started
	if err != nil {
		r.failures++
		res.Errors = []string{err.Error()}
		r.log.Error("reload refused; the running configuration stays", "errors", res.Errors, "failures", r.failures)
		return res
	}
	r.reloads++
	res.Applied = applied
	res.BackendsCount = len(next.backends)
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
		case "backends", "file", "backendsFromFile", "checkOnly", "configPath", "rExplicit", "values":
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

// reloadOnHUP reloads on every SIGHUP until stop is closed, on the controller's goroutine (one
// change at a time, in order, with the runtime API's).
func reloadOnHUP(c *controller, stop <-chan struct{}) {
	hup := make(chan os.Signal, 4)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				c.Reload(context.Background())
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
