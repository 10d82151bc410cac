package admin

import (
	"context"
	"errors"

	"github.com/loadbalancer/loadbalancer/messages"
)

// Control is what the runtime API changes the load balancer through (main implements it; nil:
// the API answers 404). Its methods may block (they wait for the actors) and are safe to call
// from several goroutines: main runs them one at a time, in order, on the goroutine that also
// handles SIGHUP, so the API and a reload never interleave.
type Control interface {
	// Backends is the backend table as it runs now, with every backend's state (the
	// Dispatcher's view); removed ones that have drained are left out.
	Backends(ctx context.Context) ([]messages.BackendState, []messages.Backend, error)
	// SetBackends makes list the configured backends (validated as the config file's are:
	// address, weight 1-1000, max_in_flight >= 0, backup, health overrides; every problem is
	// returned in a *ValidationError and nothing changes). It is the path a reload takes too.
	// When expected is not nil, the change is made only if the configured backends are still
	// expected (the list the caller read and changed); otherwise it returns ErrConflict and
	// nothing changes: a reload came in between.
	SetBackends(ctx context.Context, expected, list []messages.Backend) (*messages.BackendsApplied, error)
	// Reload does what SIGHUP does and says what happened.
	Reload(ctx context.Context) ReloadResult
	// Config is the running configuration, as the config file would say it (keys and values).
	Config(ctx context.Context) map[string]any
	// Reloads counts the reloads (SIGHUP or the API) applied and refused since start-up; -1
	// each when they cannot be read now (the controller is busy).
	Reloads(ctx context.Context) (applied, refused int)
}

// ReloadResult says what a reload did: the backends it applied, the settings that differ from
// the running ones and need a restart, or why it was refused (Errors; nothing changed then).
type ReloadResult struct {
	OK           bool                      `json:"ok"`
	Applied      *messages.BackendsApplied `json:"applied,omitempty"`
	NeedsRestart []string                  `json:"needs_restart,omitempty"`
	Errors       []string                  `json:"errors,omitempty"`
}

// ErrConflict: the configured backends changed since the caller read them (a reload).
var ErrConflict = errors.New("the backends changed meanwhile (a reload); read them again and retry")

// ValidationError lists why a change was refused (the API answers 400 with them).
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	s := ""
	for i, p := range e.Problems {
		if i > 0 {
			s += "; "
		}
		s += p
	}
	return s
}
