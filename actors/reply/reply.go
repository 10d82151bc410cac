// Package reply provides Endpoint: a process registered with the actor system whose messages
// land on a Go channel. A goroutine that is not an actor (a Forwarder's I/O goroutine) uses one
// as the ReplyTo address of its requests and waits on the channel: a cheap reply endpoint, with
// no timer and no allocation per reply, in place of a future (about ten allocations and a timer
// each, and a data race in protoactor when a reply arrives after the future's timeout).
package reply

import (
	"github.com/asynkron/protoactor-go/actor"
)

// Endpoint is a reply address backed by a buffered channel. The goroutine that created it owns
// it: it reads C and calls Close when done. Messages sent to a closed endpoint, or to a full
// one, go to dead letters (the sender never blocks).
type Endpoint struct {
	system *actor.ActorSystem
	pid    *actor.PID
	// C receives every message sent to PID, in order, unwrapped from its envelope.
	C chan any
}

// New registers an endpoint that buffers up to size messages.
func New(system *actor.ActorSystem, size int) *Endpoint {
	e := &Endpoint{system: system, C: make(chan any, size)}
	id := system.ProcessRegistry.NextId()
	pid, _ := system.ProcessRegistry.Add(e, "reply"+id)
	e.pid = pid
	return e
}

// PID is the address to send replies to.
func (e *Endpoint) PID() *actor.PID { return e.pid }

// Close unregisters the endpoint; later messages go to dead letters.
func (e *Endpoint) Close() { e.system.ProcessRegistry.Remove(e.pid) }

// SendUserMessage implements actor.Process. It never blocks: a message that finds the buffer
// full goes to dead letters.
func (e *Endpoint) SendUserMessage(pid *actor.PID, message any) {
	msg := actor.UnwrapEnvelopeMessage(message)
	select {
	case e.C <- msg:
	default:
		e.system.DeadLetter.SendUserMessage(pid, msg)
	}
}

// SendSystemMessage implements actor.Process. An endpoint is not an actor: nobody watches it,
// and system messages are ignored.
func (e *Endpoint) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process by unregistering the endpoint.
func (e *Endpoint) Stop(pid *actor.PID) { e.system.ProcessRegistry.Remove(pid) }

var _ actor.Process = (*Endpoint)(nil)
