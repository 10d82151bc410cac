package messages

import (
	"net/netip"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// SocketAccepted is sent by an event loop to the Acceptor for every client connection it
// accepts on the listener: the raw, non-blocking socket, the client's address, and the loop's
// number. Ownership of Fd moves to the Acceptor, which gives it back to that loop to be served
// (forwarder.Engine.AdoptOn) or closes it.
type SocketAccepted struct {
	Fd   int
	Peer netip.AddrPort
	Loop int
}

// ConnEnded is sent by a Forwarder on an event loop to the Acceptor, its supervisor, when its
// connection has closed: the Acceptor counts it and tells the Dispatcher to forget the holder.
// Panic is the value of a panic that ended it (nil otherwise), with its Stack.
type ConnEnded struct {
	Holder *actor.PID
	Panic  any
	Stack  []byte
}

// Drain is sent by main to the lb supervisor, and by the supervisor to the Acceptor, which has
// the event loops drain every Forwarder (forwarder.Engine.Drain): stop taking new work, finish
// what is in flight, close idle connections. Deadline is when the process stops waiting (main enforces it; the actors do not
// read it); ReplyTo (for the supervisor and the Acceptor) gets Drained when every connection is
// gone.
type Drain struct {
	Deadline time.Time
	ReplyTo  *actor.PID
}

// AcceptingStopped is sent by the Engine to the Acceptor once every event loop has stopped
// accepting (forwarder.Engine.StopAccepting), after each took what was left in the listener's
// backlog: every SocketAccepted of those was sent before it.
type AcceptingStopped struct{}

// Drained is sent by the Acceptor to Drain.ReplyTo (the lb supervisor, which passes it on to its
// own Drain.ReplyTo) once its listener is closed and no Forwarder is left.
type Drained struct{}

// InjectCrash is sent by a Forwarder to itself only in test builds (build tag crashtest, or a
// test-only config option), for a request with "X-Crash-Test: receive": the Forwarder panics when
// the message arrives, so tests can check that a crash in message handling costs one connection.
type InjectCrash struct{}
