// Package acceptor implements the Acceptor actor: it owns the listener and the event loops that
// serve the client connections (forwarder.Engine), and supervises the Forwarders on them.
//
// An accept goroutine the Acceptor starts takes connections off the listener as raw,
// non-blocking sockets (accept4, as many as are waiting; they never enter the runtime's poller)
// and sends each as *messages.SocketAccepted. The Acceptor counts it and hands it to a loop
// (Engine.Adopt), or closes it at once when the connection cap is reached or it is draining.
// Every Forwarder reports its end with *messages.ConnEnded, which the Acceptor passes on to the
// Dispatcher as *messages.ForgetHolder (so a slot a Forwarder still held comes back) before it
// counts the connection gone. A Forwarder that panicked has cost its own connection only: the
// loop answered the client and logged the panic; the Acceptor counts it.
//
// Messages it takes: *messages.SocketAccepted, *messages.AcceptFailed and
// *messages.AcceptLoopPanicked from its accept goroutine, *messages.ConnEnded from the
// Forwarders, *messages.Drain from the supervisor (close the listener, make every connection
// close once its request in flight is answered, answer *messages.Drained when the last one is
// gone).
//
// Its mailbox runs inline on the goroutine of whoever sends to it (see inline): the accept
// goroutine, or an event loop's thread. Receive never blocks.
//
// Failure modes: a panic in the accept goroutine is recovered and reported to the Acceptor,
// which logs it and starts another accept goroutine after a pause that grows while the panics
// keep coming. A panic in Receive goes to the lb supervisor, which resumes the Acceptor rather
// than restarting it; should it restart anyway, the new Acceptor keeps the listener and the
// Engine (the producer captures them) and starts a fresh accept goroutine if the old one ended.
package acceptor
