package messages

import (
	"net"
	"net/netip"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ConnectionAccepted is sent by the Acceptor's accept goroutine to the Acceptor for every
// accepted client connection. Ownership of Conn moves to the Acceptor, and from it to the
// Forwarder it spawns.
type ConnectionAccepted struct {
	Conn net.Conn
}

// SocketAccepted is sent by the Acceptor's accept goroutine to the Acceptor for every client
// connection it accepts when the Forwarders run on event loops: the raw, non-blocking socket
// and the client's address. Ownership of Fd moves to the Acceptor, and from it to the loop
// that serves it (or it is closed).
type SocketAccepted struct {
	Fd   int
	Peer netip.AddrPort
}

// ConnEnded is sent by a Forwarder on an event loop to the Acceptor, its supervisor, when its
// connection has closed: the Acceptor counts it and tells the Dispatcher to forget the holder.
// Panic is the value of a panic that ended it (nil otherwise), with its Stack.
type ConnEnded struct {
	Holder *actor.PID
	Panic  any
	Stack  []byte
}

// AcceptFailed is sent by the Acceptor's accept goroutine to the Acceptor when the listener
// fails for good (it was closed, or a non-temporary error). Err is nil after a requested close.
type AcceptFailed struct {
	Err error
}

// ServeEnded is sent by a Forwarder's I/O goroutine to its Forwarder when the goroutine has
// finished with the client connection (and closed it). A goroutine that parks the connection
// sends ConnParked instead, and a later one may serve it after the wake, so a connection sees at
// most one ServeEnded: none when the Forwarder itself closes the connection while it is parked.
type ServeEnded struct {
	// Panic is the value the goroutine recovered, nil when it ended normally. The Forwarder
	// re-panics with it so its supervisor sees the crash.
	Panic any
	// Stack is the goroutine's stack at the panic, for the log.
	Stack []byte
}

// Drain is sent by main to the lb supervisor, by the supervisor to the Acceptor, and by the
// Acceptor to each Forwarder: stop taking new work, finish what is in flight, close idle
// connections. Deadline is when the process stops waiting (main enforces it; the actors do not
// read it); ReplyTo (for the supervisor and the Acceptor) gets Drained when every connection is
// gone.
type Drain struct {
	Deadline time.Time
	ReplyTo  *actor.PID
}

// Drained is sent by the Acceptor to Drain.ReplyTo (the lb supervisor, which passes it on to its
// own Drain.ReplyTo) once its listener is closed and no Forwarder is left.
type Drained struct{}

// Started is not sent by anyone at present: it is reserved for a readiness notice from the lb
// supervisor (every actor is up and the listener accepts connections on Addr). Readiness today
// is the listener itself, which main opens before any actor starts.
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
