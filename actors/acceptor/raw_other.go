//go:build !linux

package acceptor

import (
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func rawAccept(system *actor.ActorSystem, self *actor.PID, ln net.Listener, delay time.Duration) {
	acceptLoop(system, self, ln, delay)
}

func noDelay(net.Listener) {}

func closeSocket(int) {}
