//go:build !linux

package forwarder

import (
	"errors"
	"net/netip"

	"github.com/asynkron/protoactor-go/actor"
)

// Engine runs Forwarders on event loops, which need epoll: on this platform NewEngine fails and
// the goroutine Forwarders serve.
type Engine struct{}

// EngineOptions shape the event loops.
type EngineOptions struct {
	Loops   int
	RawWait bool
}

// NewEngine fails: event loops need Linux.
func NewEngine(*Config, *actor.ActorSystem, *actor.PID, EngineOptions) (*Engine, error) {
	return nil, errors.New("forwarder: event loops need Linux (epoll)")
}

func (e *Engine) Loops() int                { return 0 }
func (e *Engine) Adopt(int, netip.AddrPort) {}
func (e *Engine) Drain()                    {}
func (e *Engine) Close()                    {}
