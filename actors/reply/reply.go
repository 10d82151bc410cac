// Package reply provides Endpoint: a process registered with the actor system whose messages
// land on a Go channel. A goroutine that is not an actor (main, waiting for the drain; tests) uses
// one as the ReplyTo address of its requests and waits on the channel: a cheap reply endpoint, with
// no timer and no allocation per reply, in place of a future (about ten allocations and a timer
// each, and a data race in protoactor when a reply arrives after the future's timeout).
package reply

import (
	"github.com/asynkron/protoactor-go/actor"
)

// Endpoint is a reply address backed by a buffered channel. The goroutine that created it owns
// it: it reads C and calls Close when done. Messages sent to a closed endpoint, or to a full
// one, are dropped (the sender never blocks): handed to the drop function, if there is one,
// and otherwise to dead letters.
type Endpoint struct {
	system *actor.ActorSystem
	pid    *actor.PID
	drop   func(any)
	done   chan struct{} // closed by Close (a channel, not a shared flag: house rule 4)
	// C receives every message sent to PID, in order, unwrapped from its envelope.
	C chan any
}

// New registers an endpoint that buffers up to size messages.
func New(system *actor.ActorSystem, size int) *Endpoint {
	return NewWithDrop(system, size, nil)
}

// NewWithDrop is New with a function that gets every message the endpoint drops: sent to it
// when full or after Close, or still unread at Close, to give back what such a message carries;
// it may run on the sender's goroutine and must not block.
func NewWithDrop(system *actor.ActorSystem, size int, drop func(any)) *Endpoint {
	e := &Endpoint{system: system, drop: drop, done: make(chan struct{}), C: make(chan any, size)}
	id := system.ProcessRegistry.NextId()
	pid, _ := system.ProcessRegistry.Add(e, "reply"+id)
	e.pid = pid
	return e
}

// PID is the address to send replies to.
func (e *Endpoint) PID() *actor.PID { return e.pid }

// Close unregisters the endpoint and drops what C still holds; later messages are dropped
// too. Only the owner calls it (calling it again is harmless). A sender that resolved the PID before Close still reaches SendUserMessage (protoactor
// caches the process in the PID), which is why the endpoint itself refuses them.
func (e *Endpoint) Close() {
	select {
	case <-e.done:
	default:
		close(e.done)
	}
	e.system.ProcessRegistry.Remove(e.pid)
	e.drain()
}

// drain drops every message in C. Close and a send racing with it may both drain: each
// message is received, and so dropped, once.
func (e *Endpoint) drain() {
	for {
		select {
		case m := <-e.C:
			e.Drop(m)
		default:
			return
		}
	}
}

// Drop gives m up as the endpoint does with a message it cannot take: to the drop function, if
// there is one, otherwise to dead letters. The owner calls it for a message it took from C and
// will not use.
func (e *Endpoint) Drop(m any) {
	if e.drop != nil {
		e.drop(m)
		return
	}
	e.system.DeadLetter.SendUserMessage(e.pid, m)
}

// SendUserMessage implements actor.Process. It never blocks.
func (e *Endpoint) SendUserMessage(_ *actor.PID, message any) {
	msg := actor.UnwrapEnvelopeMessage(message)
	if e.closed() {
		e.Drop(msg)
		return
	}
	select {
	case e.C <- msg:
		if e.closed() {
			e.drain() // Close ran meanwhile and may have drained before this message was in
		}
	default:
		e.Drop(msg)
	}
}

func (e *Endpoint) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// SendSystemMessage implements actor.Process. An endpoint is not an actor: nobody watches it,
// and system messages are ignored.
func (e *Endpoint) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process. It does nothing: only the owning goroutine closes the
// endpoint (Close is not safe to call from two goroutines at once).
func (e *Endpoint) Stop(*actor.PID) {}

var _ actor.Process = (*Endpoint)(nil)
