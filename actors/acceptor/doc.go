// Package acceptor implements the Acceptor actor: it owns the listener and the event loops that
// serve the client connections (forwarder.Engine), decides which connections are served, and
// supervises the Forwarders on the loops.
//
// At start-up it hands the listener to the Engine (Engine.Listen): every loop watches it and
// accepts what comes as raw, non-blocking sockets, which never enter the runtime's poller, and
// sends each to the Acceptor as *messages.SocketAccepted. The Acceptor's mailbox runs on that
// loop's thread, so it decides at once: it counts the connection and gives it back to the same
// loop (Engine.AdoptOn), or closes it when the connection cap is reached or it is draining.
// Every Forwarder reports its end with *messages.ConnEnded, which the Acceptor passes on to the
// Dispatcher as *messages.ForgetHolder (so a slot a Forwarder still held comes back) before it
// counts the connection gone. A Forwarder that panicked has cost its own connection only: the
// loop answered the client and logged the panic; the Acceptor counts it. After a flood of
// connections has gone it returns memory to the system (see reclaim).
//
// Messages it takes: *messages.SocketAccepted from the loops, *messages.ConnEnded from the
// Forwarders, *messages.Drain from the supervisor (the loops take what is left in the listener's
// backlog and stop accepting, and the listener closes; every connection closes once its request
// in flight is answered, an idle one after serving a request it had already been sent;
// *messages.Drained answers when the last one is gone and the Engine has said
// *messages.AcceptingStopped), and *messages.StatsRequest from the admin listener:
// answered with *messages.ConnStats (connections open, accepted, refused, Forwarder crashes,
// draining), after which every event loop answers the same ReplyTo with its own
// *messages.LoopStats (Engine.Stats).
//
// *messages.Reconfigure from the lb supervisor (a reload) brings a new connection cap and the
// Forwarders' configuration for the requests that follow (Engine.SetConfig; the access log's
// settings stay).
//
// When it stops it closes the event loops, and closes Config.Stopped once they have ended (main
// waits for it before closing the access log, so the loops' last lines are in).
//
// Its mailbox runs inline on the thread of whoever sends to it (see inline): an event loop's,
// usually. Receive never blocks.
//
// Failure modes: a panic in Receive goes to the lb supervisor, which resumes the Acceptor; the
// listener, the Engine and the counts live in state the producer captures, so a restart would
// keep them too. A loop that cannot accept (out of descriptors) pauses accepting for 100 ms and
// says so in the log.
package acceptor
