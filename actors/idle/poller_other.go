//go:build !linux

package idle

import (
	"errors"
	"syscall"

	"github.com/asynkron/protoactor-go/actor"
)

// Supported reports whether this platform has an IdleWatcher.
const Supported = false

type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("idle: no epoll on this platform") }

func (*poller) add(syscall.Conn) (int32, error)    { return 0, errors.ErrUnsupported }
func (*poller) stop()                              {}
func (*poller) run(*actor.ActorSystem, *actor.PID) {}
