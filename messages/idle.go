package messages

import (
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ConnParked is sent by a Forwarder's I/O goroutine to its Forwarder when the client
// connection has idled past the linger time with nothing buffered and no lease: the goroutine
// has given back its buffers and ended, leaving the connection open. The Forwarder hands it to
// the IdleWatcher (WatchIdle) and starts a new goroutine when it wakes. IdleUntil is when the
// keep-alive idle timeout closes it.
type ConnParked struct {
	IdleUntil time.Time
}

// WatchIdle is sent by a Forwarder to the IdleWatcher: tell Holder (IdleWake) when Conn has
// something to read or has closed, or when Deadline passes, whichever is first. Conn stays the
// Forwarder's; the IdleWatcher only registers it for readiness. One wake per WatchIdle, except
// for a watch whose descriptor a later WatchIdle takes over (its connection was closed): that
// one gets none.
type WatchIdle struct {
	Conn     syscall.Conn
	Holder   *actor.PID
	Deadline time.Time
}

// IdleWake is sent by the IdleWatcher to a Forwarder whose connection it watched: the
// connection has something to read (or closed) or, with Expired, its idle timeout passed. The
// watch is over either way. The two values are shared: IdleReadable and IdleExpired.
type IdleWake struct {
	Expired bool
}

// The only IdleWake values: immutable, shared by every wake.
var (
	IdleReadable = &IdleWake{}
	IdleExpired  = &IdleWake{Expired: true}
)

// IdleReady is sent by the IdleWatcher's poll goroutine to the IdleWatcher: the descriptors
// that epoll reported readable, hung up or in error since the last batch. Fds is not reused.
type IdleReady struct {
	Fds []int32
}

// IdleDeadline is the IdleWatcher's own timer message: time to expire watches whose deadline
// has passed. Gen tells a stale timer apart.
type IdleDeadline struct {
	Gen uint64
}

// IdlePollFailed is sent by the IdleWatcher's poll goroutine to the IdleWatcher when it ends
// abnormally: epoll failed (Err) or the goroutine panicked (Panic, Stack). The IdleWatcher
// re-panics so its supervisor restarts it; the restart wakes every watched connection.
type IdlePollFailed struct {
	Err   error
	Panic any
	Stack []byte
}
