// Package forwarder implements the Forwarder actor: one per client connection, serving the
// connection's requests in order for as long as it stays open.
//
// The actor itself is small. On Started it hands the connection to an I/O goroutine (one that
// finished serving an earlier connection, or a new one), which does all blocking work with
// state it reuses from connection to connection (see ioWorker): it reads a request head
// (package wire), asks the Dispatcher for a backend with *messages.PickBackend (the answer lands
// on a reply endpoint the goroutine waits on, no future; with the Dispatcher run inline it is
// there before the goroutine looks), connects or reuses the idle upstream connection it was
// handed, streams the request and the response (splice between TCP connections for large
// bodies), and gives the slot back with the outcome and, when clean, the upstream connection
// (*messages.ReleaseLease, or folded into the next pick when the next request is already
// buffered).
//
// When the exchange fails before anything of an answer reached the client, the request may go
// to another backend (a pick with Retry, which never returns to a backend already tried): after
// a refused connect, always; after the backend broke the connection before answering (killed,
// say), once, when the request can be sent again (an idempotent method, and no body or one held
// in the buffer); and when the Dispatcher says, on a *messages.CheckLease sent because the
// response head is overdue (BackendPicked.CheckAfter), that the backend is stalled, ejected or
// down, under the same condition (a request that cannot be sent again waits for its answer until
// the response timeout). A request never goes anywhere twice: a POST is sent once. Releases carry
// the response status, and picks the hash policy's key (Config.Hash).
//
// Its mailbox runs inline on the goroutine of whoever sends to it (see inline): Receive never
// blocks.
//
// Messages it takes: *messages.ServeEnded from its I/O goroutine (exactly once; the actor stops,
// or re-panics when the goroutine panicked), *messages.Drain from the Acceptor (finish the
// request in flight, then close), *messages.InjectCrash (test builds only).
//
// Failure modes: a panic in the I/O goroutine is recovered there; the client gets the load
// balancer's error if no response byte was sent yet, otherwise the connection closes; the panic
// then reaches the actor as ServeEnded and is re-panicked so the Acceptor's strategy sees it. A
// restarted Forwarder never serves again: a connection whose state is unknown is closed (after
// the error response, when nothing had been sent). The slot it held comes back when the
// Acceptor, its parent, tells the Dispatcher to forget it (ForgetHolder) as it stops.
package forwarder
