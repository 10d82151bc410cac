package messages

import (
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ConnectionAccepted is sent by the Acceptor's accept goroutine to the Acceptor for every
// accepted client connection. Ownership of Conn moves to the Acceptor, and from it to the
// Forwarder it spawns.
type ConnectionAccepted struct {
	Conn net.Conn
}

// AcceptFailed is sent by the Acceptor's accept goroutine to the Acceptor when the listener
// fails for good (it was closed, or a non-temporary error). Err is nil after a requested close.
type AcceptFailed struct {
	Err error
}

// ServeEnded is sent by a Forwarder's I/O goroutine to its Forwarder, exactly once, when the
// goroutine has finished with the client connection (and closed it).
type ServeEnded struct {
	// Panic is the value the goroutine recovered, nil when it ended normally. The Forwarder
	// re-panics with it so its supervisor sees the crash.
	Panic any
	// Stack is the goroutine's stack at the panic, for the log.
	Stack []byte
}

// Drain is sent by the supervisor to the Acceptor, and by the Acceptor to each Forwarder: stop
// taking new work, finish what is in flight, close idle connections. Deadline is when the
// process stops waiting; ReplyTo (for the Acceptor) gets Drained when every connection is gone.
type Drain struct {
	Deadline time.Time
	ReplyTo  *actor.PID
}

// Drained is sent by the Acceptor to Drain.ReplyTo once its listener is closed and no Forwarder
// is left.
type Drained struct{}

// Started is sent by the lb supervisor to whoever asked for readiness: every actor is up and the
// listener accepts connections on Addr.
type Started struct {
	Addr net.Addr
}

// InjectCrash is sent by a Forwarder's I/O goroutine to its Forwarder only in test builds
// (build tag crashtest, or a test-only config option): the Forwarder panics in Receive, so tests
// can check what supervision does with a crash outside the I/O goroutine.
type InjectCrash struct{}

// AcceptLoopPanicked is sent by the Acceptor's accept goroutine to the Acceptor when it panicked;
// the Acceptor logs it and starts another accept goroutine.
type AcceptLoopPanicked struct {
	Value any
	Stack []byte
}
