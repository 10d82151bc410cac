// Package acceptor implements the Acceptor actor: it owns the listener and supervises one
// Forwarder per client connection.
//
// An accept loop runs in a goroutine the Acceptor starts; every accepted connection arrives as
// *messages.ConnectionAccepted and becomes a child Forwarder (or is closed at once when the
// connection cap is reached or the Acceptor is draining). The Acceptor's supervisor strategy
// decides what a crashed Forwarder gets: a restart (which, for a Forwarder, closes its connection
// after answering the client) within a budget, then a stop. A Forwarder crash never reaches
// further up.
//
// Messages it takes: *messages.ConnectionAccepted, *messages.AcceptFailed and
// *messages.AcceptLoopPanicked from its accept goroutine, *messages.Drain from the supervisor
// (close the listener, pass Drain to every Forwarder, answer *messages.Drained when the last one
// is gone), *actor.Terminated for its children, each of which it passes on to the Dispatcher as
// *messages.ForgetHolder (so a slot a stopped Forwarder held comes back).
//
// Its mailbox runs inline on the goroutine of whoever sends to it (see inline): the accept
// goroutine, or a stopping Forwarder's. Receive never blocks.
//
// Failure modes: a panic in the accept goroutine is recovered and reported to the Acceptor,
// which logs it and starts another accept goroutine after a pause that grows while the panics
// keep coming. A panic in Receive goes to the lb supervisor, which resumes the Acceptor rather
// than restarting it (protoactor stops a restarting actor's children, which would close every
// connection); should it restart anyway, the new Acceptor keeps the listener (the producer
// captures it) and starts a fresh accept loop if the old one ended.
package acceptor
